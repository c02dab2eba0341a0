package store_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
)

// next returns the next event, skipping bookmarks unless asked for.
func next(t *testing.T, ch <-chan store.Event, bookmarks bool) store.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			if e.Type == store.Bookmark && !bookmarks {
				continue
			}
			return e
		case <-timeout:
			t.Fatal("no watch event within 10s")
		}
	}
}

// summary renders an event as "TYPE ns/name@rev".
func summary(e store.Event) string {
	if e.Object == nil {
		return fmt.Sprintf("%v@%d", e.Type, e.Revision)
	}
	md := e.Object.GetMetadata()
	return fmt.Sprintf("%v %s/%s@%d", e.Type, md.GetNamespace(), md.GetName(), e.Revision)
}

func collect(t *testing.T, ch <-chan store.Event, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		e := next(t, ch, false)
		if e.Type == store.Error {
			t.Fatalf("watch error: %v", e.Err)
		}
		if e.Object != nil && e.Object.GetMetadata().GetResourceVersion() != fmt.Sprint(e.Revision) {
			t.Fatalf("%s: object resourceVersion %s", summary(e), e.Object.GetMetadata().GetResourceVersion())
		}
		out = append(out, summary(e))
	}
	return out
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWatchAddedModifiedDeleted(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	_, from, err := s.List(ctx, deployments, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(ctx, deployments, "demo", nil, from)

	c, _ := mustApply(t, s, deployment("demo", "web", 1, nil))
	m, _ := mustApply(t, s, deployment("demo", "web", 2, nil))
	d, err := s.Delete(ctx, deployments, "demo", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, collect(t, ch, 3),
		fmt.Sprintf("ADDED demo/web@%d", rv(t, c)),
		fmt.Sprintf("MODIFIED demo/web@%d", rv(t, m)),
		fmt.Sprintf("DELETED demo/web@%d", rv(t, d)))
}

// Resuming from the revision of the last event handled gets exactly the
// events after it: none twice, none lost.
func TestWatchResume(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	write := func(name string, replicas int32) {
		d, res := mustApply(t, s, deployment("demo", name, replicas, nil))
		typ := "MODIFIED"
		if res == store.Created {
			typ = "ADDED"
		}
		want = append(want, fmt.Sprintf("%s demo/%s@%d", typ, name, rv(t, d)))
	}
	write("a", 1)
	write("b", 1)
	write("a", 2)

	wctx, cancel := context.WithCancel(ctx)
	first := collect(t, s.Watch(wctx, deployments, "", nil, from), 2)
	cancel()
	expect(t, first, want[:2]...)

	// Missed while not watching.
	write("c", 1)
	write("b", 2)
	last, err := s.Delete(ctx, deployments, "demo", "a", "")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("DELETED demo/a@%d", rv(t, last)))

	var resumeFrom int64
	fmt.Sscanf(first[1][strings.LastIndex(first[1], "@")+1:], "%d", &resumeFrom)
	ch := s.Watch(ctx, deployments, "", nil, resumeFrom)
	expect(t, collect(t, ch, 4), want[2:]...)
	select {
	case e := <-ch:
		t.Fatalf("unexpected extra event %s", summary(e))
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchSelectorAndNamespace(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("a"))
	mustApply(t, s, namespace("a-b"))
	from, _ := s.Revision(ctx)
	sel, err := labels.Parse("app=web")
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(ctx, deployments, "a", sel, from)

	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	mustApply(t, s, deployment("a", "x", 1, db))           // not matching: nothing
	mustApply(t, s, deployment("a-b", "x", 1, web))        // other namespace: nothing
	e1, _ := mustApply(t, s, deployment("a", "x", 1, web)) // starts matching: ADDED
	e2, _ := mustApply(t, s, deployment("a", "x", 2, web)) // MODIFIED
	e3, _ := mustApply(t, s, deployment("a", "x", 2, db))  // stops matching: DELETED
	mustApply(t, s, deployment("a", "x", 3, db))           // not matching: nothing
	if _, err := s.Delete(ctx, deployments, "a", "x", ""); err != nil {
		t.Fatal(err) // deleted while not matching: nothing
	}
	e4, _ := mustApply(t, s, deployment("a", "y", 1, web)) // ADDED

	var events []store.Event
	for range 4 {
		events = append(events, next(t, ch, false))
	}
	var got []string
	for _, e := range events {
		got = append(got, summary(e))
	}
	expect(t, got,
		fmt.Sprintf("ADDED a/x@%d", rv(t, e1)),
		fmt.Sprintf("MODIFIED a/x@%d", rv(t, e2)),
		fmt.Sprintf("DELETED a/x@%d", rv(t, e3)),
		fmt.Sprintf("ADDED a/y@%d", rv(t, e4)))
	// The object that stopped matching is reported in its last matching
	// state, at the revision of the change.
	gone := events[2].Object
	if gone.GetMetadata().GetLabels()["app"] != "web" || gone.GetMetadata().GetResourceVersion() != fmt.Sprint(rv(t, e3)) {
		t.Fatalf("DELETED object = %v", gone)
	}
}

func TestWatchNamespaceDeletion(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	mustApply(t, s, deployment("demo", "api", 1, nil))
	mustApply(t, s, deployment("demo", "web", 1, nil))
	from, _ := s.Revision(ctx)
	ch := s.Watch(ctx, deployments, "", nil, from)
	ns, err := s.Delete(ctx, namespaces, "", "demo", "")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, collect(t, ch, 2),
		fmt.Sprintf("DELETED demo/api@%d", rv(t, ns)),
		fmt.Sprintf("DELETED demo/web@%d", rv(t, ns)))
}

func TestWatchCompacted(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	old, _ := s.Revision(ctx)
	mustApply(t, s, deployment("demo", "web", 1, nil))
	mustApply(t, s, deployment("demo", "web", 2, nil))
	now, _ := s.Revision(ctx)
	if err := s.Compact(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, now-1); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("compacting an older revision = %v, want ErrCompacted", err)
	}

	ch := s.Watch(ctx, deployments, "", nil, old)
	e := next(t, ch, true)
	var compacted *store.CompactedError
	if e.Type != store.Error || !errors.Is(e.Err, store.ErrCompacted) || !errors.As(e.Err, &compacted) {
		t.Fatalf("event = %v %v, want an Error with a CompactedError", e.Type, e.Err)
	}
	if compacted.Requested != old || compacted.Compacted != now {
		t.Fatalf("CompactedError = %+v, want requested %d compacted %d", compacted, old, now)
	}
	select {
	case e, ok := <-ch:
		if ok {
			t.Fatalf("event after the compaction error: %s", summary(e))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the compaction error")
	}

	// The relist: List, then Watch from its revision, works.
	objs, listRev, err := s.List(ctx, deployments, "", nil)
	if err != nil || len(objs) != 1 {
		t.Fatalf("relist = %v, %v", objs, err)
	}
	ch = s.Watch(ctx, deployments, "", nil, listRev)
	d, _ := mustApply(t, s, deployment("demo", "web", 3, nil))
	expect(t, collect(t, ch, 1), fmt.Sprintf("MODIFIED demo/web@%d", rv(t, d)))
}

func TestWatchBookmarks(t *testing.T) {
	cfg, err := etcdnodetest.NewConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ProgressNotifyInterval = 100 * time.Millisecond
	node := etcdnodetest.StartConfig(t, cfg)
	s := store.New(etcdnodetest.Client(t, node.Endpoints()))
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	d, _ := mustApply(t, s, deployment("demo", "web", 1, nil))

	ch := s.Watch(ctx, deployments, "", nil, 0)
	e := next(t, ch, true)
	if e.Type != store.Bookmark || e.Object != nil || e.Revision < rv(t, d) {
		t.Fatalf("first event on a quiet watch = %s, want a bookmark at >= %d", summary(e), rv(t, d))
	}
}

func TestWatchEndsWithContext(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := s.Watch(ctx, deployments, "", nil, 0)
	cancel()
	select {
	case e, ok := <-ch:
		if ok {
			t.Fatalf("event after cancel: %s", summary(e))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

func TestWatchInvalid(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	for _, ch := range []<-chan store.Event{
		s.Watch(ctx, nil, "", nil, 0),
		s.Watch(ctx, deployments, "", nil, -1),
	} {
		e := <-ch
		if e.Type != store.Error || !errors.Is(e.Err, store.ErrInvalid) {
			t.Fatalf("invalid watch = %v %v", e.Type, e.Err)
		}
		if _, ok := <-ch; ok {
			t.Fatal("invalid watch not closed")
		}
	}
}

// No goroutine outlives the watch's context: neither the store's nor the
// etcd client's for the watch stream.
func TestWatchGoroutinesEndWithContext(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	wctx, cancel := context.WithCancel(ctx)
	var chans []<-chan store.Event
	for range 10 {
		chans = append(chans, s.Watch(wctx, deployments, "demo", nil, from))
	}
	d, _ := mustApply(t, s, deployment("demo", "web", 1, nil))
	for _, ch := range chans {
		expect(t, collect(t, ch, 1), fmt.Sprintf("ADDED demo/web@%d", rv(t, d)))
	}
	if runtime.NumGoroutine() <= baseline {
		t.Fatal("watches started no goroutines?")
	}
	cancel()
	for _, ch := range chans {
		for range ch {
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the watches ended, %d before", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
