// Package store keeps a member's typed objects in one bbolt file, so that
// everything the member holds (its work from the hub, pods, nodes, events)
// survives a restart of the member agent. It implements storage.Interface
// with the same rules as the hub's etcd store (hub/store): both apply the
// object rules of package storage, and the conformance suite in
// proto/meridian/storage/storagetest holds both to them.
//
// # Layout
//
// The file has two buckets:
//
//	meta      "format"   → "1"
//	          "revision" → the store revision, 8 bytes big-endian
//	objects   <plural>/<namespace>/<name>   namespaced kinds
//	          <plural>/<name>               cluster-scoped kinds
//
// An object's value is a 16-byte header — its mod revision and create
// revision, 8 bytes big-endian each — followed by its deterministic protobuf
// encoding with metadata.resourceVersion cleared. On every read
// resourceVersion is set to the mod revision. Keys are those of the hub's
// etcd store without its "/meridian/objects/" prefix, so a List of a kind in
// one namespace is a prefix scan of "<plural>/<namespace>/" (the trailing
// slash keeps namespace "a" apart from "a-b").
//
// # Revisions and writes
//
// The revision counter lives in the meta bucket, next to the objects, so it
// is never reused, across restarts too. Every write that changes something
// takes the next revision (a Namespace deletion one for all it deletes); a
// write that changes nothing (an Unchanged apply, a lost compare-and-swap)
// or fails a check takes none.
//
// A write checks its preconditions (resourceVersion, existence, the
// namespace) and writes in one bbolt write transaction, which runs alone:
// Apply never loses a race. Update runs its mutate function outside the
// transaction and retries a lost compare-and-swap, as the hub's store does.
// Commits fsync unless WithNoSync is given; concurrent writes share a
// transaction and its fsync (group commit, see commit.go), each still with
// its own revision, in the order they ran.
//
// # Watch
//
// History is kept in memory only: a bounded ring of the latest changes
// (WithWatchHistory, default DefaultWatchHistory events), published after
// their transaction commits and in revision order. A watch replays the ring
// after its fromRevision and then follows it. A watch from before the oldest
// change the ring holds — or from before the revision the store was opened
// at, since history is not persisted — gets a single Error event with a
// *storage.CompactedError: relist. The ring is also every watcher's buffer:
// writers never wait for watchers, and a watcher that falls so far behind
// that the ring overwrote changes it had not read yet ends the same way.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// ErrClosed is returned by every call on a closed Store, and ends its
// watches.
var ErrClosed = errors.New("store is closed")

// DefaultWatchHistory is how many changes the store keeps in memory for
// watches to replay. It bounds how far a watch can resume from, and how far
// a slow watcher may fall behind before it must relist. A change holds the
// object's encoding after and before it, a few hundred bytes to a few KiB
// each: a full history costs from a few MiB to a few tens of MiB. It fills
// only as objects change.
const DefaultWatchHistory = 10_000

// DefaultLockTimeout is how long Open waits for the file lock. bbolt locks
// the file for the life of the Store; the kernel releases the lock of a
// process that died, so waiting only matters when another live process
// holds the file, and then failing soon with a clear error is better than
// hanging.
const DefaultLockTimeout = 5 * time.Second

// formatVersion is the layout described in the package documentation.
const formatVersion = "1"

var (
	metaBucket    = []byte("meta")
	objectsBucket = []byte("objects")
	formatKey     = []byte("format")
	revisionKey   = []byte("revision")
)

// Store is an object store in one bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	path   string
	now    func() time.Time
	newUID func() string

	// qmu guards queue, the writes waiting for their batch (commit.go).
	qmu   sync.Mutex
	queue writeQueue

	// writeMu is held by the leader while it runs a batch, from its
	// transaction to the publication of its changes; Close takes it to wait
	// for the batch in progress. Only one leader runs at a time anyway.
	writeMu sync.Mutex

	// mu guards hist and closed, and orders watchers.Add before Close's Wait.
	mu     sync.Mutex
	hist   history
	closed bool

	// done is closed by Close; every watch goroutine stops on it.
	done chan struct{}
	// watchers counts the running watch goroutines.
	watchers sync.WaitGroup
}

var _ storage.Interface = (*Store)(nil)

// options are what Option sets.
type options struct {
	now         func() time.Time
	newUID      func() string
	history     int
	noSync      bool
	lockTimeout time.Duration
}

// Option configures a Store.
type Option func(*options)

// WithClock sets the clock that stamps creationTimestamp (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithUIDGenerator sets the generator of metadata.uid (tests). The default
// is a random UUID (v4).
func WithUIDGenerator(newUID func() string) Option {
	return func(o *options) { o.newUID = newUID }
}

// WithWatchHistory sets how many changes are kept in memory for watches
// (DefaultWatchHistory if not given); it must be positive.
func WithWatchHistory(events int) Option {
	return func(o *options) { o.history = events }
}

// WithNoSync turns off the fsync of every commit: a crash of the machine
// (not of the process) can then lose recent writes. For benchmarks and
// throwaway stores only.
func WithNoSync() Option {
	return func(o *options) { o.noSync = true }
}

// WithLockTimeout sets how long Open waits for another process to release
// the file (DefaultLockTimeout if not given).
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

// Open opens the store in the bbolt file at path, creating the file and its
// directory if needed. The Store holds the file's lock until Close.
func Open(path string, opts ...Option) (_ *Store, err error) {
	o := options{
		now:         time.Now,
		newUID:      func() string { return uuid.NewString() },
		history:     DefaultWatchHistory,
		lockTimeout: DefaultLockTimeout,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.history <= 0 {
		return nil, fmt.Errorf("failed to open %s: %w: watch history size %d is not positive", path, storage.ErrInvalid, o.history)
	}
	if o.lockTimeout <= 0 {
		// bbolt waits forever with a zero timeout.
		return nil, fmt.Errorf("failed to open %s: %w: lock timeout %v is not positive", path, storage.ErrInvalid, o.lockTimeout)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the directory of %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.lockTimeout,
		NoSync:  o.noSync,
		// As etcd does: the freelist is not written on every commit but
		// rebuilt by a scan on open, which for a member's store is short.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("failed to open %s: %w: another process holds it", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = db.Close()
		}
	}()
	var rev int64
	if err := db.Update(func(tx *bolt.Tx) error {
		var err error
		rev, err = initialize(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	s := &Store{
		db:     db,
		path:   path,
		now:    o.now,
		newUID: o.newUID,
		done:   make(chan struct{}),
	}
	s.hist.init(o.history, rev)
	return s, nil
}

// initialize creates the buckets of a new file, checks the format of an
// existing one and returns its revision.
func initialize(tx *bolt.Tx) (int64, error) {
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return 0, fmt.Errorf("failed to create the meta bucket: %w", err)
	}
	if _, err := tx.CreateBucketIfNotExists(objectsBucket); err != nil {
		return 0, fmt.Errorf("failed to create the objects bucket: %w", err)
	}
	switch f := meta.Get(formatKey); {
	case f == nil:
		if err := meta.Put(formatKey, []byte(formatVersion)); err != nil {
			return 0, fmt.Errorf("failed to write the format version: %w", err)
		}
	case string(f) != formatVersion:
		return 0, fmt.Errorf("the file has format %q, this version reads format %s", f, formatVersion)
	}
	return readRevision(tx)
}

// Close ends every watch (with an Error event when the watcher has room for
// it), waits for their goroutines and for the commit in progress, and
// closes the file. Writes after it fail with ErrClosed. Calls after the
// first return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	s.watchers.Wait()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("failed to close %s: %w", s.path, err)
	}
	return nil
}

// Path is the file the store keeps its objects in.
func (s *Store) Path() string { return s.path }

// isClosed reports whether Close has been called.
func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// view runs fn in a read transaction; a closed database is ErrClosed.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// readRevision reads the store revision in tx (0 for a new file).
func readRevision(tx *bolt.Tx) (int64, error) {
	v := tx.Bucket(metaBucket).Get(revisionKey)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("failed to read the revision: %d bytes, want 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// record is an object's stored value: its revisions and its encoding. Read
// from bbolt, data is only valid during the transaction; clone keeps it.
type record struct {
	modRev    int64
	createRev int64
	data      []byte
}

// headerLen is the size of a record's two revisions.
const headerLen = 16

// parseRecord splits a stored value.
func parseRecord(key, v []byte) (*record, error) {
	if len(v) < headerLen {
		return nil, fmt.Errorf("failed to read %s: the stored value has %d bytes, fewer than its header", key, len(v))
	}
	return &record{
		modRev:    int64(binary.BigEndian.Uint64(v[0:8])),
		createRev: int64(binary.BigEndian.Uint64(v[8:16])),
		data:      v[headerLen:],
	}, nil
}

// value is the stored form of a record.
func (r *record) value() []byte {
	v := make([]byte, headerLen+len(r.data))
	binary.BigEndian.PutUint64(v[0:8], uint64(r.modRev))
	binary.BigEndian.PutUint64(v[8:16], uint64(r.createRev))
	copy(v[headerLen:], r.data)
	return v
}

// clone copies r out of the transaction's memory.
func (r *record) clone() *record {
	if r == nil {
		return nil
	}
	c := *r
	c.data = append([]byte(nil), r.data...)
	return &c
}

// getRecord reads the record under key in tx, nil if there is none.
func getRecord(tx *bolt.Tx, key string) (*record, error) {
	v := tx.Bucket(objectsBucket).Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	return parseRecord([]byte(key), v)
}

// Get returns one object.
func (s *Store) Get(ctx context.Context, kind *resource.Kind, namespace, name string) (resource.Object, error) {
	r, err := ref(storage.CheckKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", r.key, err)
	}
	var obj resource.Object
	err = s.view(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, r.db)
		if err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("%s %w", r.key, storage.ErrNotFound)
		}
		if obj, err = storage.Decode(kind, rec.data, rec.modRev); err != nil {
			return fmt.Errorf("%s: %w", r.key, err)
		}
		return nil
	})
	if errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("failed to read %s: %w", r.key, err)
	}
	return obj, err
}

// List returns the objects of a kind in a namespace ("" for every namespace,
// and always for cluster-scoped kinds) whose labels match sel (nil matches
// everything), sorted by namespace and name, and the revision they were read
// at: Watch from that revision to follow the list without a gap.
func (s *Store) List(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector) ([]resource.Object, int64, error) {
	if kind == nil {
		return nil, 0, fmt.Errorf("%w: kind is required", storage.ErrInvalid)
	}
	if strings.Contains(namespace, "/") {
		return nil, 0, fmt.Errorf("%w: namespace %q must not contain '/'", storage.ErrInvalid, namespace)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("failed to list %s: %w", kind.Plural, err)
	}
	prefix := []byte(rangePrefix(kind, namespace))
	var (
		out []resource.Object
		rev int64
	)
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if rev, err = readRevision(tx); err != nil {
			return err
		}
		c := tx.Bucket(objectsBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec, err := parseRecord(k, v)
			if err != nil {
				return err
			}
			obj, err := storage.Decode(kind, rec.data, rec.modRev)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if matches(sel, obj) {
				out = append(out, obj)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("failed to list %s: %w", kind.Plural, err)
	}
	if out == nil {
		out = []resource.Object{}
	}
	// Key order is not (namespace, name) order: '-' and '.' sort before '/'.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].GetMetadata(), out[j].GetMetadata()
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
	return out, rev, nil
}

// matches reports whether obj's labels match sel; a nil selector matches
// everything.
func matches(sel labels.Selector, obj resource.Object) bool {
	return sel == nil || sel.Matches(labels.Set(obj.GetMetadata().GetLabels()))
}

// Revision returns the store revision: the resourceVersion of the most
// recent write.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("failed to read the current revision: %w", err)
	}
	var rev int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		rev, err = readRevision(tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("failed to read the current revision: %w", err)
	}
	return rev, nil
}
