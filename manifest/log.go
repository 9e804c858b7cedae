package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tracing"
)

// DefaultChunkCapacity is the size at which a chunk rotates (bytes).
const DefaultChunkCapacity = 256 << 10

// Position is where a record lives: chunk index and byte offset in the
// chunk file. Positions of one stream grow strictly in (Chunk, Offset) order.
type Position struct {
	Chunk  uint64
	Offset int64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.Chunk < q.Chunk || p.Chunk == q.Chunk && p.Offset < q.Offset
}

func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Chunk, p.Offset) }

// Uploader puts an object into Tier 2 and returns its ETag once the store
// confirmed it.
type Uploader interface {
	PutObject(ctx context.Context, key string, data []byte, meta map[string]string) (etag string, err error)
}

// Event is one committed record on its way to subscribers.
type Event struct {
	Stream string
	Chunk  uint64
	Offset int64
	Record Record
	// Raw is the encoded record, header and payload.
	Raw []byte
}

// Publisher delivers events to subscribers (NATS in the gateway). Publish
// may be called again with the same event after a failure or a restart; the
// (Stream, Chunk, Offset) triple identifies it for deduplication.
type Publisher interface {
	Publish(ctx context.Context, ev Event) error
}

// Options configure a Log. The zero value is usable.
type Options struct {
	// ChunkCapacity is the chunk size that triggers rotation (bytes);
	// default DefaultChunkCapacity. A single larger record gets a chunk of
	// its own.
	ChunkCapacity int64
	// RotationPeriod rotates a chunk once its first record is this old; 0
	// disables time-based rotation.
	RotationPeriod time.Duration
	Logger         *slog.Logger
	// Instruments counts manifest_records, manifest_commit_failures and the
	// other manifest_* series and times manifest_replay_seconds; it is the
	// process's one instrument set. Nil counts nothing.
	Instruments *tracing.Instruments
	// Uploader receives sealed chunks and snapshots; without one no chunk is
	// ever deleted locally.
	Uploader Uploader
	// Publisher receives every committed record in order.
	Publisher Publisher
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// RetryMin and RetryMax bound the exponential backoff of background
	// uploads and publication; defaults 100 ms and 10 s.
	RetryMin, RetryMax time.Duration
	// KeepSnapshots is how many snapshot files stay on disk; default 2.
	KeepSnapshots int
	// Epoch is the ownership epoch the Log writes its Tier 2 objects
	// under (manifest/<stream>/<epoch>/<chunk>.mlog, snapshots likewise);
	// 0, the default, is the layout before epochs, unchanged, unless the
	// local copy was written under a higher epoch (LocalEpoch), which it
	// then continues. An epoch below the local copy's is refused
	// (ErrEpochBehind). A Log opened at an epoch above 0 starts the
	// epoch's chain in Tier 2 with an anchor snapshot (see "Epochs" in
	// the package doc); SetEpoch changes the epoch while open.
	Epoch uint64
	// ArchiveInterval bounds how long a committed UploadDone record waits
	// in the active chunk before the chunk is sealed (and so uploaded),
	// when neither capacity nor RotationPeriod seals it first; default
	// DefaultArchiveInterval, negative never seals for it. It applies only
	// with an Uploader.
	ArchiveInterval time.Duration
}

// DefaultArchiveInterval is the default Options.ArchiveInterval.
const DefaultArchiveInterval = time.Second

func (o *Options) setDefaults() {
	if o.ChunkCapacity <= 0 {
		o.ChunkCapacity = DefaultChunkCapacity
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(10*time.Second, o.RetryMin)
	}
	if o.KeepSnapshots <= 0 {
		o.KeepSnapshots = 2
	}
	if o.ArchiveInterval == 0 {
		o.ArchiveInterval = DefaultArchiveInterval
	}
}

// ErrClosed is returned by calls on a closed Log.
var ErrClosed = errors.New("manifest: log closed")

// File names in a stream's manifest directory.
const (
	chunkExt       = ".mlog"
	snapshotPrefix = "snapshot_"
	snapshotExt    = ".bin"
	cursorFile     = "publish.cursor"
	tmpExt         = ".tmp"
)

// ChunkPath is the file of chunk index in dir.
func ChunkPath(dir string, index uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", index, chunkExt))
}

// SnapshotPath is the file of snapshot id in dir.
func SnapshotPath(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d%s", snapshotPrefix, id, snapshotExt))
}

// ChunkKeyAt is the Tier 2 object key of a manifest chunk written under
// epoch: manifest/<stream>/<epoch>/<index>.mlog, or
// manifest/<stream>/<index>.mlog for epoch 0 (the layout before epochs).
func ChunkKeyAt(stream string, epoch, index uint64) string {
	return epochPrefix("manifest/", stream, epoch) + strconv.FormatUint(index, 10) + chunkExt
}

// SnapshotKeyAt is the Tier 2 object key of a snapshot written under
// epoch: snapshots/<stream>/<epoch>/<id>.bin, or snapshots/<stream>/<id>.bin
// for epoch 0.
func SnapshotKeyAt(stream string, epoch, id uint64) string {
	return epochPrefix("snapshots/", stream, epoch) + strconv.FormatUint(id, 10) + snapshotExt
}

// epochPrefix is the key prefix of one epoch's objects of a kind.
func epochPrefix(kind, stream string, epoch uint64) string {
	if epoch == 0 {
		return kind + stream + "/"
	}
	return kind + stream + "/" + strconv.FormatUint(epoch, 10) + "/"
}

// ChunkKey is the epoch-0 key of a manifest chunk (ChunkKeyAt).
func ChunkKey(stream string, index uint64) string { return ChunkKeyAt(stream, 0, index) }

// SnapshotKey is the epoch-0 key of a snapshot (SnapshotKeyAt).
func SnapshotKey(stream string, id uint64) string { return SnapshotKeyAt(stream, 0, id) }

// ChunkInfo describes one chunk file on disk.
type ChunkInfo struct {
	Path   string
	Header ChunkHeader
}

type chunkMeta struct {
	hdr       ChunkHeader
	path      string
	uploading bool
}

// openChunk is the chunk Append writes into; it exists on disk once its
// first record is committed.
type openChunk struct {
	index, baseRecord uint64
	size              int64 // header + committed + pending bytes
	count             uint64
	firstAt           time.Time
	// doneAt is when the chunk got its first UploadDone record (zero:
	// none); ArchiveInterval counts from it.
	doneAt time.Time
}

// batch is the pending records of one chunk, written by the next Commit.
type batch struct {
	index, baseRecord uint64
	buf               []byte
	records           []Record
	offsets           []int64 // of records, in the chunk
	lastOffset        int64
	seal              bool
}

// Log is the manifest of one stream: an append-only sequence of chunk files
// plus snapshots in one directory. Append buffers records, Commit makes them
// durable (group commit) and folds them into the index. Background workers
// upload sealed chunks and snapshots through Options.Uploader and publish
// committed records through Options.Publisher; neither ever blocks Append or
// Commit.
//
// A failed write or fsync does not lose the records of the failed Commit:
// they stay pending, in order, and the next Append or Commit first cuts
// the files back to the committed state (see retryLocked) and writes them
// again. A Commit error therefore means "not committed yet", never "will
// not be": a caller must not append the same records again. While the
// retry keeps failing, every Append and Commit returns its error.
//
// Once damage is found in the committed range, the Log refuses further
// writes for good (quarantine): the caller reopens, and Open either
// recovers the committed state or reports an *IntegrityError.
//
// A Log is safe for concurrent use.
type Log struct {
	fs     vfs.FS
	dir    string
	stream string
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	chunks  []*chunkMeta // on disk, ascending index
	active  vfs.File     // handle of the open chunk once it exists
	cur     openChunk
	pending []*batch
	idx     *Index
	failed  error // quarantine: damage in committed data, never cleared
	// uncommitted is the error of the last failed Commit while its
	// batches are still pending; the disk may hold bytes of them past the
	// committed state, which retryLocked cuts before writing them again.
	uncommitted error
	closed      bool
	snap        Snapshot // latest snapshot (Index nil when none)
	snapUp      bool     // latest snapshot confirmed in Tier 2
	prunedAt    uint64   // snapshot whose Tier 2 prune is done (tier2prune.go)
	cursor      Position // next record to publish
	snapIDs     []uint64 // snapshot files on disk, ascending
	unknown     int      // unknown records seen at open
	stopped     chan struct{}
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	wakePub     chan struct{}
	wakeUp      chan struct{}
	replayed    time.Duration

	// Epochs and the archived position (archive.go).
	epoch uint64
	// anchor is the snapshot that starts this epoch's chain in Tier 2
	// (epoch > 0); anchorUp is set once it is confirmed there.
	anchor   Snapshot
	anchorUp bool
	// frozen is what Archived reports while the epoch's anchor is not yet
	// in Tier 2: the archived state when the epoch changed.
	frozen Archived
	// doneAt is, per segment, the position of its first committed
	// UploadDone record (just before the snapshot position for one the
	// loaded snapshot already showed uploaded).
	doneAt      map[uint64]Position
	archived    Archived // last value signalled on archivedCh
	archivedCh  chan struct{}
	wakeArchive chan struct{}
}

// Open opens (creating if needed) the manifest of stream in dir, loads the
// newest valid snapshot, replays the chunks after it, trims a torn tail left
// by an unfinished commit and starts the background workers. Damage inside
// committed data is returned as *IntegrityError and nothing is opened.
func Open(fs vfs.FS, dir, stream string, opts Options) (*Log, error) {
	opts.setDefaults()
	l := &Log{
		fs: fs, dir: dir, stream: stream, opts: opts,
		log:     opts.Logger.With("stream", stream),
		idx:     NewIndex(stream),
		wakePub: make(chan struct{}, 1),
		wakeUp:  make(chan struct{}, 1),
		doneAt:  map[uint64]Position{},

		archivedCh:  make(chan struct{}, 1),
		wakeArchive: make(chan struct{}, 1),
	}
	start := time.Now()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create manifest dir: %w", err)
	}
	if err := l.recover(); err != nil {
		if l.active != nil {
			l.active.Close()
		}
		return nil, err
	}
	if err := l.openEpoch(); err != nil {
		if l.active != nil {
			l.active.Close()
		}
		return nil, err
	}
	l.replayed = time.Since(start)
	l.opts.Instruments.ObserveManifestReplay(context.Background(), l.replayed)
	l.log.Info("manifest_replay_done", "chunks", len(l.chunks), "records", l.idx.Records,
		"segments", l.idx.Len(), "snapshot", l.snap.ID, "unknown_records", l.unknown, "took", l.replayed)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	if opts.Publisher != nil {
		l.wg.Add(1)
		go l.publishLoop(ctx)
	}
	if opts.Uploader != nil {
		l.wg.Add(1)
		go l.uploadLoop(ctx)
		if opts.ArchiveInterval > 0 {
			l.wg.Add(1)
			go l.archiveLoop(ctx)
		}
	}
	return l, nil
}

// openEpoch sets the epoch at Open: Options.Epoch, or the epoch the local
// copy was written under when that is higher and Options.Epoch is 0 (an
// offline tool goes on writing where the owner left off). A Log at an
// epoch above 0 starts with a new anchor.
func (l *Log) openEpoch() error {
	local, _, err := LocalEpoch(l.fs, l.dir)
	if err != nil {
		return err
	}
	want := l.opts.Epoch
	if want != 0 && want < local {
		return fmt.Errorf("%w: open at epoch %d, the local copy is at epoch %d", ErrEpochBehind, want, local)
	}
	l.epoch = local
	e := max(want, local)
	if e == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.startEpochLocked(e); err != nil {
		return fmt.Errorf("start epoch %d: %w", e, err)
	}
	return nil
}

// ReplayDuration is how long Open took to rebuild the index.
func (l *Log) ReplayDuration() time.Duration { return l.replayed }

func (l *Log) integrity(chunk uint64, off int64, err error) *IntegrityError {
	var ie *IntegrityError
	if errors.As(err, &ie) {
		c := *ie
		c.Stream, c.Chunk = l.stream, chunk
		return &c
	}
	return &IntegrityError{Stream: l.stream, Chunk: chunk, Offset: off, Err: err}
}

type dirListing struct {
	chunks    []uint64
	snapshots []uint64
}

// listDir returns chunk indexes and snapshot ids in ascending order and
// removes temp files of unfinished atomic writes (they were never
// acknowledged).
func listDir(fs vfs.FS, dir string, log *slog.Logger) (dirListing, error) {
	var d dirListing
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return d, fmt.Errorf("list manifest dir: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpExt):
			if log != nil {
				if err := fs.Remove(filepath.Join(dir, name)); err != nil {
					return d, fmt.Errorf("remove temp file: %w", err)
				}
				log.Info("manifest_temp_removed", "file", name)
			}
		case strings.HasSuffix(name, chunkExt):
			if n, err := strconv.ParseUint(strings.TrimSuffix(name, chunkExt), 10, 64); err == nil {
				d.chunks = append(d.chunks, n)
			}
		case strings.HasPrefix(name, snapshotPrefix) && strings.HasSuffix(name, snapshotExt):
			if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, snapshotPrefix), snapshotExt), 10, 64); err == nil {
				d.snapshots = append(d.snapshots, n)
			}
		}
	}
	sort.Slice(d.chunks, func(i, j int) bool { return d.chunks[i] < d.chunks[j] })
	sort.Slice(d.snapshots, func(i, j int) bool { return d.snapshots[i] < d.snapshots[j] })
	return d, nil
}

// loadSnapshot returns the newest snapshot that verifies, skipping corrupt
// ones with a log line.
func loadSnapshot(fs vfs.FS, dir string, ids []uint64, log *slog.Logger) *Snapshot {
	for i := len(ids) - 1; i >= 0; i-- {
		data, err := vfs.ReadFile(fs, SnapshotPath(dir, ids[i]))
		if err == nil {
			var s *Snapshot
			if s, err = DecodeSnapshot(data); err == nil && s.ID == ids[i] {
				return s
			} else if err == nil {
				err = fmt.Errorf("%w: id %d in file of snapshot %d", ErrSnapshot, s.ID, ids[i])
			}
		}
		log.Warn("manifest_snapshot_skipped", "snapshot", ids[i], "err", err)
	}
	return nil
}

func (l *Log) recover() error {
	d, err := listDir(l.fs, l.dir, l.log)
	if err != nil {
		return err
	}
	l.snapIDs = d.snapshots
	from := Position{Chunk: 0, Offset: ChunkHeaderSize}
	var nextRecord uint64
	if s := loadSnapshot(l.fs, l.dir, d.snapshots, l.log); s != nil {
		l.snap = *s
		l.idx = s.Index.Clone()
		l.idx.Stream = l.stream
		from, nextRecord = s.Position, s.NextRecord
		l.noteSnapshotUploads(s)
	}
	// Chunks wholly before the snapshot are kept only until uploaded; they
	// are not replayed.
	var replay []uint64
	for _, c := range d.chunks {
		if c < from.Chunk {
			data, err := readHeader(l.fs, ChunkPath(l.dir, c))
			if err != nil {
				return l.integrity(c, 0, err)
			}
			l.chunks = append(l.chunks, &chunkMeta{hdr: data, path: ChunkPath(l.dir, c)})
			continue
		}
		replay = append(replay, c)
	}
	if len(replay) > 0 && replay[0] != from.Chunk {
		return l.integrity(from.Chunk, -1, fmt.Errorf("%w: replay starts at chunk %d, found chunk %d first", ErrChunkMissing, from.Chunk, replay[0]))
	}
	if len(replay) == 0 && from.Offset > ChunkHeaderSize {
		return l.integrity(from.Chunk, -1, fmt.Errorf("%w: snapshot %d covers records up to offset %d of it", ErrChunkMissing, l.snap.ID, from.Offset))
	}
	l.cur = openChunk{index: from.Chunk, baseRecord: nextRecord, size: ChunkHeaderSize}
	for i, c := range replay {
		if c != from.Chunk+uint64(i) {
			return l.integrity(from.Chunk+uint64(i), -1, ErrChunkMissing)
		}
		path := ChunkPath(l.dir, c)
		data, err := vfs.ReadFile(l.fs, path)
		if err != nil {
			return fmt.Errorf("read chunk %d: %w", c, err)
		}
		r, err := NewChunkReader(data)
		if err != nil {
			return l.integrity(c, 0, err)
		}
		h := r.Header
		if h.Index != c {
			return l.integrity(c, 0, fmt.Errorf("%w: header names chunk %d", ErrChunkRecords, h.Index))
		}
		if i > 0 && h.BaseRecord != nextRecord {
			return l.integrity(c, 0, fmt.Errorf("%w: base record %d, previous chunk ends at %d", ErrChunkRecords, h.BaseRecord, nextRecord))
		}
		if i == 0 {
			if from.Offset > h.End() {
				return l.integrity(c, from.Offset, fmt.Errorf("%w: snapshot covers up to %d, chunk commits %d", ErrChunkTruncated, from.Offset, h.End()))
			}
			if err := r.SeekTo(from.Offset); err != nil {
				return l.integrity(c, from.Offset, err)
			}
		}
		for {
			cr, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return l.integrity(c, cr.Offset, err)
			}
			l.idx.Apply(cr.Record)
			l.noteUploadDone(cr.Record, Position{Chunk: c, Offset: cr.Offset})
		}
		l.unknown += r.Unknown
		if r.TornBytes > 0 {
			if err := truncateFile(l.fs, path, h.End()); err != nil {
				return fmt.Errorf("trim torn tail of chunk %d: %w", c, err)
			}
			l.log.Warn("manifest_torn_tail_trimmed", "chunk", c, "bytes", r.TornBytes)
		}
		last := i == len(replay)-1
		if !last && !h.Sealed() {
			// A crash between the last commit of this chunk and its seal:
			// the next chunk exists, so nothing more will go here.
			h.Flags |= ChunkSealed
			h.Generation++
			if err := writeSlot(l.fs, path, h); err != nil {
				return fmt.Errorf("seal chunk %d: %w", c, err)
			}
		}
		l.chunks = append(l.chunks, &chunkMeta{hdr: h, path: path})
		nextRecord = h.BaseRecord + h.RecordCount
		if last {
			if h.Sealed() {
				l.cur = openChunk{index: c + 1, baseRecord: nextRecord, size: ChunkHeaderSize}
			} else {
				f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					return fmt.Errorf("open chunk %d: %w", c, err)
				}
				l.active = f
				l.cur = openChunk{index: c, baseRecord: h.BaseRecord, size: h.End(), count: h.RecordCount, firstAt: l.opts.Clock()}
			}
		}
	}
	l.opts.Instruments.AddManifestUnknownRecords(context.Background(), int64(l.unknown))
	if l.opts.Publisher != nil {
		l.cursor = l.loadCursor()
	}
	return nil
}

func readHeader(fs vfs.FS, path string) (ChunkHeader, error) {
	f, err := vfs.Open(fs, path)
	if err != nil {
		return ChunkHeader{}, err
	}
	defer f.Close()
	b := make([]byte, ChunkHeaderSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return ChunkHeader{}, fmt.Errorf("%w: %v", ErrChunkHeader, err)
	}
	return ParseChunkHeader(b)
}

func truncateFile(fs vfs.FS, path string, size int64) error {
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeSlot rewrites the header slot of h.Generation in the file at path.
func writeSlot(fs vfs.FS, path string, h ChunkHeader) error {
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = writeSlotTo(f, h)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeSlotTo(f vfs.File, h ChunkHeader) error {
	if err := writeAt(f, h.appendSlot(nil), slotOffset(h.Generation)); err != nil {
		return err
	}
	return f.Sync()
}

func writeAt(f vfs.File, b []byte, off int64) error {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	n, err := f.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// Append buffers r for the next Commit and returns where it will live. It
// rotates to a new chunk when r would overflow ChunkCapacity or the current
// chunk is older than RotationPeriod. Nothing is durable, applied to the
// index or published before Commit returns nil.
func (l *Log) Append(r Record) (Position, error) {
	if err := r.Validate(); err != nil {
		return Position{}, fmt.Errorf("append %s: %w", r.Type, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		l.countRefused(err)
		return Position{}, err
	}
	return l.appendLocked(r), nil
}

// usable reports why the Log cannot take writes, retrying a failed commit
// first.
func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return l.failed
	}
	if l.uncommitted != nil {
		return l.retryLocked()
	}
	return nil
}

// retryLocked repeats a failed Commit. After a failed write or fsync the
// page cache no longer says what is on disk (Linux may have dropped the
// dirty pages, or may write them later), so the only safe retry is to
// make the disk agree with the committed state again, through a fresh
// handle, and write the pending batches anew:
//
//  1. The open chunk gets its committed header written into the next
//     generation's slot and fsynced, so a header slot written by the
//     failed attempt (claiming records that may not be on disk) can never
//     be the newest valid one.
//  2. The chunk is truncated to its committed length and fsynced: bytes
//     of the failed attempt are gone, whatever the cache held.
//  3. The pending batches are written as by Commit. A chunk file the
//     failed attempt created is replaced by the atomic create.
//
// A crash at any step leaves the committed state, or the committed state
// plus a prefix of the pending batches, each record once.
func (l *Log) retryLocked() error {
	if err := l.cutUncommittedLocked(); err != nil {
		l.log.Warn("manifest_retry_failed", "err", err, "after", l.uncommitted)
		return fmt.Errorf("%w (cut back to the committed state: %v)", l.uncommitted, err)
	}
	l.uncommitted = nil
	if err := l.writePendingLocked(); err != nil {
		return err
	}
	l.log.Info("manifest_commit_retried")
	return nil
}

// cutUncommittedLocked makes the open chunk on disk hold exactly its
// committed records (steps 1 and 2 of retryLocked).
func (l *Log) cutUncommittedLocked() error {
	if l.active != nil {
		l.active.Close()
		l.active = nil
	}
	m := l.lastChunk()
	if m == nil || m.hdr.Sealed() {
		// Nothing is written to a sealed chunk; the failed batch was a new
		// chunk's atomic create.
		return nil
	}
	h := m.hdr
	h.Generation++
	if err := writeSlot(l.fs, m.path, h); err != nil {
		return fmt.Errorf("rewrite header of chunk %d: %w", h.Index, err)
	}
	m.hdr = h
	if err := truncateFile(l.fs, m.path, h.End()); err != nil {
		return fmt.Errorf("truncate chunk %d to %d bytes: %w", h.Index, h.End(), err)
	}
	return nil
}

// countRefused counts a write refused because an earlier commit failed as a
// metadata failure: the transition it carried is not recorded, and the
// AOFMetadataFailures alert must keep seeing that while the stream is stuck.
func (l *Log) countRefused(err error) {
	if !errors.Is(err, ErrClosed) {
		l.opts.Instruments.IncMetadataFailure(context.Background())
	}
}

func (l *Log) appendLocked(r Record) Position {
	if r.Payload == nil && r.Type.Known() {
		// Apply the same payload replay will decode, so the live index and a
		// rebuilt one agree.
		r.Payload = deref(newPayload(r.Type))
	}
	start := 0
	var b *batch
	if n := len(l.pending); n > 0 && l.pending[n-1].index == l.cur.index {
		b = l.pending[n-1]
		start = len(b.buf)
	}
	var buf []byte
	if b != nil {
		buf = b.buf
	}
	buf = AppendRecord(buf, r)
	size := int64(len(buf) - start)
	now := l.opts.Clock()
	if l.cur.count > 0 && (l.cur.size+size > l.opts.ChunkCapacity ||
		l.opts.RotationPeriod > 0 && now.Sub(l.cur.firstAt) >= l.opts.RotationPeriod) {
		if b != nil {
			b.buf = buf[:start]
			b.seal = true
		} else {
			l.pending = append(l.pending, &batch{index: l.cur.index, baseRecord: l.cur.baseRecord, seal: true})
		}
		l.cur = openChunk{index: l.cur.index + 1, baseRecord: l.cur.baseRecord + l.cur.count, size: ChunkHeaderSize}
		b = nil
		buf = AppendRecord(nil, r)
	}
	if b == nil {
		b = &batch{index: l.cur.index, baseRecord: l.cur.baseRecord}
		l.pending = append(l.pending, b)
	}
	if l.cur.count == 0 {
		l.cur.firstAt = now
	}
	if r.Type == UploadDone && l.cur.doneAt.IsZero() {
		l.cur.doneAt = now
		wake(l.wakeArchive)
	}
	b.buf = buf
	b.records = append(b.records, r)
	pos := Position{Chunk: l.cur.index, Offset: l.cur.size}
	b.offsets = append(b.offsets, pos.Offset)
	b.lastOffset = pos.Offset
	l.cur.size += size
	l.cur.count++
	return pos
}

// Commit writes every appended record, fsyncs and only then updates the
// chunk header (committed length, checksum) and fsyncs again, so a crash
// at any point leaves either the old or the new committed state. It then
// folds the records into the index and wakes the publisher. After an error
// the records stay pending and the next Append or Commit retries them (see
// retryLocked): do not append them again.
func (l *Log) Commit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commitLocked()
}

func (l *Log) commitLocked() error {
	if err := l.usable(); err != nil {
		l.countRefused(err)
		return err
	}
	return l.writePendingLocked()
}

// writePendingLocked writes the pending batches in order. A batch leaves
// the pending list once it is committed, so after a failure only the
// failed batch and those after it stay for retryLocked.
func (l *Log) writePendingLocked() error {
	n, done := 0, 0
	defer func() {
		k := copy(l.pending, l.pending[done:])
		clear(l.pending[k:])
		l.pending = l.pending[:k]
		if n > 0 {
			l.opts.Instruments.AddManifestRecords(context.Background(), int64(n))
			wake(l.wakePub)
		}
	}()
	for _, b := range l.pending {
		if err := l.writeBatch(b); err != nil {
			l.uncommitted = fmt.Errorf("commit manifest chunk %d: %w", b.index, err)
			l.opts.Instruments.IncManifestCommitFailure(context.Background())
			l.opts.Instruments.IncMetadataFailure(context.Background())
			l.log.Error("manifest_commit_failed", "chunk", b.index, "err", err)
			return l.uncommitted
		}
		for i, r := range b.records {
			l.idx.Apply(r)
			l.noteUploadDone(r, Position{Chunk: b.index, Offset: b.offsets[i]})
		}
		n += len(b.records)
		done++
	}
	return nil
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (l *Log) lastChunk() *chunkMeta {
	if len(l.chunks) == 0 {
		return nil
	}
	return l.chunks[len(l.chunks)-1]
}

func (l *Log) writeBatch(b *batch) error {
	m := l.lastChunk()
	if m == nil || m.hdr.Index != b.index {
		return l.createChunk(b)
	}
	if l.active == nil {
		f, err := l.fs.OpenFile(m.path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open chunk: %w", err)
		}
		l.active = f
	}
	h := m.hdr
	if len(b.records) > 0 {
		if err := writeAt(l.active, b.buf, h.End()); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		if err := l.active.Sync(); err != nil {
			return fmt.Errorf("sync records: %w", err)
		}
		h.CRC64 = crc64Update(h.CRC64, b.buf)
		h.TailOffset = b.lastOffset
		h.CommittedLen += uint64(len(b.buf))
		h.RecordCount += uint64(len(b.records))
	}
	if b.seal {
		h.Flags |= ChunkSealed
	}
	h.Generation++
	if err := writeSlotTo(l.active, h); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	m.hdr = h
	if b.seal {
		l.sealed()
	}
	return nil
}

// sealed closes the handle of a chunk that just got its seal flag and wakes
// the uploader.
func (l *Log) sealed() {
	if l.active != nil {
		l.active.Close()
		l.active = nil
	}
	wake(l.wakeUp)
}

// createChunk writes a chunk's first committed records under a temp name
// and renames it into place, so a chunk file never exists without a
// committed record.
func (l *Log) createChunk(b *batch) error {
	path := ChunkPath(l.dir, b.index)
	h := ChunkHeader{
		Index: b.index, BaseRecord: b.baseRecord, RecordCount: uint64(len(b.records)),
		TailOffset: b.lastOffset, CommittedLen: uint64(len(b.buf)), CRC64: CRC64(b.buf), Generation: 1,
	}
	if b.seal {
		h.Flags |= ChunkSealed
	}
	data := make([]byte, ChunkHeaderSize, ChunkHeaderSize+len(b.buf))
	copy(data[slotOffset(h.Generation):], h.appendSlot(nil))
	data = append(data, b.buf...)
	if err := vfs.WriteFileAtomic(l.fs, path, data, 0o644); err != nil {
		return fmt.Errorf("create chunk: %w", err)
	}
	// Committed: the next batch of this chunk opens it (writeBatch).
	l.chunks = append(l.chunks, &chunkMeta{hdr: h, path: path})
	if b.seal {
		l.sealed()
	}
	return nil
}

// Index returns a copy of the index folded from every committed record.
func (l *Log) Index() *Index {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idx.Clone()
}

// Segment returns the state of one segment.
func (l *Log) Segment(id uint64) (SegmentState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idx.Get(id)
}

// Chunks describes the chunk files on disk, ascending.
func (l *Log) Chunks() []ChunkInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ChunkInfo, len(l.chunks))
	for i, m := range l.chunks {
		out[i] = ChunkInfo{Path: m.path, Header: m.hdr}
	}
	return out
}

// Tail returns the position after the last committed record: where the
// next committed record will start (or a new chunk's first record, if the
// current chunk is sealed or full).
func (l *Log) Tail() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := l.lastChunk(); m != nil {
		if m.hdr.Sealed() {
			return Position{Chunk: m.hdr.Index + 1, Offset: ChunkHeaderSize}
		}
		return Position{Chunk: m.hdr.Index, Offset: m.hdr.End()}
	}
	return Position{Chunk: l.cur.index, Offset: ChunkHeaderSize}
}

// Stream returns the stream name.
func (l *Log) Stream() string { return l.stream }

// Snapshot commits pending records, writes the index and the position it
// covers to a new snapshot file atomically, then appends and commits a
// SnapshotMarker record. It returns the snapshot id.
func (l *Log) Snapshot() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked()
}

func (l *Log) snapshotLocked() (uint64, error) {
	if err := l.commitLocked(); err != nil {
		return 0, err
	}
	s := Snapshot{
		ID:         l.snap.ID + 1,
		Position:   Position{Chunk: l.cur.index, Offset: l.cur.size},
		NextRecord: l.cur.baseRecord + l.cur.count,
		Index:      l.idx,
	}
	if n := len(l.snapIDs); n > 0 && l.snapIDs[n-1] >= s.ID {
		s.ID = l.snapIDs[n-1] + 1 // never reuse the id of a corrupt file we skipped
	}
	if err := vfs.WriteFileAtomic(l.fs, SnapshotPath(l.dir, s.ID), s.AppendBinary(nil), 0o644); err != nil {
		return 0, fmt.Errorf("write snapshot %d: %w", s.ID, err)
	}
	s.Index = nil
	l.snap, l.snapUp = s, false
	l.snapIDs = append(l.snapIDs, s.ID)
	l.appendLocked(Record{Type: SnapshotMarker, TimestampMS: l.opts.Clock().UnixMilli(),
		Payload: SnapshotMarkerPayload{ChunkIndex: s.Position.Chunk, ChunkOffset: uint64(s.Position.Offset), SnapshotID: s.ID}})
	if err := l.commitLocked(); err != nil {
		return s.ID, err
	}
	for len(l.snapIDs) > l.opts.KeepSnapshots {
		old := l.snapIDs[0]
		if err := l.fs.Remove(SnapshotPath(l.dir, old)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("manifest_snapshot_remove_failed", "snapshot", old, "err", err)
			break
		}
		l.snapIDs = l.snapIDs[1:]
	}
	l.log.Info("manifest_snapshot_written", "snapshot", s.ID, "position", s.Position.String())
	wake(l.wakeUp)
	return s.ID, nil
}

// Close commits pending records, stops the background workers (persisting
// the publication cursor) and closes the chunk file. Uploads and
// publication still outstanding resume after the next Open.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	err := l.commitLocked()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active != nil {
		if cerr := l.active.Close(); err == nil {
			err = cerr
		}
		l.active = nil
	}
	return err
}
