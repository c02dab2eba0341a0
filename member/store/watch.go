package store

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// watchBuffer is how many events Watch holds for a slow reader before its
// goroutine waits. Further changes wait in the history, which bounds how far
// the reader may fall behind.
const watchBuffer = 16

// readBatch is how many changes a watch goroutine copies out of the history
// per turn of the store's lock.
const readBatch = 64

// change is one committed change to one object, as the history keeps it:
// encoded, so that every watcher decodes its own copy.
type change struct {
	rev     int64
	kind    *resource.Kind
	key     string
	deleted bool
	// data is the object after the change; nil for a deletion.
	data []byte
	// prev is the object before the change; nil for a creation.
	prev []byte
}

// history is the ring of the latest committed changes, in revision order,
// each with a sequence number (first, first+1, ...) that watchers use as
// their cursor. Several changes share a revision when one transaction made
// them (a Namespace deletion). It is guarded by Store.mu.
type history struct {
	ring  []change
	start int    // index of the oldest change held
	n     int    // how many changes are held
	first uint64 // sequence number of ring[start]
	// compacted is the revision after which every change is held: a watch
	// from an older revision cannot be served. It starts at the revision
	// the store was opened at, since history is not persisted.
	compacted int64
	// rev is the revision of the last published change.
	rev int64
	// wake is closed, and replaced, whenever changes are published.
	wake chan struct{}
}

func (h *history) init(size int, rev int64) {
	h.ring = make([]change, size)
	h.compacted, h.rev = rev, rev
	h.wake = make(chan struct{})
}

// push adds c, dropping the oldest change if the ring is full.
func (h *history) push(c change) {
	if h.n == len(h.ring) {
		h.dropOldest()
	}
	h.ring[(h.start+h.n)%len(h.ring)] = c
	h.n++
}

// dropOldest forgets the oldest change. Other changes of its revision may
// still be held, but no longer all of them: the revision is compacted.
func (h *history) dropOldest() {
	old := &h.ring[h.start]
	h.compacted = max(h.compacted, old.rev)
	*old = change{}
	h.start = (h.start + 1) % len(h.ring)
	h.first++
	h.n--
}

// seqAfter is the sequence number of the first change after rev (the next
// sequence number if there is none yet).
func (h *history) seqAfter(rev int64) uint64 {
	i := sort.Search(h.n, func(i int) bool { return h.ring[(h.start+i)%len(h.ring)].rev > rev })
	return h.first + uint64(i)
}

// publish adds the changes of a committed transaction to the history and
// wakes the watchers. Called by the leader of each batch in turn, so in
// revision order.
func (s *Store) publish(changes []change) {
	if len(changes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		s.hist.push(c)
	}
	s.hist.rev = changes[len(changes)-1].rev
	close(s.hist.wake)
	s.hist.wake = make(chan struct{})
}

// readHistory appends to buf the changes from sequence number seq on, at
// most readBatch of them. ok is false if seq is no longer held; compacted
// is then the oldest revision a watch can start from. wake is closed on the
// next publish.
func (s *Store) readHistory(seq uint64, buf []change) (out []change, wake <-chan struct{}, compacted int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.hist
	if seq < h.first {
		return buf, nil, h.compacted, false
	}
	for i := int(seq - h.first); i < h.n && len(buf) < readBatch; i++ {
		buf = append(buf, h.ring[(h.start+i)%len(h.ring)])
	}
	return buf, h.wake, h.compacted, true
}

// Compact forgets the history up to and including rev (for tests and
// operations; the history also forgets its oldest changes on its own as it
// fills). Watches from an older revision then fail with ErrCompacted, as do
// watchers that had not read that far yet. Compacting to a revision at or
// below the last compaction (or the revision the store was opened at)
// returns an error that Is ErrCompacted; to a revision not yet written, one
// that Is ErrInvalid.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failed to compact to revision %d: %w", rev, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.hist
	switch {
	case s.closed:
		return fmt.Errorf("failed to compact to revision %d: %w", rev, ErrClosed)
	case rev <= h.compacted:
		return fmt.Errorf("failed to compact to revision %d: %w", rev, storage.ErrCompacted)
	case rev > h.rev:
		return fmt.Errorf("failed to compact to revision %d: %w: the store is at revision %d", rev, storage.ErrInvalid, h.rev)
	}
	for h.n > 0 && h.ring[h.start].rev <= rev {
		h.dropOldest()
	}
	h.compacted = rev
	return nil
}

// Watch reports the changes to the objects of a kind in a namespace ("" for
// every namespace, and always for cluster-scoped kinds) whose labels match
// sel (nil matches everything), in revision order, after fromRevision (0:
// from now). List then Watch from the list's revision sees every change
// exactly once. There are no Bookmark events.
//
// With a selector, an object that stops matching is reported as Deleted
// (with its previous state) and one that starts matching as Added. If
// fromRevision is older than the history held in memory (see the package
// documentation), the only event is an Error whose Err is a
// *storage.CompactedError: relist. A watcher that falls behind by more than
// the history gets the same Error once it has read what is still held. The
// channel is closed after an Error event, when ctx ends and when the store
// closes (after an Error event wrapping ErrClosed if the channel has room);
// the goroutine behind it stops then too. The caller must cancel ctx or
// drain the channel.
func (s *Store) Watch(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector, fromRevision int64) <-chan storage.Event {
	out := make(chan storage.Event, watchBuffer)
	fail := func(err error) <-chan storage.Event {
		out <- storage.Event{Type: storage.Error, Err: err}
		close(out)
		return out
	}
	switch {
	case kind == nil:
		return fail(fmt.Errorf("%w: kind is required", storage.ErrInvalid))
	case strings.Contains(namespace, "/"):
		return fail(fmt.Errorf("%w: namespace %q must not contain '/'", storage.ErrInvalid, namespace))
	case fromRevision < 0:
		return fail(fmt.Errorf("%w: revision %d is negative", storage.ErrInvalid, fromRevision))
	}
	prefix := rangePrefix(kind, namespace)

	s.mu.Lock()
	h := &s.hist
	from := fromRevision
	if from == 0 {
		from = h.rev
	}
	switch {
	case s.closed:
		s.mu.Unlock()
		return fail(fmt.Errorf("failed to watch %s: %w", prefix, ErrClosed))
	case from < h.compacted:
		compacted := h.compacted
		s.mu.Unlock()
		return fail(&storage.CompactedError{Requested: from, Compacted: compacted})
	}
	w := &watcher{s: s, kind: kind, prefix: prefix, sel: sel, from: from, pos: from, next: h.seqAfter(from)}
	// Added under mu while not closed, so that Close's Wait sees it.
	s.watchers.Add(1)
	s.mu.Unlock()
	go w.run(ctx, out)
	return out
}

// watcher is one Watch call; run is its goroutine, owned by the caller's
// ctx and by the Store (Close ends it).
type watcher struct {
	s      *Store
	kind   *resource.Kind
	prefix string
	sel    labels.Selector
	// from: changes at or before this revision are not reported. A List
	// can see a commit that is not published yet; its change is then held
	// after the watcher's starting point and skipped here.
	from int64
	// pos is the revision of the last change looked at.
	pos int64
	// next is the sequence number of the next change to read.
	next uint64
}

func (w *watcher) run(ctx context.Context, out chan<- storage.Event) {
	defer w.s.watchers.Done()
	defer close(out)
	batch := make([]change, 0, readBatch)
	for {
		var (
			wake      <-chan struct{}
			compacted int64
			ok        bool
		)
		batch, wake, compacted, ok = w.s.readHistory(w.next, batch[:0])
		if !ok {
			w.send(ctx, out, storage.Event{Type: storage.Error, Err: &storage.CompactedError{Requested: w.pos, Compacted: compacted}})
			return
		}
		if len(batch) == 0 {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return
			case <-w.s.done:
				w.sendClosed(out)
				return
			}
		}
		for i := range batch {
			c := &batch[i]
			w.next++
			if c.rev <= w.from {
				continue
			}
			w.pos = c.rev
			e, ok, err := w.translate(c)
			if err != nil {
				w.send(ctx, out, storage.Event{Type: storage.Error, Err: fmt.Errorf("failed to watch %s: %w", w.prefix, err)})
				return
			}
			if ok && !w.send(ctx, out, e) {
				return
			}
		}
		clear(batch) // let the payloads go before the next wait
	}
}

// send delivers e unless ctx ends or the store closes first; it reports
// whether it did.
func (w *watcher) send(ctx context.Context, out chan<- storage.Event, e storage.Event) bool {
	select {
	case out <- e:
		return true
	case <-ctx.Done():
		return false
	case <-w.s.done:
		w.sendClosed(out)
		return false
	}
}

// sendClosed tells the reader that the store closed, if the channel has
// room: Close must not wait for a reader that does not read.
func (w *watcher) sendClosed(out chan<- storage.Event) {
	select {
	case out <- storage.Event{Type: storage.Error, Err: fmt.Errorf("failed to watch %s: %w", w.prefix, ErrClosed)}:
	default:
	}
}

// translate turns a change into an event, applying the namespace and the
// selector; ok is false if the change is invisible to this watch.
func (w *watcher) translate(c *change) (e storage.Event, ok bool, err error) {
	if c.kind != w.kind || !strings.HasPrefix(c.key, w.prefix) {
		return storage.Event{}, false, nil
	}
	var prev resource.Object
	if c.prev != nil && (c.deleted || w.sel != nil) {
		// The previous state, stamped with the revision of this change, as
		// the last state of a deleted object is.
		if prev, err = storage.Decode(w.kind, c.prev, c.rev); err != nil {
			return storage.Event{}, false, fmt.Errorf("%s: %w", c.key, err)
		}
	}
	if c.deleted {
		if !matches(w.sel, prev) {
			return storage.Event{}, false, nil
		}
		return storage.Event{Type: storage.Deleted, Object: prev, Revision: c.rev}, true, nil
	}
	obj, err := storage.Decode(w.kind, c.data, c.rev)
	if err != nil {
		return storage.Event{}, false, fmt.Errorf("%s: %w", c.key, err)
	}
	now := matches(w.sel, obj)
	if c.prev == nil {
		return storage.Event{Type: storage.Added, Object: obj, Revision: c.rev}, now, nil
	}
	before := w.sel == nil || matches(w.sel, prev)
	switch {
	case now && before:
		return storage.Event{Type: storage.Modified, Object: obj, Revision: c.rev}, true, nil
	case now:
		return storage.Event{Type: storage.Added, Object: obj, Revision: c.rev}, true, nil
	case before:
		return storage.Event{Type: storage.Deleted, Object: prev, Revision: c.rev}, true, nil
	}
	return storage.Event{}, false, nil
}
