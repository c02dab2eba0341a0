// Package podtest is the test bench of the member's workload controllers:
// a real store over an embedded etcd with a namespace, the informers and
// recorder the controllers take, a fake kubelet that plays the node agent
// (it marks pods Running and Ready, at once, after a delay, or only when
// the test says so), and a polling WaitFor.
//
// The fake kubelet is the boundary of the unit under test: controllers
// only ever see pods' status, which the real node agent writes the same way.
package podtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Namespace is the namespace every Env creates.
const Namespace = "test"

// Kinds the tests use.
var (
	Pods        = resource.MustLookup("Pod")
	Nodes       = resource.MustLookup("Node")
	ReplicaSets = resource.MustLookup("ReplicaSet")
	Deployments = resource.MustLookup("Deployment")
)

// Env is one test's world: a store with the namespace Namespace, and an
// InformerSet and Recorder over it for the controllers under test.
type Env struct {
	T         testing.TB
	Store     storage.Interface
	Informers *controller.InformerSet
	Recorder  *controller.Recorder
	Log       *slog.Logger

	wg sync.WaitGroup
}

// NewEnv starts an etcd node, a store over it and creates the namespace.
// Set MERIDIAN_TEST_LOG=1 to see the controllers' debug logs.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	st := store.New(cli)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ns := &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: Namespace}}
	if _, _, err := st.Apply(t.Context(), ns, storage.ApplyOptions{}); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	e := &Env{T: t, Store: st, Informers: controller.NewInformerSet(st, log), Recorder: controller.NewRecorder(st, "test", log), Log: log}
	// t.Context ends before Cleanup functions run: wait for everything
	// Go started to stop before the store and etcd close.
	t.Cleanup(e.wg.Wait)
	return e
}

// Go runs f in a goroutine with the test's context and waits for it to
// return when the test ends.
func (e *Env) Go(f func(ctx context.Context)) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f(e.T.Context())
	}()
}

// Start runs the informers and the given controllers' Run functions until
// the test ends. Construct every controller (they register their
// informers) before calling it.
func (e *Env) Start(runs ...func(ctx context.Context)) {
	e.Go(e.Informers.Run)
	for _, r := range runs {
		e.Go(r)
	}
}

// Ctx is the test's context.
func (e *Env) Ctx() context.Context { return e.T.Context() }

// Apply creates or replaces obj, failing the test on error.
func (e *Env) Apply(obj resource.Object) resource.Object {
	e.T.Helper()
	got, _, err := e.Store.Apply(e.Ctx(), obj, storage.ApplyOptions{})
	if err != nil {
		e.T.Fatalf("failed to apply %s %s: %v", obj.GetKind(), obj.GetMetadata().GetName(), err)
	}
	return got
}

// Update changes the stored object with mutate, failing the test on error.
func (e *Env) Update(kind *resource.Kind, name string, mutate func(resource.Object) error) resource.Object {
	e.T.Helper()
	ns := Namespace
	if !kind.Namespaced {
		ns = ""
	}
	got, err := e.Store.Update(e.Ctx(), kind, ns, name, mutate)
	if err != nil {
		e.T.Fatalf("failed to update %s %s: %v", kind.Kind, name, err)
	}
	return got
}

// Get returns the stored object, or nil if there is none.
func (e *Env) Get(kind *resource.Kind, name string) resource.Object {
	e.T.Helper()
	ns := Namespace
	if !kind.Namespaced {
		ns = ""
	}
	got, err := e.Store.Get(e.Ctx(), kind, ns, name)
	if err != nil {
		return nil
	}
	return got
}

// Pods lists the stored pods of the namespace, sorted by name.
func (e *Env) Pods() []*meridianv1.Pod {
	e.T.Helper()
	objs, _, err := e.Store.List(e.Ctx(), Pods, Namespace, nil)
	if err != nil {
		e.T.Fatalf("failed to list pods: %v", err)
	}
	out := make([]*meridianv1.Pod, len(objs))
	for i, o := range objs {
		out[i] = o.(*meridianv1.Pod)
	}
	return out
}

// List lists the stored objects of kind in the namespace, sorted by name.
func (e *Env) List(kind *resource.Kind) []resource.Object {
	e.T.Helper()
	objs, _, err := e.Store.List(e.Ctx(), kind, Namespace, nil)
	if err != nil {
		e.T.Fatalf("failed to list %s: %v", kind.Plural, err)
	}
	return objs
}

// DeletePod deletes a pod as a user would.
func (e *Env) DeletePod(name string) {
	e.T.Helper()
	if _, err := e.Store.Delete(e.Ctx(), Pods, Namespace, name, ""); err != nil {
		e.T.Fatalf("failed to delete pod %s: %v", name, err)
	}
}

// WaitFor polls cond every 10 ms until it holds, and fails the test with
// what if it does not within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(t, timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll polls cond every 10 ms until it holds (true) or timeout passes
// (false).
func Poll(t testing.TB, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			return false
		}
	}
	return true
}

// Template returns a pod template labelled app=app whose one container runs
// image (an image name is enough: the fake kubelet runs nothing).
func Template(app, image string) *meridianv1.PodTemplateSpec {
	return &meridianv1.PodTemplateSpec{
		Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: &meridianv1.PodSpec{
			RestartPolicy: "Always",
			Containers:    []*meridianv1.Container{{Name: "main", Image: image, Command: []string{"sleep", "3600"}}},
		},
	}
}

// Selector returns the selector app=app.
func Selector(app string) *meridianv1.LabelSelector {
	return &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

// Image returns the image of a pod's first container.
func Image(p *meridianv1.Pod) string {
	if cs := p.GetSpec().GetContainers(); len(cs) > 0 {
		return cs[0].GetImage()
	}
	return ""
}

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return &v }

// Describe renders pods as "name(phase,ready)" for failure messages.
func Describe(pods []*meridianv1.Pod) string {
	s := ""
	for _, p := range pods {
		ready := "notready"
		for _, c := range p.GetStatus().GetConditions() {
			if c.GetType() == "Ready" && c.GetStatus() == "True" {
				ready = "ready"
			}
		}
		s += fmt.Sprintf("%s(%s,%s,%s) ", p.GetMetadata().GetName(), p.GetStatus().GetPhase(), ready, Image(p))
	}
	return s
}

// PodWatch is a WatchPods in progress.
type PodWatch struct {
	env  *Env
	mu   sync.Mutex
	live map[string]string // name -> resourceVersion, as the watch has seen them
}

// WatchPods follows the namespace's pods through a watch from a list and
// calls check after every change with the change and the live pods after
// it, in store order: each call sees one state the store went through, so
// an invariant that holds in every call held all along. check runs on the
// watch's goroutine, one call at a time; it must not block. WatchPods
// returns once the list is loaded; the watch ends with the test.
func WatchPods(env *Env, check func(ev storage.Event, live map[string]*meridianv1.Pod)) *PodWatch {
	objs, rev, err := env.Store.List(env.Ctx(), Pods, Namespace, nil)
	if err != nil {
		env.T.Fatalf("failed to list pods: %v", err)
	}
	w := &PodWatch{env: env, live: map[string]string{}}
	live := map[string]*meridianv1.Pod{}
	for _, o := range objs {
		live[o.GetMetadata().GetName()] = o.(*meridianv1.Pod)
		w.live[o.GetMetadata().GetName()] = o.GetMetadata().GetResourceVersion()
	}
	env.Go(func(ctx context.Context) {
		for ev := range env.Store.Watch(ctx, Pods, Namespace, nil, rev) {
			name := ""
			if ev.Object != nil {
				name = ev.Object.GetMetadata().GetName()
			}
			switch ev.Type {
			case storage.Added, storage.Modified:
				live[name] = ev.Object.(*meridianv1.Pod)
			case storage.Deleted:
				delete(live, name)
			case storage.Error:
				if ctx.Err() == nil {
					env.T.Errorf("pod watch failed: %v", ev.Err)
				}
				return
			default:
				continue
			}
			check(ev, live)
			w.mu.Lock()
			if ev.Type == storage.Deleted {
				delete(w.live, name)
			} else {
				w.live[name] = ev.Object.GetMetadata().GetResourceVersion()
			}
			w.mu.Unlock()
		}
	})
	return w
}

// Sync waits until the watch has caught up with the store: every check
// call for what the store holds now has returned. Call it once things are
// quiet, before reading what check recorded.
func (w *PodWatch) Sync() {
	w.env.T.Helper()
	WaitFor(w.env.T, 10*time.Second, "the pod watch to catch up", func() bool {
		objs, _, err := w.env.Store.List(w.env.Ctx(), Pods, Namespace, nil)
		if err != nil {
			return false
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(objs) != len(w.live) {
			return false
		}
		for _, o := range objs {
			if w.live[o.GetMetadata().GetName()] != o.GetMetadata().GetResourceVersion() {
				return false
			}
		}
		return true
	})
}
