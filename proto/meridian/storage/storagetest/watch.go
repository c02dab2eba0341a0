package storagetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

func testWatchAddedModifiedDeleted(f *fixture) {
	f.apply(Namespace("demo"))
	_, from, err := f.st.List(f.ctx, deployments, "demo", nil)
	if err != nil {
		f.Fatal(err)
	}
	ch := f.st.Watch(f.ctx, deployments, "demo", nil, from)

	c, _ := f.apply(Deployment("demo", "web", 1, nil))
	f.apply(Deployment("demo", "web", 1, nil)) // unchanged: no event
	m, _ := f.apply(Deployment("demo", "web", 2, nil))
	f.apply(ConfigMap("demo", "web", nil)) // another kind: no event
	d, err := f.st.Delete(f.ctx, deployments, "demo", "web", "")
	if err != nil {
		f.Fatal(err)
	}
	f.expect(f.collect(ch, 3),
		fmt.Sprintf("ADDED demo/web@%d", f.rv(c)),
		fmt.Sprintf("MODIFIED demo/web@%d", f.rv(m)),
		fmt.Sprintf("DELETED demo/web@%d", f.rv(d)))
	f.quiet(ch)
}

// List, then Watch from the list's revision, while another goroutine
// writes: the watch reports exactly the writes after the list, once each,
// in order, and the list plus the events is the final state.
func testListThenWatch(f *fixture) {
	f.apply(Namespace("demo"))
	const writes = 60
	var (
		mu      sync.Mutex
		written []string // "TYPE demo/name@rev", in revision order
		revs    []int64
		wg      sync.WaitGroup
	)
	started := make(chan struct{})
	wg.Go(func() {
		defer func() {
			select {
			case <-started:
			default:
				close(started)
			}
		}()
		for i := range writes {
			if i == 10 {
				close(started)
			}
			name := fmt.Sprintf("d-%d", i%5)
			var (
				typ string
				obj resource.Object
				err error
			)
			if i%7 == 6 {
				typ = "DELETED"
				obj, err = f.st.Delete(f.ctx, deployments, "demo", name, "")
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
			} else {
				var res storage.ApplyResult
				obj, res, err = f.st.Apply(f.ctx, Deployment("demo", name, int32(i), nil), storage.ApplyOptions{})
				typ = map[storage.ApplyResult]string{storage.Created: "ADDED", storage.Configured: "MODIFIED"}[res]
			}
			if err != nil {
				f.Errorf("write %d: %v", i, err)
				return
			}
			mu.Lock()
			written = append(written, fmt.Sprintf("%s demo/%s@%s", typ, name, obj.GetMetadata().GetResourceVersion()))
			revs = append(revs, f.rv(obj))
			mu.Unlock()
		}
	})
	<-started
	list, listRev, err := f.st.List(f.ctx, deployments, "demo", nil)
	if err != nil {
		f.Fatal(err)
	}
	ch := f.st.Watch(f.ctx, deployments, "demo", nil, listRev)
	wg.Wait()
	if f.Failed() {
		return
	}
	var want []string
	for i, s := range written {
		if revs[i] > listRev {
			want = append(want, s)
		}
	}
	if len(want) == 0 || len(want) == len(written) {
		f.Logf("list at revision %d saw %d of %d writes; the test is weaker than meant", listRev, len(written)-len(want), len(written))
	}

	state := map[string]string{}
	for _, o := range list {
		state[o.GetMetadata().GetName()] = o.GetMetadata().GetResourceVersion()
	}
	got := make([]string, 0, len(want))
	for range want {
		e := f.next(ch)
		if e.Type == storage.Error {
			f.Fatalf("watch error after %v: %v", got, e.Err)
		}
		got = append(got, summary(e))
		if e.Type == storage.Deleted {
			delete(state, e.Object.GetMetadata().GetName())
		} else {
			state[e.Object.GetMetadata().GetName()] = e.Object.GetMetadata().GetResourceVersion()
		}
	}
	f.expect(got, want...)
	f.quiet(ch)

	final, _, err := f.st.List(f.ctx, deployments, "demo", nil)
	if err != nil {
		f.Fatal(err)
	}
	if len(final) != len(state) {
		f.Fatalf("list + events = %v, final list has %d objects", state, len(final))
	}
	for _, o := range final {
		if state[o.GetMetadata().GetName()] != o.GetMetadata().GetResourceVersion() {
			f.Fatalf("list + events = %v, final list has %s at %s", state, o.GetMetadata().GetName(), o.GetMetadata().GetResourceVersion())
		}
	}
}

// Resuming from the revision of the last event handled gets exactly the
// events after it: none twice, none lost.
func testWatchResume(f *fixture) {
	f.apply(Namespace("demo"))
	from := f.revision()
	var want []string
	write := func(name string, replicas int32) {
		d, res := f.apply(Deployment("demo", name, replicas, nil))
		typ := "MODIFIED"
		if res == storage.Created {
			typ = "ADDED"
		}
		want = append(want, fmt.Sprintf("%s demo/%s@%d", typ, name, f.rv(d)))
	}
	write("a", 1)
	write("b", 1)
	write("a", 2)

	wctx, cancel := context.WithCancel(f.ctx)
	first := f.collect(f.st.Watch(wctx, deployments, "", nil, from), 2)
	cancel()
	f.expect(first, want[:2]...)

	// Missed while not watching.
	write("c", 1)
	write("b", 2)
	last, err := f.st.Delete(f.ctx, deployments, "demo", "a", "")
	if err != nil {
		f.Fatal(err)
	}
	want = append(want, fmt.Sprintf("DELETED demo/a@%d", f.rv(last)))

	var resumeFrom int64
	if _, err := fmt.Sscanf(first[1][strings.LastIndex(first[1], "@")+1:], "%d", &resumeFrom); err != nil {
		f.Fatal(err)
	}
	ch := f.st.Watch(f.ctx, deployments, "", nil, resumeFrom)
	f.expect(f.collect(ch, 4), want[2:]...)
	f.quiet(ch)

	// From now: only what comes next.
	now := f.st.Watch(f.ctx, deployments, "", nil, 0)
	d, _ := f.apply(Deployment("demo", "b", 3, nil))
	f.expect(f.collect(now, 1), fmt.Sprintf("MODIFIED demo/b@%d", f.rv(d)))
}

func testWatchSelectorAndNamespace(f *fixture) {
	f.apply(Namespace("a"))
	f.apply(Namespace("a-b"))
	from := f.revision()
	sel, err := labels.Parse("app=web")
	if err != nil {
		f.Fatal(err)
	}
	ch := f.st.Watch(f.ctx, deployments, "a", sel, from)

	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	f.apply(Deployment("a", "x", 1, db))           // not matching: nothing
	f.apply(Deployment("a-b", "x", 1, web))        // other namespace: nothing
	e1, _ := f.apply(Deployment("a", "x", 1, web)) // starts matching: ADDED
	e2, _ := f.apply(Deployment("a", "x", 2, web)) // MODIFIED
	e3, _ := f.apply(Deployment("a", "x", 2, db))  // stops matching: DELETED
	f.apply(Deployment("a", "x", 3, db))           // not matching: nothing
	if _, err := f.st.Delete(f.ctx, deployments, "a", "x", ""); err != nil {
		f.Fatal(err) // deleted while not matching: nothing
	}
	e4, _ := f.apply(Deployment("a", "y", 1, web)) // ADDED
	e5, err := f.st.Delete(f.ctx, deployments, "a", "y", "")
	if err != nil {
		f.Fatal(err) // deleted while matching: DELETED
	}

	var events []storage.Event
	for range 5 {
		events = append(events, f.next(ch))
	}
	var got []string
	for _, e := range events {
		got = append(got, summary(e))
	}
	f.expect(got,
		fmt.Sprintf("ADDED a/x@%d", f.rv(e1)),
		fmt.Sprintf("MODIFIED a/x@%d", f.rv(e2)),
		fmt.Sprintf("DELETED a/x@%d", f.rv(e3)),
		fmt.Sprintf("ADDED a/y@%d", f.rv(e4)),
		fmt.Sprintf("DELETED a/y@%d", f.rv(e5)))
	// The object that stopped matching is reported in its last matching
	// state, at the revision of the change.
	gone := events[2].Object
	if gone.GetMetadata().GetLabels()["app"] != "web" || gone.GetMetadata().GetResourceVersion() != fmt.Sprint(f.rv(e3)) {
		f.Fatalf("DELETED object = %v", gone)
	}
	f.quiet(ch)
}

func testWatchNamespaceDeletion(f *fixture) {
	f.apply(Namespace("demo"))
	f.apply(Namespace("demo-2"))
	f.apply(Deployment("demo", "api", 1, nil))
	f.apply(Deployment("demo", "web", 1, nil))
	f.apply(Deployment("demo-2", "web", 1, nil))
	from := f.revision()
	ch := f.st.Watch(f.ctx, deployments, "", nil, from)
	nsCh := f.st.Watch(f.ctx, namespaces, "", nil, from)
	ns, err := f.st.Delete(f.ctx, namespaces, "", "demo", "")
	if err != nil {
		f.Fatal(err)
	}
	f.expect(f.collect(ch, 2),
		fmt.Sprintf("DELETED demo/api@%d", f.rv(ns)),
		fmt.Sprintf("DELETED demo/web@%d", f.rv(ns)))
	f.expect(f.collect(nsCh, 1), fmt.Sprintf("DELETED /demo@%d", f.rv(ns)))
	f.quiet(ch)
}

// A watch from a compacted revision ends with a single Error event carrying
// a *CompactedError; List, then Watch from the list's revision, recovers.
func testWatchCompacted(f *fixture) {
	if f.opts.Compact == nil {
		f.Skip("no storagetest.WithCompact for this store")
	}
	f.apply(Namespace("demo"))
	old := f.revision()
	f.apply(Deployment("demo", "web", 1, nil))
	f.apply(Deployment("demo", "web", 2, nil))
	now := f.revision()
	f.opts.Compact(f.T, f.st, now)

	ch := f.st.Watch(f.ctx, deployments, "", nil, old)
	e := f.next(ch)
	var compacted *storage.CompactedError
	if e.Type != storage.Error || !errors.Is(e.Err, storage.ErrCompacted) || !errors.As(e.Err, &compacted) {
		f.Fatalf("event = %v %v, want an Error with a CompactedError", e.Type, e.Err)
	}
	if compacted.Requested != old || compacted.Compacted <= old || compacted.Compacted > now {
		f.Fatalf("CompactedError = %+v, want requested %d, compacted in (%d, %d]", compacted, old, old, now)
	}
	f.closed(ch)

	// The relist: List, then Watch from its revision, works.
	objs, listRev, err := f.st.List(f.ctx, deployments, "", nil)
	if err != nil || len(objs) != 1 {
		f.Fatalf("relist = %v, %v", objs, err)
	}
	ch = f.st.Watch(f.ctx, deployments, "", nil, listRev)
	d, _ := f.apply(Deployment("demo", "web", 3, nil))
	f.expect(f.collect(ch, 1), fmt.Sprintf("MODIFIED demo/web@%d", f.rv(d)))
}

func testWatchEndsWithContext(f *fixture) {
	f.apply(Namespace("demo"))
	ctx, cancel := context.WithCancel(f.ctx)
	ch := f.st.Watch(ctx, deployments, "", nil, 0)
	cancel()
	f.closed(ch)

	// Cancelled while events are waiting: closed all the same.
	ctx, cancel = context.WithCancel(f.ctx)
	ch = f.st.Watch(ctx, deployments, "", nil, f.revision())
	for i := range 40 {
		f.apply(Deployment("demo", "web", int32(i), nil))
	}
	cancel()
	deadline := time.After(f.opts.EventTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			f.Fatal("channel not closed after cancel")
		}
	}
}

func testWatchInvalid(f *fixture) {
	for _, ch := range []<-chan storage.Event{
		f.st.Watch(f.ctx, nil, "", nil, 0),
		f.st.Watch(f.ctx, deployments, "", nil, -1),
		f.st.Watch(f.ctx, deployments, "a/b", nil, 0),
	} {
		e := f.next(ch)
		if e.Type != storage.Error || !errors.Is(e.Err, storage.ErrInvalid) {
			f.Fatalf("invalid watch = %v %v", e.Type, e.Err)
		}
		f.closed(ch)
	}
}

// No goroutine outlives the watch's context.
func testWatchGoroutinesEndWithContext(f *fixture) {
	f.apply(Namespace("demo"))
	from := f.revision()
	baseline := runtime.NumGoroutine()

	wctx, cancel := context.WithCancel(f.ctx)
	var chans []<-chan storage.Event
	for range 10 {
		chans = append(chans, f.st.Watch(wctx, deployments, "demo", nil, from))
	}
	d, _ := f.apply(Deployment("demo", "web", 1, nil))
	for _, ch := range chans {
		f.expect(f.collect(ch, 1), fmt.Sprintf("ADDED demo/web@%d", f.rv(d)))
	}
	if runtime.NumGoroutine() <= baseline {
		f.Fatal("watches started no goroutines?")
	}
	cancel()
	for _, ch := range chans {
		for range ch {
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			f.Fatalf("%d goroutines after the watches ended, %d before", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
