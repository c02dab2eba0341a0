package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
)

// drain reads ch until it closes and returns what it read.
func drain(t *testing.T, ch <-chan storage.Event) []storage.Event {
	t.Helper()
	var out []storage.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, e)
		case <-timeout:
			t.Fatalf("watch not closed after %d events", len(out))
		}
	}
}

// A watcher that does not read never holds writers up: once the history
// has moved on past what it has not read, it gets the events it still can,
// then an Error with a CompactedError (relist), and its channel closes.
func TestSlowWatcherMustRelist(t *testing.T) {
	const history = 16
	s := newStore(t, store.WithWatchHistory(history))
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	ch := s.Watch(ctx, deployments, "demo", nil, 0)

	done := make(chan error)
	go func() {
		for i := range 10 * history {
			if _, _, err := s.Apply(ctx, storagetest.Deployment("demo", "web", int32(i), nil), storage.ApplyOptions{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("writers blocked by a watcher that does not read")
	}

	events := drain(t, ch)
	if len(events) == 0 {
		t.Fatal("no events")
	}
	last := events[len(events)-1]
	var compacted *storage.CompactedError
	if last.Type != storage.Error || !errors.As(last.Err, &compacted) || !errors.Is(last.Err, storage.ErrCompacted) {
		t.Fatalf("last event = %v %v, want an Error with a CompactedError", last.Type, last.Err)
	}
	// What came before it is a gapless run from the start.
	prev := int64(1) // the namespace
	for _, e := range events[:len(events)-1] {
		if e.Type == storage.Error || e.Revision != prev+1 {
			t.Fatalf("event %v@%d after revision %d", e.Type, e.Revision, prev)
		}
		prev = e.Revision
	}
	if compacted.Requested != prev || compacted.Compacted <= prev {
		t.Fatalf("CompactedError = %+v after delivering up to %d", compacted, prev)
	}

	// The relist works.
	_, listRev, err := s.List(ctx, deployments, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch = s.Watch(ctx, deployments, "demo", nil, listRev)
	d, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 1000, nil))
	if e := <-ch; e.Type != storage.Modified || e.Revision != storagetest.ResourceVersion(t, d) {
		t.Fatalf("after the relist: %v@%d %v", e.Type, e.Revision, e.Err)
	}
}

// The history forgets its oldest events as it fills; a watch can resume from
// any revision it still holds in full.
func TestHistoryBound(t *testing.T) {
	s := newStore(t, store.WithWatchHistory(4))
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo")) // 1
	for i := range 6 {
		storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", int32(i), nil)) // 2..7
	}
	// Held: 4..7. From 3 on every change is held; from 2 not.
	e := <-s.Watch(ctx, deployments, "", nil, 2)
	var compacted *storage.CompactedError
	if e.Type != storage.Error || !errors.As(e.Err, &compacted) || compacted.Requested != 2 || compacted.Compacted != 3 {
		t.Fatalf("watch from 2 = %v %v, want compacted at 3", e.Type, e.Err)
	}
	ch := s.Watch(ctx, deployments, "", nil, 3)
	for want := int64(4); want <= 7; want++ {
		if e := <-ch; e.Type != storage.Modified || e.Revision != want {
			t.Fatalf("watch from 3: %v@%d %v, want MODIFIED@%d", e.Type, e.Revision, e.Err, want)
		}
	}
}

func TestCompact(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 1, nil))
	storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 2, nil))
	if err := s.Compact(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, 2); !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("compacting again = %v, want ErrCompacted", err)
	}
	if err := s.Compact(ctx, 1); !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("compacting an older revision = %v, want ErrCompacted", err)
	}
	if err := s.Compact(ctx, 9); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("compacting a future revision = %v, want ErrInvalid", err)
	}
	if e := <-s.Watch(ctx, deployments, "", nil, 1); e.Type != storage.Error || !errors.Is(e.Err, storage.ErrCompacted) {
		t.Fatalf("watch from 1 = %v %v", e.Type, e.Err)
	}
	if e := <-s.Watch(ctx, deployments, "", nil, 2); e.Type != storage.Modified || e.Revision != 3 {
		t.Fatalf("watch from 2 = %v@%d %v", e.Type, e.Revision, e.Err)
	}
}

// Close ends every watch, reading or not, and waits for their goroutines.
func TestCloseEndsWatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "member.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	idle := s.Watch(ctx, configMaps, "", nil, 0) // waiting for a change
	full := s.Watch(ctx, deployments, "", nil, 0)
	for i := range 40 { // more than the channel holds: its goroutine waits to send
		storagetest.MustApply(t, s, storagetest.Deployment("demo", fmt.Sprintf("web-%d", i), 1, nil))
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a watcher that does not read")
	}
	if events := drain(t, idle); len(events) != 1 || !errors.Is(events[0].Err, store.ErrClosed) {
		t.Fatalf("idle watcher after Close: %v, want one Error wrapping ErrClosed", events)
	}
	if events := drain(t, full); len(events) > 40 {
		t.Fatalf("full watcher after Close: %d events", len(events))
	}
	e := <-s.Watch(ctx, deployments, "", nil, 0)
	if e.Type != storage.Error || !errors.Is(e.Err, store.ErrClosed) {
		t.Fatalf("watch on a closed store = %v %v", e.Type, e.Err)
	}
}
