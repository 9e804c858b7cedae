package manifest

import (
	"errors"
	"fmt"
)

const (
	snapshotMagic   = "AOF2SNAP"
	snapshotVersion = 4
	// snapshotVersionV3 is still read: its index (version 1 or 2) has no
	// segment bounds.
	snapshotVersionV3 = 3
	// snapshotHeaderSize: magic, version u32, flags u32, snapshot_id,
	// chunk_index, chunk_offset, next_record, index_len u32.
	snapshotHeaderSize = 8 + 4 + 4 + 8*4 + 4
)

// ErrSnapshot is wrapped by every snapshot decoding error.
var ErrSnapshot = errors.New("manifest: invalid snapshot")

// Snapshot is a folded index and the log position it covers: replaying the
// records from Position onwards on top of Index gives the current state.
type Snapshot struct {
	ID uint64
	// Position is where the first record not folded into Index was (or will
	// be) written.
	Position Position
	// NextRecord is the stream-wide ordinal of that record.
	NextRecord uint64
	Index      *Index
}

// AppendBinary appends the AOF2SNAP v4 encoding of s.
func (s *Snapshot) AppendBinary(b []byte) []byte {
	start := len(b)
	b = append(b, snapshotMagic...)
	b = le.AppendUint32(b, snapshotVersion)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, s.ID)
	b = le.AppendUint64(b, s.Position.Chunk)
	b = le.AppendUint64(b, uint64(s.Position.Offset))
	b = le.AppendUint64(b, s.NextRecord)
	lenAt := len(b)
	b = le.AppendUint32(b, 0)
	b = s.Index.AppendBinary(b)
	le.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	return le.AppendUint64(b, CRC64(b[start:]))
}

// DecodeSnapshot verifies and decodes an AOF2SNAP file.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	if len(b) < snapshotHeaderSize+8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrSnapshot, len(b))
	}
	body := b[:len(b)-8]
	if got, want := CRC64(body), le.Uint64(b[len(b)-8:]); got != want {
		return nil, fmt.Errorf("%w: crc %#x, trailer says %#x", ErrSnapshot, got, want)
	}
	if string(b[:8]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrSnapshot)
	}
	if v := le.Uint32(b[8:]); v != snapshotVersion && v != snapshotVersionV3 {
		return nil, fmt.Errorf("%w: version %d, want %d or %d", ErrSnapshot, v, snapshotVersionV3, snapshotVersion)
	}
	s := &Snapshot{
		ID:         le.Uint64(b[16:]),
		Position:   Position{Chunk: le.Uint64(b[24:]), Offset: int64(le.Uint64(b[32:]))},
		NextRecord: le.Uint64(b[40:]),
	}
	n := int(le.Uint32(b[48:]))
	if n != len(body)-snapshotHeaderSize {
		return nil, fmt.Errorf("%w: index_len %d, have %d bytes", ErrSnapshot, n, len(body)-snapshotHeaderSize)
	}
	idx, err := DecodeIndex(body[snapshotHeaderSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	s.Index = idx
	return s, nil
}
