package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var (
	configMaps = resource.MustLookup("ConfigMap")
	namespaces = resource.MustLookup("Namespace")
)

// errInjected is the failure faultyStore puts into a watch.
var errInjected = errors.New("injected watch failure")

// faultyStore is the real store with a watch the test can break and hold:
// breakWatches ends every running watch with an Error event, and while the
// store is held a new watch waits before it starts reading from etcd.
type faultyStore struct {
	storage.Interface

	mu        sync.Mutex
	gate      chan struct{} // closed: watches may start
	brk       chan struct{} // closed to break the watches started under it
	lists     int           // List calls so far
	froms     []int64       // fromRevision of every Watch call, in order
	breakWhen func(storage.Event) bool
}

func newFaultyStore(st storage.Interface) *faultyStore {
	gate := make(chan struct{})
	close(gate)
	return &faultyStore{Interface: st, gate: gate, brk: make(chan struct{})}
}

func (s *faultyStore) List(ctx context.Context, kind *resource.Kind, ns string, sel labels.Selector) ([]resource.Object, int64, error) {
	s.mu.Lock()
	s.lists++
	s.mu.Unlock()
	return s.Interface.List(ctx, kind, ns, sel)
}

// Watch forwards the real watch until it is broken; the goroutine it starts
// ends with ctx or the inner watch.
func (s *faultyStore) Watch(ctx context.Context, kind *resource.Kind, ns string, sel labels.Selector, from int64) <-chan storage.Event {
	s.mu.Lock()
	gate, brk, breakWhen := s.gate, s.brk, s.breakWhen
	s.froms = append(s.froms, from)
	s.mu.Unlock()
	out := make(chan storage.Event)
	go func() {
		defer close(out)
		fail := func() {
			select {
			case out <- storage.Event{Type: storage.Error, Err: errInjected}:
			case <-ctx.Done():
			}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		in := s.Interface.Watch(wctx, kind, ns, sel, from)
		for {
			select {
			case ev, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
				if breakWhen != nil && breakWhen(ev) {
					fail()
					return
				}
			case <-brk:
				fail()
				return
			}
		}
	}()
	return out
}

// hold breaks the running watches and keeps new ones from starting until
// release.
func (s *faultyStore) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.brk)
	s.brk = make(chan struct{})
	s.gate = make(chan struct{})
}

func (s *faultyStore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.gate)
}

func (s *faultyStore) counts() (lists int, froms []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists, slices.Clone(s.froms)
}

// recorder is a set of handlers writing one shared log.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) handler(id string) controller.Handler {
	add := func(s string) {
		r.mu.Lock()
		r.log = append(r.log, id+":"+s)
		r.mu.Unlock()
	}
	name := func(o resource.Object) string { return o.GetMetadata().GetName() }
	return controller.Handler{
		OnAdd: func(o resource.Object) { add("add " + name(o)) },
		OnUpdate: func(old, o resource.Object) {
			add(fmt.Sprintf("update %s %s", name(o), o.(*meridianv1.ConfigMap).GetData()["v"]))
		},
		OnDelete: func(o resource.Object) { add("delete " + name(o)) },
	}
}

func (r *recorder) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type env struct {
	st  *store.Store
	ctx context.Context
}

func newEnv(t *testing.T) env {
	t.Helper()
	st := store.New(etcdnodetest.Client(t, etcdnodetest.Start(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e := env{st: st, ctx: ctx}
	e.createNamespace(t, "demo")
	return e
}

func (e env) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := namespaces.New()
	resource.Meta(ns).Name = name
	if _, err := e.st.Create(e.ctx, ns); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
}

func (e env) put(t *testing.T, ns, name, value string, lbls map[string]string) {
	t.Helper()
	cm := configMaps.New().(*meridianv1.ConfigMap)
	resource.Meta(cm).Namespace = ns
	resource.Meta(cm).Name = name
	resource.Meta(cm).Labels = lbls
	cm.Data = map[string]string{"v": value}
	if _, _, err := e.st.Apply(e.ctx, cm, storage.ApplyOptions{}); err != nil {
		t.Fatalf("failed to apply %s: %v", name, err)
	}
}

func (e env) del(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := e.st.Delete(e.ctx, configMaps, ns, name, ""); err != nil {
		t.Fatalf("failed to delete %s: %v", name, err)
	}
}

// run starts inf and stops it (and waits for it) when the test ends.
func run(t *testing.T, inf *controller.Informer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		inf.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if !inf.WaitForSync(wctx) {
		t.Fatal("informer did not sync")
	}
}

// cached is the sorted "name=value" list of the informer's cache.
func cached(inf *controller.Informer) []string {
	var out []string
	for _, o := range inf.List("", nil) {
		out = append(out, o.GetMetadata().GetName()+"="+o.(*meridianv1.ConfigMap).GetData()["v"])
	}
	sort.Strings(out)
	return out
}

func TestInformerListsThenWatches(t *testing.T) {
	e := newEnv(t)
	e.createNamespace(t, "other")
	e.put(t, "demo", "a", "1", map[string]string{"app": "web"})
	e.put(t, "other", "b", "1", nil)

	inf := controller.NewInformer(e.st, configMaps, nil)
	rec := &recorder{}
	inf.AddHandler(rec.handler("h1"))
	inf.AddHandler(rec.handler("h2"))
	if inf.HasSynced() {
		t.Fatal("HasSynced before Run")
	}
	run(t, inf)

	if got, want := cached(inf), []string{"a=1", "b=1"}; !slices.Equal(got, want) {
		t.Fatalf("cache after list = %v, want %v", got, want)
	}
	if o, ok := inf.Get("demo", "a"); !ok || o.GetMetadata().GetName() != "a" {
		t.Fatalf("Get(demo, a) = %v, %v", o, ok)
	}
	if _, ok := inf.Get("demo", "b"); ok {
		t.Fatal("Get(demo, b) found an object of another namespace")
	}
	if n := len(inf.List("other", nil)); n != 1 {
		t.Fatalf("List(other) = %d objects, want 1", n)
	}
	if n := len(inf.List("", labels.SelectorFromSet(labels.Set{"app": "web"}))); n != 1 {
		t.Fatalf("List(app=web) = %d objects, want 1", n)
	}

	e.put(t, "demo", "c", "1", nil)
	e.put(t, "demo", "c", "2", nil)
	e.del(t, "demo", "c")
	want := []string{
		"h1:add a", "h2:add a", "h1:add b", "h2:add b",
		"h1:add c", "h2:add c", "h1:update c 2", "h2:update c 2", "h1:delete c", "h2:delete c",
	}
	waitFor(t, "the watch events", func() bool { return len(rec.entries()) >= len(want) })
	if got := rec.entries(); !slices.Equal(got, want) {
		t.Fatalf("handler calls:\n got %v\nwant %v", got, want)
	}
	if got, want := cached(inf), []string{"a=1", "b=1"}; !slices.Equal(got, want) {
		t.Fatalf("cache = %v, want %v", got, want)
	}
}

func TestInformerRelistsAfterCompaction(t *testing.T) {
	e := newEnv(t)
	e.put(t, "demo", "a", "1", nil)
	e.put(t, "demo", "b", "1", nil)
	fs := newFaultyStore(e.st)
	inf := controller.NewInformer(fs, configMaps, nil)
	rec := &recorder{}
	inf.AddHandler(rec.handler("h"))
	run(t, inf)

	// Cut the informer off, change things, and compact away the history it
	// would need to catch up from its revision. Its first watch must have
	// started: one started after hold waits at the gate, and never fails.
	waitFor(t, "the informer's first watch", func() bool { _, f := fs.counts(); return len(f) >= 1 })
	fs.hold()
	waitFor(t, "the informer to retry its watch", func() bool { _, f := fs.counts(); return len(f) >= 2 })
	e.put(t, "demo", "a", "2", nil)
	e.del(t, "demo", "b")
	e.put(t, "demo", "d", "1", nil)
	rev, err := e.st.Revision(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Compact(e.ctx, rev); err != nil {
		t.Fatal(err)
	}
	fs.release()

	waitFor(t, "the relist", func() bool { return slices.Equal(cached(inf), []string{"a=2", "d=1"}) })
	lists, _ := fs.counts()
	if lists != 2 {
		t.Fatalf("List called %d times, want 2 (the first list and the relist)", lists)
	}
	// The handlers heard the difference between the old cache and the new list.
	got := rec.entries()
	sort.Strings(got)
	want := []string{"h:add a", "h:add b", "h:add d", "h:delete b", "h:update a 2"}
	if !slices.Equal(got, want) {
		t.Fatalf("handler calls = %v, want %v", got, want)
	}

	// And the informer watches again from the relist's revision.
	e.put(t, "demo", "e", "1", nil)
	waitFor(t, "a change after the relist", func() bool { return slices.Contains(cached(inf), "e=1") })
}

func TestInformerResumesAfterWatchError(t *testing.T) {
	e := newEnv(t)
	e.put(t, "demo", "a", "1", nil)
	fs := newFaultyStore(e.st)
	inf := controller.NewInformer(fs, configMaps, nil)
	rec := &recorder{}
	inf.AddHandler(rec.handler("h"))
	run(t, inf)

	e.put(t, "demo", "a", "2", nil)
	waitFor(t, "the update", func() bool { return slices.Equal(cached(inf), []string{"a=2"}) })
	seen, err := e.st.Revision(e.ctx)
	if err != nil {
		t.Fatal(err)
	}

	fs.hold()
	waitFor(t, "the informer to retry its watch", func() bool { _, f := fs.counts(); return len(f) >= 2 })
	e.put(t, "demo", "b", "1", nil)
	e.put(t, "demo", "a", "3", nil)
	fs.release()

	waitFor(t, "the changes made while the watch was down", func() bool {
		return slices.Equal(cached(inf), []string{"a=3", "b=1"})
	})
	lists, froms := fs.counts()
	if lists != 1 {
		t.Fatalf("List called %d times, want 1: a failed watch resumes, it does not relist", lists)
	}
	// The resumed watch starts at (or just before) the last revision seen.
	if last := froms[len(froms)-1]; last < seen-1 || last > seen {
		t.Fatalf("watch resumed from revision %d, want about %d", last, seen)
	}
	want := []string{"h:add a", "h:update a 2", "h:add b", "h:update a 3"}
	if got := rec.entries(); !slices.Equal(got, want) {
		t.Fatalf("handler calls = %v, want %v (each change exactly once)", got, want)
	}
}

func TestInformerResumesInsideARevision(t *testing.T) {
	// Deleting a Namespace deletes everything in it at one revision. A watch
	// that fails after the first of those events must not lose the others.
	e := newEnv(t)
	e.createNamespace(t, "doomed")
	for _, n := range []string{"x", "y", "z"} {
		e.put(t, "doomed", n, "1", nil)
	}
	e.put(t, "demo", "keep", "1", nil)
	fs := newFaultyStore(e.st)
	var broken atomic.Bool // break once, after the first deletion
	fs.breakWhen = func(ev storage.Event) bool {
		return ev.Type == storage.Deleted && broken.CompareAndSwap(false, true)
	}
	inf := controller.NewInformer(fs, configMaps, nil)
	rec := &recorder{}
	inf.AddHandler(rec.handler("h"))
	run(t, inf)

	if _, err := e.st.Delete(e.ctx, namespaces, "", "doomed", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every deletion", func() bool { return slices.Equal(cached(inf), []string{"keep=1"}) })
	deletes := 0
	for _, s := range rec.entries() {
		if s == "h:delete x" || s == "h:delete y" || s == "h:delete z" {
			deletes++
		}
	}
	if deletes != 3 {
		t.Fatalf("handlers heard %d deletions, want 3 (each once): %v", deletes, rec.entries())
	}
}

func TestInformerSetSharesInformers(t *testing.T) {
	e := newEnv(t)
	set := controller.NewInformerSet(e.st, nil)
	a, b := set.For(configMaps), set.For(configMaps)
	if a != b {
		t.Fatal("For returned two informers for one kind")
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		set.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if !set.WaitForSync(wctx) {
		t.Fatal("informer set did not sync")
	}
	e.put(t, "demo", "a", "1", nil)
	waitFor(t, "the shared informer to see a", func() bool { _, ok := a.Get("demo", "a"); return ok })
}
