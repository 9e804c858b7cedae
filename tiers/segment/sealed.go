package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bop-aof/aof/internal/vfs"
)

// CurrentSealedName is the file in a stream directory that names the highest
// sealed segment.
const CurrentSealedName = "current.sealed"

const (
	currentSealedMagic   = "AOF2CSEL"
	currentSealedVersion = 1
	currentSealedSize    = 96
)

// SealedMark is the content of current.sealed: the highest sealed segment
// and, when known, a copy of its footer (a zero Footer otherwise).
type SealedMark struct {
	SegmentID uint64
	Footer    Footer
}

func encodeSealedMark(m SealedMark) []byte {
	b := make([]byte, currentSealedSize)
	copy(b[0:8], currentSealedMagic)
	binary.LittleEndian.PutUint16(b[8:], currentSealedVersion)
	binary.LittleEndian.PutUint16(b[10:], currentSealedSize)
	binary.LittleEndian.PutUint64(b[16:], m.SegmentID)
	f := m.Footer
	binary.LittleEndian.PutUint64(b[24:], f.RecordCount)
	binary.LittleEndian.PutUint64(b[32:], f.DurableBytes)
	binary.LittleEndian.PutUint64(b[40:], f.CRC64)
	binary.LittleEndian.PutUint64(b[48:], f.FirstExtID)
	binary.LittleEndian.PutUint64(b[56:], f.LastExtID)
	binary.LittleEndian.PutUint64(b[64:], f.FirstOffset)
	binary.LittleEndian.PutUint64(b[72:], f.LastOffset)
	binary.LittleEndian.PutUint32(b[80:], f.Flags)
	binary.LittleEndian.PutUint32(b[92:], crc32.Checksum(b[:92], castagnoli))
	return b
}

func decodeSealedMark(b []byte) (SealedMark, error) {
	if len(b) != currentSealedSize {
		return SealedMark{}, fmt.Errorf("%s: length %d, want %d", CurrentSealedName, len(b), currentSealedSize)
	}
	if string(b[0:8]) != currentSealedMagic {
		return SealedMark{}, fmt.Errorf("%s: bad magic", CurrentSealedName)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != currentSealedVersion {
		return SealedMark{}, fmt.Errorf("%s: unsupported version %d", CurrentSealedName, v)
	}
	if got, want := crc32.Checksum(b[:92], castagnoli), binary.LittleEndian.Uint32(b[92:]); got != want {
		return SealedMark{}, fmt.Errorf("%s: %w", CurrentSealedName, ErrChecksum)
	}
	return SealedMark{
		SegmentID: binary.LittleEndian.Uint64(b[16:]),
		Footer: Footer{
			RecordCount:  binary.LittleEndian.Uint64(b[24:]),
			DurableBytes: binary.LittleEndian.Uint64(b[32:]),
			CRC64:        binary.LittleEndian.Uint64(b[40:]),
			FirstExtID:   binary.LittleEndian.Uint64(b[48:]),
			LastExtID:    binary.LittleEndian.Uint64(b[56:]),
			FirstOffset:  binary.LittleEndian.Uint64(b[64:]),
			LastOffset:   binary.LittleEndian.Uint64(b[72:]),
			Flags:        binary.LittleEndian.Uint32(b[80:]),
		},
	}, nil
}

// ReadSealedMark reads current.sealed in dir. ok is false when the file does
// not exist (no segment sealed yet); a damaged file is an error.
func ReadSealedMark(fsys vfs.FS, dir string) (m SealedMark, ok bool, err error) {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, CurrentSealedName))
	if errors.Is(err, fs.ErrNotExist) {
		return SealedMark{}, false, nil
	}
	if err != nil {
		return SealedMark{}, false, fmt.Errorf("read %s: %w", CurrentSealedName, err)
	}
	m, err = decodeSealedMark(b)
	if err != nil {
		return SealedMark{}, false, fmt.Errorf("read %s in %s: %w", CurrentSealedName, dir, err)
	}
	return m, true, nil
}

// WriteSealedMark replaces current.sealed in dir atomically (temp file,
// fsync, rename, fsync dir).
func WriteSealedMark(fsys vfs.FS, dir string, m SealedMark) error {
	if err := vfs.WriteFileAtomic(fsys, filepath.Join(dir, CurrentSealedName), encodeSealedMark(m), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", CurrentSealedName, err)
	}
	return nil
}

// ReadCurrentSealed returns the highest sealed segment id recorded in dir;
// ok is false when none is recorded.
func ReadCurrentSealed(fsys vfs.FS, dir string) (uint64, bool, error) {
	m, ok, err := ReadSealedMark(fsys, dir)
	return m.SegmentID, ok, err
}

// WriteCurrentSealed records id as the highest sealed segment, without a
// footer summary. It does not check that id is higher than the current one.
func WriteCurrentSealed(fsys vfs.FS, dir string, id uint64) error {
	return WriteSealedMark(fsys, dir, SealedMark{SegmentID: id})
}

// advanceCurrentSealed records (id, ft) unless current.sealed already names
// a higher segment. A damaged current.sealed is replaced.
func advanceCurrentSealed(fsys vfs.FS, dir string, id uint64, ft Footer) error {
	m, ok, err := ReadSealedMark(fsys, dir)
	if err == nil && ok && (m.SegmentID > id || (m.SegmentID == id && m.Footer == ft)) {
		return nil
	}
	return WriteSealedMark(fsys, dir, SealedMark{SegmentID: id, Footer: ft})
}

// ListSegments returns the ids of the segment files in dir, ascending. It
// reads the directory only; no segment is opened. Temp files of an
// unfinished Create (TempFileName) are not segments and are not listed.
func ListSegments(fsys vfs.FS, dir string) ([]uint64, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		if id, ok := ParseFileName(e.Name()); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// RemoveTempFiles deletes the temp files (TempFileName) that a crash inside
// Create left in dir and returns how many it removed. Such a file never was
// a segment: nothing was appended to it and no caller was told it exists.
// Recover calls it; a caller that boots without recovering a tail may call
// it too. It must not run while a Create in dir is in progress.
func RemoveTempFiles(fsys vfs.FS, dir string) (int, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("remove segment temp files: %w", err)
	}
	removed := 0
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), tempSuffix)
		if e.IsDir() || !ok {
			continue
		}
		if _, ok := ParseFileName(name); !ok {
			continue
		}
		if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("remove segment temp file: %w", err)
		}
		removed++
	}
	return removed, nil
}
