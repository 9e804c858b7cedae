package tier1

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bop-aof/aof/internal/vfs"
)

// Key names one artifact: a segment of a stream.
type Key struct {
	Stream  string
	Segment uint64
}

func (k Key) String() string { return fmt.Sprintf("%s/%020d", k.Stream, k.Segment) }

// Eviction is one artifact on its way out, from NextEviction or
// BeginEvict until FinishEviction.
type Eviction struct {
	Key   Key
	Bytes int64
	e     *entry
	// needUploaded: a budget eviction, which goes ahead only if the
	// artifact is still marked uploaded when it finishes.
	needUploaded bool
}

// CacheOptions configures a Cache.
type CacheOptions struct {
	// Root is the data root; artifacts live in <Root>/tier1/<stream>/<segment_id:020>.zst.
	Root string
	// FS is the file system; nil means vfs.Default.
	FS vfs.FS
	// MaxBytes is the byte budget; 0 means unlimited.
	MaxBytes int64
	Logger   *slog.Logger
}

// CacheStats is a point-in-time view of the cache.
type CacheStats struct {
	Bytes    int64
	Files    int
	MaxBytes int64
	Pinned   int
	Uploaded int
}

// ErrNotCached is returned for keys the cache does not hold.
var ErrNotCached = errors.New("tier1: artifact not cached")

// ErrEvicting is returned by Pin for an artifact whose eviction has begun
// (its owner is recording it as gone), and by BeginEvict for one already
// being evicted.
var ErrEvicting = errors.New("tier1: artifact is being evicted")

// ErrPinned is returned by BeginEvict for an artifact in use.
var ErrPinned = errors.New("tier1: artifact is pinned")

type entry struct {
	key      Key
	bytes    int64
	uploaded bool
	pins     int
	// evicting is set, under the cache lock and only while pins is 0,
	// from the start of an eviction (NextEviction, BeginEvict) until the
	// entry is dropped (after its file is removed) or kept
	// (FinishEviction): Pin refuses it, so nobody starts relying on an
	// artifact the store is recording as gone, and Put waits for it, so
	// the removal never takes the file of the artifact that replaces it.
	evicting bool
	elem     *list.Element // in lru; front = most recently used
}

// Cache is the Tier 1 warm cache: artifacts on local disk under a byte
// budget. Eviction is least-recently-used, and only ever removes artifacts
// that are marked uploaded (confirmed in Tier 2) and not pinned, so the cache
// may stay over budget while nothing is evictable; Stats shows it. An
// operator's eviction (BeginEvict) skips the uploaded mark but not the pins.
//
// The cache evicts nothing by itself and calls nobody: its owner records
// each eviction (the store writes a LocalEvicted manifest record) before
// the file goes, in two steps, NextEviction or BeginEvict, then
// FinishEviction. Whatever may take the cache over budget or make an
// artifact evictable (Put, Unpin, MarkUploaded, SetMaxBytes, Scan) signals
// EvictionDue, a channel holding one pending wake-up that the owner drains
// on a goroutine of its own (wlog's actor style). So no caller of the cache
// runs an eviction, and the cache never takes a lock of its owner.
//
// The uploaded mark is not stored on disk: after a restart, Scan finds the
// files and the store marks the uploaded ones again from the manifest.
// Cache is safe for concurrent use.
type Cache struct {
	root string
	fs   vfs.FS
	log  *slog.Logger

	// due is EvictionDue: one pending wake-up is enough, as the owner's
	// pass runs until NextEviction finds nothing.
	due chan struct{}

	mu       sync.Mutex
	entries  map[Key]*entry
	lru      *list.List
	bytes    int64
	maxBytes int64
	// removing holds the keys whose file Remove is deleting after it
	// dropped their entry; Put waits for those too.
	removing map[Key]bool
	// settled is broadcast when an eviction or removal of a key ends.
	settled *sync.Cond
}

// NewCache returns an empty cache; call Scan to adopt artifacts already on disk.
func NewCache(opts CacheOptions) (*Cache, error) {
	if opts.Root == "" {
		return nil, errors.New("tier1: cache root is empty")
	}
	c := &Cache{
		root:     filepath.Join(opts.Root, "tier1"),
		fs:       opts.FS,
		log:      opts.Logger,
		entries:  make(map[Key]*entry),
		lru:      list.New(),
		maxBytes: opts.MaxBytes,
		removing: make(map[Key]bool),
		due:      make(chan struct{}, 1),
	}
	c.settled = sync.NewCond(&c.mu)
	if c.fs == nil {
		c.fs = vfs.Default
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := c.fs.MkdirAll(c.root, 0o755); err != nil {
		return nil, fmt.Errorf("create tier1 dir: %w", err)
	}
	return c, nil
}

// EvictionDue receives a value when the cache may be over budget with an
// evictable artifact; the owner then runs NextEviction until it finds
// nothing. One wake-up stays pending however many signals came.
func (c *Cache) EvictionDue() <-chan struct{} { return c.due }

// evictSoon signals EvictionDue without waiting.
func (c *Cache) evictSoon() {
	select {
	case c.due <- struct{}{}:
	default: // a wake-up is pending already and will see this change
	}
}

// Path is where the artifact for k lives.
func (c *Cache) Path(k Key) string {
	return filepath.Join(c.root, k.Stream, fmt.Sprintf("%020d.zst", k.Segment))
}

var artifactName = regexp.MustCompile(`^([0-9]{20})\.zst$`)

// Scan rebuilds the cache from disk: every <stream>/<id>.zst becomes an
// entry (not uploaded, not pinned), ordered for LRU by modification time;
// leftover .tmp files from interrupted Puts are removed. Scan replaces the
// current contents and then signals EvictionDue (with nothing marked
// uploaded yet, nothing is evictable).
func (c *Cache) Scan() error {
	streams, err := c.fs.ReadDir(c.root)
	if err != nil {
		return fmt.Errorf("scan tier1: %w", err)
	}
	type found struct {
		e     *entry
		mtime int64
	}
	var all []found
	for _, sd := range streams {
		if !sd.IsDir() {
			continue
		}
		dir := filepath.Join(c.root, sd.Name())
		files, err := c.fs.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("scan tier1 stream %s: %w", sd.Name(), err)
		}
		for _, f := range files {
			name := f.Name()
			if strings.HasSuffix(name, ".tmp") {
				if err := c.fs.Remove(filepath.Join(dir, name)); err != nil {
					return fmt.Errorf("remove leftover %s: %w", name, err)
				}
				c.log.Info("tier1_leftover_removed", "path", filepath.Join(dir, name))
				continue
			}
			m := artifactName.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			id, _ := strconv.ParseUint(m[1], 10, 64)
			info, err := f.Info()
			if err != nil {
				return fmt.Errorf("stat %s: %w", name, err)
			}
			all = append(all, found{e: &entry{key: Key{Stream: sd.Name(), Segment: id}, bytes: info.Size()}, mtime: info.ModTime().UnixNano()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime > all[j].mtime })
	c.mu.Lock()
	c.entries = make(map[Key]*entry, len(all))
	c.lru.Init()
	c.bytes = 0
	for _, f := range all {
		f.e.elem = c.lru.PushBack(f.e)
		c.entries[f.e.key] = f.e
		c.bytes += f.e.bytes
	}
	c.mu.Unlock()
	c.evictSoon()
	return nil
}

// Put writes an artifact for k atomically: fill writes into a temp file,
// which is fsynced, renamed into place and made durable with a directory
// fsync. If anything fails the temp file is removed and the previous
// artifact for k, if any, is untouched. A new artifact starts not uploaded
// and most recently used. It returns the artifact size.
//
// While k is being evicted or removed, the rename waits until its file
// is gone: the file that removal deletes is always the old artifact, and
// the new one is added after the old one's eviction was recorded (so the
// store records the new copy after the old one's LocalEvicted).
func (c *Cache) Put(k Key, fill func(w io.Writer) error) (int64, error) {
	path := c.Path(k)
	dir := filepath.Dir(path)
	if err := c.fs.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create stream dir: %w", err)
	}
	tmp := path + ".tmp"
	f, err := c.fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create temp artifact: %w", err)
	}
	fail := func(stage string, err error) (int64, error) {
		f.Close()
		c.fs.Remove(tmp)
		return 0, fmt.Errorf("put %s: %s: %w", k, stage, err)
	}
	cw := &countingWriter{w: f}
	if err := fill(cw); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		c.fs.Remove(tmp)
		return 0, fmt.Errorf("put %s: close: %w", k, err)
	}
	if err := c.install(k, tmp, path, cw.n); err != nil {
		c.fs.Remove(tmp)
		return 0, fmt.Errorf("put %s: rename: %w", k, err)
	}
	if err := c.fs.SyncDir(dir); err != nil {
		// The rename happened but may not survive a crash; report it and
		// still account for the file, which is there now.
		return cw.n, fmt.Errorf("put %s: fsync dir: %w", k, err)
	}
	c.evictSoon()
	return cw.n, nil
}

// install renames tmp into place as k's artifact and accounts for it, in
// one step under the cache lock once no eviction or removal of k is in
// flight: an eviction that starts later finds the new entry, so it can
// never remove the new file while the cache still counts it.
func (c *Cache) install(k Key, tmp, path string, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.settlingLocked(k) {
		c.settled.Wait()
	}
	if err := c.fs.Rename(tmp, path); err != nil {
		return err
	}
	c.addLocked(k, n)
	return nil
}

// settlingLocked reports whether k's file is being evicted or removed.
func (c *Cache) settlingLocked(k Key) bool {
	e, ok := c.entries[k]
	return c.removing[k] || (ok && e.evicting)
}

// PutBytes is Put for an artifact already in memory.
func (c *Cache) PutBytes(k Key, data []byte) (int64, error) {
	return c.Put(k, func(w io.Writer) error { _, err := w.Write(data); return err })
}

func (c *Cache) addLocked(k Key, n int64) {
	if e, ok := c.entries[k]; ok {
		c.bytes += n - e.bytes
		e.bytes = n
		e.uploaded = false
		c.lru.MoveToFront(e.elem)
		return
	}
	e := &entry{key: k, bytes: n}
	e.elem = c.lru.PushFront(e)
	c.entries[k] = e
	c.bytes += n
}

// Open opens the artifact for k and marks it most recently used. Pin it
// if it must not be evicted while in use (on POSIX an evicted file stays
// readable through an open reader, but a new Open fails).
func (c *Cache) Open(k Key) (*ArtifactReader, error) {
	if !c.Touch(k) {
		return nil, fmt.Errorf("open %s: %w", k, ErrNotCached)
	}
	return OpenArtifact(c.fs, c.Path(k))
}

// Contains reports whether k is cached, without touching it. An artifact
// being evicted is not: the store is recording it as gone, and whoever
// needs it (a compression, a hydration) writes it again, which waits for
// the eviction to end.
func (c *Cache) Contains(k Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return ok && !e.evicting
}

// Touch marks k most recently used. It reports whether k is cached.
func (c *Cache) Touch(k Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok {
		c.lru.MoveToFront(e.elem)
	}
	return ok
}

// Pin protects k from eviction until a matching Unpin. Pins nest. It
// fails with ErrEvicting while k's eviction is under way.
func (c *Cache) Pin(k Key) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return fmt.Errorf("pin %s: %w", k, ErrNotCached)
	}
	if e.evicting {
		return fmt.Errorf("pin %s: %w", k, ErrEvicting)
	}
	e.pins++
	return nil
}

// Unpin releases one Pin and signals EvictionDue.
func (c *Cache) Unpin(k Key) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok && e.pins > 0 {
		e.pins--
	}
	c.mu.Unlock()
	c.evictSoon()
}

// MarkUploaded records that Tier 2 confirmed k (ETag and crc), which makes
// it evictable, and signals EvictionDue.
func (c *Cache) MarkUploaded(k Key) error {
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok {
		e.uploaded = true
	}
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("mark uploaded %s: %w", k, ErrNotCached)
	}
	c.evictSoon()
	return nil
}

// BeginEvict starts the eviction of k's artifact whatever the budget and
// its uploaded mark (an operator's eviction). It refuses a pinned artifact
// (ErrPinned) and one already being evicted (ErrEvicting); the pin check
// and the evicting mark are taken under the cache lock together, so a Pin
// cannot slip in before the file goes. Finish it with FinishEviction.
func (c *Cache) BeginEvict(k Key) (Eviction, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	switch {
	case !ok:
		return Eviction{}, fmt.Errorf("evict %s: %w", k, ErrNotCached)
	case e.pins > 0:
		return Eviction{}, fmt.Errorf("evict %s: %w", k, ErrPinned)
	case e.evicting:
		return Eviction{}, fmt.Errorf("evict %s: %w", k, ErrEvicting)
	}
	e.evicting = true
	return Eviction{Key: e.key, Bytes: e.bytes, e: e}, nil
}

// NextEviction starts the eviction of the least recently used artifact
// that is marked uploaded, unpinned, not being evicted and not in skip,
// while the cache is over budget; ok is false when it is within budget or
// nothing is evictable. Finish it with FinishEviction.
func (c *Cache) NextEviction(skip map[Key]bool) (ev Eviction, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxBytes <= 0 || c.bytes <= c.maxBytes {
		return Eviction{}, false
	}
	for el := c.lru.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*entry)
		if e.uploaded && e.pins == 0 && !e.evicting && !skip[e.key] {
			// Marked before the owner records the artifact as gone: a Pin
			// in that window would keep an artifact the manifest no
			// longer counts, which the next boot removes.
			e.evicting = true
			return Eviction{Key: e.key, Bytes: e.bytes, e: e, needUploaded: true}, true
		}
	}
	return Eviction{}, false
}

// FinishEviction ends ev. With recorded (the owner recorded the artifact
// as gone) its file is removed and its entry dropped, unless the entry was
// removed meanwhile or, for a budget eviction, is no longer marked
// uploaded; without, the artifact stays and is unmarked. The entry stays,
// marked evicting, until its file is gone, so a Put of the same key waits
// instead of having its new file removed.
func (c *Cache) FinishEviction(ev Eviction, recorded bool) error {
	e := ev.e
	if e == nil {
		return fmt.Errorf("evict %s: no eviction begun", ev.Key)
	}
	if !recorded {
		c.endEviction(e, false)
		return nil
	}
	c.mu.Lock()
	cur, ok := c.entries[ev.Key]
	current := ok && cur == e && (!ev.needUploaded || cur.uploaded)
	c.mu.Unlock()
	if !current {
		c.endEviction(e, false)
		return fmt.Errorf("evict %s: removed during eviction", ev.Key)
	}
	path := c.Path(ev.Key)
	err := c.fs.Remove(path)
	// Recorded as gone: the entry goes whatever the removal did (a file
	// left behind is not counted by the store).
	c.endEviction(e, true)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Error("tier1_eviction_failed", "stream", ev.Key.Stream, "segment", ev.Key.Segment, "err", err)
		return fmt.Errorf("evict %s: %w", ev.Key, err)
	}
	if err := c.fs.SyncDir(filepath.Dir(path)); err != nil {
		c.log.Error("tier1_eviction_failed", "stream", ev.Key.Stream, "segment", ev.Key.Segment, "err", err)
		return fmt.Errorf("evict %s: fsync dir: %w", ev.Key, err)
	}
	c.log.Info("tier1_evicted", "stream", ev.Key.Stream, "segment", ev.Key.Segment, "bytes", ev.Bytes)
	return nil
}

// endEviction unmarks e, dropping it when its eviction went through, and
// wakes the Puts waiting for its key.
func (c *Cache) endEviction(e *entry, dropped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.evicting = false
	if cur, ok := c.entries[e.key]; dropped && ok && cur == e {
		c.drop(e)
	}
	c.settled.Broadcast()
}

// Remove deletes k's artifact whatever its state and pins (an artifact
// that failed verification, or a leftover at boot), with no eviction to
// record. It waits for an eviction of k in flight to end, and a Put of k
// waits for it.
func (c *Cache) Remove(k Key) error {
	c.mu.Lock()
	for c.settlingLocked(k) {
		c.settled.Wait()
	}
	if e, ok := c.entries[k]; ok {
		c.drop(e)
	}
	c.removing[k] = true
	c.mu.Unlock()
	path := c.Path(k)
	err := c.fs.Remove(path)
	c.mu.Lock()
	delete(c.removing, k)
	c.settled.Broadcast()
	c.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", k, err)
	}
	if err := c.fs.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("remove %s: fsync dir: %w", k, err)
	}
	return nil
}

func (c *Cache) drop(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
	c.bytes -= e.bytes
}

// SetMaxBytes changes the budget (0 = unlimited) and signals EvictionDue.
func (c *Cache) SetMaxBytes(n int64) {
	c.mu.Lock()
	c.maxBytes = n
	c.mu.Unlock()
	c.evictSoon()
}

// Stats returns the current totals.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CacheStats{Bytes: c.bytes, Files: len(c.entries), MaxBytes: c.maxBytes}
	for _, e := range c.entries {
		if e.pins > 0 {
			s.Pinned++
		}
		if e.uploaded {
			s.Uploaded++
		}
	}
	return s
}
