package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
)

// next returns the next event on ch, bookmarks included.
func next(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return store.Event{}
}

// Compact is etcd's compaction: compacting again to an older revision is
// ErrCompacted, and a watch from before the compaction revision reports
// exactly that revision. (The relist after it is the suite's
// WatchCompacted.)
func TestCompact(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	old, _ := s.Revision(ctx)
	storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 1, nil))
	storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 2, nil))
	now, _ := s.Revision(ctx)
	if err := s.Compact(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, now-1); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("compacting an older revision = %v, want ErrCompacted", err)
	}

	e := next(t, s.Watch(ctx, deployments, "", nil, old))
	var compacted *store.CompactedError
	if e.Type != store.Error || !errors.As(e.Err, &compacted) {
		t.Fatalf("event = %v %v, want an Error with a CompactedError", e.Type, e.Err)
	}
	if compacted.Requested != old || compacted.Compacted != now {
		t.Fatalf("CompactedError = %+v, want requested %d compacted %d", compacted, old, now)
	}
}

// A quiet watch gets etcd's progress notifications as bookmarks.
func TestWatchBookmarks(t *testing.T) {
	cfg, err := etcdnodetest.NewConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ProgressNotifyInterval = 100 * time.Millisecond
	node := etcdnodetest.StartConfig(t, cfg)
	s := store.New(etcdnodetest.Client(t, node.Endpoints()))
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	d, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 1, nil))

	e := next(t, s.Watch(ctx, deployments, "", nil, 0))
	if rev := storagetest.ResourceVersion(t, d); e.Type != store.Bookmark || e.Object != nil || e.Revision < rev {
		t.Fatalf("first event on a quiet watch = %v@%d %v, want a bookmark at >= %d", e.Type, e.Revision, e.Object, rev)
	}
}

// TestWatchFromNowSeesTheNextWrite: a watch from revision 0 reports a
// write made as soon as Watch has returned (it once started "now" when the
// watch reached etcd, and could miss it).
func TestWatchFromNowSeesTheNextWrite(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	for i := range 50 {
		wctx, cancel := context.WithCancel(ctx)
		ch := s.Watch(wctx, deployments, "demo", nil, 0)
		d, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", int32(i+1), nil))
		select {
		case ev := <-ch:
			if ev.Object == nil || ev.Object.GetMetadata().GetResourceVersion() != d.GetMetadata().GetResourceVersion() {
				t.Fatalf("round %d: event %v, want the write at %s", i, ev, d.GetMetadata().GetResourceVersion())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no event for the write made right after Watch", i)
		}
		cancel()
	}
}
