package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const ns = "demo"

var (
	nsKind    = resource.MustLookup("Namespace")
	eventKind = resource.MustLookup("Event")
)

// node is a Node object with cpu and memory allocatable.
func node(name, cpu, memory string, labels map[string]string, taints ...*meridianv1.Taint) *meridianv1.Node {
	n := nodeKind.New().(*meridianv1.Node)
	resource.Meta(n).Name = name
	resource.Meta(n).Labels = labels
	n.Spec = &meridianv1.NodeSpec{Taints: taints}
	alloc := map[string]string{}
	if cpu != "" {
		alloc[ResourceCPU] = cpu
	}
	if memory != "" {
		alloc[ResourceMemory] = memory
	}
	n.Status = &meridianv1.NodeStatus{Allocatable: alloc, Capacity: alloc}
	return n
}

// pod is a pending Pod with one container requesting cpu (and memory, if
// not "") and owned by owner (if not "").
func pod(name, cpu, memory, owner string) *meridianv1.Pod {
	p := podKind.New().(*meridianv1.Pod)
	resource.Meta(p).Name = name
	resource.Meta(p).Namespace = ns
	req := map[string]string{}
	if cpu != "" {
		req[ResourceCPU] = cpu
	}
	if memory != "" {
		req[ResourceMemory] = memory
	}
	p.Spec = &meridianv1.PodSpec{Containers: []*meridianv1.Container{{
		Name: "main", Command: []string{"sleep", "1"},
		Resources: &meridianv1.ResourceRequirements{Requests: req},
	}}}
	if owner != "" {
		t := true
		resource.Meta(p).OwnerReferences = []*meridianv1.OwnerReference{{
			ApiVersion: "apps/v1", Kind: "ReplicaSet", Name: owner, Uid: "uid-" + owner, Controller: &t,
		}}
	}
	return p
}

// harness is a real etcd store with a scheduler running over it.
type harness struct {
	t   testing.TB
	st  *store.Store
	ctx context.Context
	s   *Scheduler
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newStore starts etcd and returns a store with namespace ns.
func newStore(t testing.TB) (*store.Store, context.Context) {
	t.Helper()
	st := store.New(etcdnodetest.Client(t, etcdnodetest.Start(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	n := nsKind.New()
	resource.Meta(n).Name = ns
	if _, err := st.Create(ctx, n); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	return st, ctx
}

// startScheduler runs a scheduler over st until the test ends.
func startScheduler(t testing.TB, st *store.Store, cfg Config) *Scheduler {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	set := controller.NewInformerSet(st, cfg.Log)
	s, err := New(st, set, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); set.Run(ctx) }()
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return s
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	st, ctx := newStore(t)
	return &harness{t: t, st: st, ctx: ctx, s: startScheduler(t, st, cfg)}
}

// create stores obj; a Node, with its status, and waits until the
// scheduler's cache has that last write: a test that then counts what the
// scheduler decided must not count decisions made before it knew the node.
func (h *harness) create(obj resource.Object) {
	h.t.Helper()
	if err := createWithStatus(h.ctx, h.st, obj); err != nil {
		h.t.Fatal(err)
	}
	if _, ok := obj.(*meridianv1.Node); !ok {
		return
	}
	name := obj.GetMetadata().GetName()
	o, err := h.st.Get(h.ctx, nodeKind, "", name)
	if err != nil {
		h.t.Fatal(err)
	}
	want := o.GetMetadata().GetResourceVersion()
	waitFor(h.t, "the scheduler's cache to have node "+name, func() (bool, string) {
		c := h.s.Cache()
		c.mu.Lock()
		defer c.mu.Unlock()
		n := c.nodes[name]
		if n == nil || n.Node == nil {
			return false, "not in the cache"
		}
		got := n.Node.GetMetadata().GetResourceVersion()
		return got == want, "resourceVersion " + got + ", want " + want
	})
}

// createWithStatus creates obj and then writes its status, as a node agent
// does for its Node: the store keeps no status given on create (status is
// the server's), so it takes an Update.
func createWithStatus(ctx context.Context, st *store.Store, obj resource.Object) error {
	if _, err := st.Create(ctx, obj); err != nil {
		return fmt.Errorf("failed to create %s: %w", obj.GetMetadata().GetName(), err)
	}
	n, ok := obj.(*meridianv1.Node)
	if !ok || n.Status == nil {
		return nil
	}
	_, err := st.Update(ctx, nodeKind, "", n.GetMetadata().GetName(), func(o resource.Object) error {
		o.(*meridianv1.Node).Status = n.Status
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to write the status of node %s: %w", n.GetMetadata().GetName(), err)
	}
	return nil
}

func (h *harness) pod(name string) *meridianv1.Pod {
	h.t.Helper()
	o, err := h.st.Get(h.ctx, podKind, ns, name)
	if err != nil {
		h.t.Fatalf("failed to get pod %s: %v", name, err)
	}
	return o.(*meridianv1.Pod)
}

// waitBound waits for a pod to be bound and returns its node.
func (h *harness) waitBound(name string) string {
	h.t.Helper()
	var n string
	waitFor(h.t, "pod "+name+" to be bound", func() (bool, string) {
		p := h.pod(name)
		n = p.GetSpec().GetNodeName()
		return n != "", fmt.Sprintf("conditions %v", p.GetStatus().GetConditions())
	})
	return n
}

// waitUnschedulable waits for a pod's PodScheduled=False condition and
// returns its message.
func (h *harness) waitUnschedulable(name string) string {
	h.t.Helper()
	var msg string
	waitFor(h.t, "pod "+name+" to be marked unschedulable", func() (bool, string) {
		p := h.pod(name)
		if p.GetSpec().GetNodeName() != "" {
			h.t.Fatalf("pod %s was bound to %s", name, p.GetSpec().GetNodeName())
		}
		for _, c := range p.GetStatus().GetConditions() {
			if c.GetType() == ConditionPodScheduled && c.GetStatus() == "False" && c.GetReason() == ReasonUnschedulable {
				msg = c.GetMessage()
				return true, ""
			}
		}
		return false, fmt.Sprintf("conditions %v", p.GetStatus().GetConditions())
	})
	return msg
}

// waitMessage waits for a pod's unschedulable message to be want.
func (h *harness) waitMessage(name, want string) {
	h.t.Helper()
	var got string
	waitFor(h.t, "pod "+name+"'s message", func() (bool, string) {
		got = h.waitUnschedulable(name)
		return got == want, fmt.Sprintf("%q", got)
	})
}

// events lists "reason: message" of the events about a pod.
func (h *harness) events(podName string) []string {
	h.t.Helper()
	objs, _, err := h.st.List(h.ctx, eventKind, ns, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		ev := o.(*meridianv1.Event)
		if ev.GetInvolvedObject().GetName() == podName {
			out = append(out, ev.GetReason()+": "+ev.GetMessage())
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last saw: %s", what, saw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
