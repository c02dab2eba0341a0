package statefulset

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/member/controller/podutil/podtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const wait = 15 * time.Second

var sets = resource.MustLookup("StatefulSet")

func newSet(name string, n int32, image string) *meridianv1.StatefulSet {
	return &meridianv1.StatefulSet{
		ApiVersion: "apps/v1", Kind: "StatefulSet",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: podtest.Namespace},
		Spec: &meridianv1.StatefulSetSpec{
			Replicas:    podtest.Ptr(n),
			Selector:    podtest.Selector(name),
			Template:    podtest.Template(name, image),
			ServiceName: name + "-svc",
		},
	}
}

// start runs the controller and a fake kubelet that binds pods to a node,
// so that they are deleted gracefully and take a while to go, as real
// pods do: a pod's name stays taken while it terminates.
func start(t *testing.T, opts podtest.KubeletOptions) (*podtest.Env, *podtest.Kubelet) {
	opts.Node, opts.TerminationDelay = "node-1", 30*time.Millisecond
	env := podtest.NewEnv(t)
	c := New(env.Store, env.Informers, env.Recorder, env.Log)
	env.Start(c.Run)
	return env, podtest.StartKubelet(env, opts)
}

func status(env *podtest.Env, name string) *meridianv1.StatefulSetStatus {
	o := env.Get(sets, name)
	if o == nil {
		return nil
	}
	return o.(*meridianv1.StatefulSet).GetStatus()
}

// waitReady waits until the set has exactly n pods, all Running and Ready
// and running image.
func waitReady(t *testing.T, env *podtest.Env, name string, n int, image string) {
	t.Helper()
	podtest.WaitFor(t, wait, fmt.Sprintf("%d ready pods of %s running %s", n, name, image), func() bool {
		pods := env.Pods()
		if len(pods) != n || status(env, name).GetReadyReplicas() != int32(n) {
			return false
		}
		for i, p := range pods {
			if p.GetMetadata().GetName() != PodName(name, i) || !podutil.IsRunningAndReady(p) || podtest.Image(p) != image {
				return false
			}
		}
		return true
	})
}

func update(env *podtest.Env, name string, f func(*meridianv1.StatefulSet)) resource.Object {
	return env.Update(sets, name, func(o resource.Object) error {
		f(o.(*meridianv1.StatefulSet))
		return nil
	})
}

// history watches the namespace's pods and records what the tests check:
// the order of creations and deletions, and any breach of identity (a pod
// created while one of its name is alive) or of order (a pod created
// before every lower ordinal is Running and Ready).
type history struct {
	w          *podtest.PodWatch
	mu         sync.Mutex
	alive      map[string]string // name -> uid
	created    []int
	deleted    []int
	violations []string
}

func watchHistory(env *podtest.Env, set string, checkOrder bool) *history {
	h := &history{alive: map[string]string{}}
	for _, p := range env.Pods() {
		h.alive[p.GetMetadata().GetName()] = p.GetMetadata().GetUid()
	}
	h.w = podtest.WatchPods(env, func(ev storage.Event, live map[string]*meridianv1.Pod) {
		h.mu.Lock()
		defer h.mu.Unlock()
		name, uid := ev.Object.GetMetadata().GetName(), ev.Object.GetMetadata().GetUid()
		ord, _ := Ordinal(set, name)
		switch ev.Type {
		case storage.Added:
			if old, ok := h.alive[name]; ok {
				h.violations = append(h.violations, fmt.Sprintf("pod %s (uid %s) created while %s was alive", name, uid, old))
			}
			h.alive[name] = uid
			h.created = append(h.created, ord)
			for i := 0; checkOrder && i < ord; i++ {
				if p := live[PodName(set, i)]; p == nil || !podutil.IsRunningAndReady(p) {
					h.violations = append(h.violations, fmt.Sprintf("pod %s created before %s was Running and Ready", name, PodName(set, i)))
				}
			}
		case storage.Deleted:
			delete(h.alive, name)
			h.deleted = append(h.deleted, ord)
		}
	})
	return h
}

func (h *history) check(t *testing.T, wantCreated, wantDeleted []int) {
	t.Helper()
	h.w.Sync()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.violations {
		t.Error(v)
	}
	if wantCreated != nil && !slices.Equal(h.created, wantCreated) {
		t.Errorf("created ordinals %v, want %v", h.created, wantCreated)
	}
	if wantDeleted != nil && !slices.Equal(h.deleted, wantDeleted) {
		t.Errorf("deleted ordinals %v, want %v", h.deleted, wantDeleted)
	}
}

func TestOrderedStartAndIdentity(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{Delay: 20 * time.Millisecond})
	h := watchHistory(env, "db", true)
	env.Apply(newSet("db", 4, "img:1"))
	waitReady(t, env, "db", 4, "img:1")
	h.check(t, []int{0, 1, 2, 3}, []int{})

	for i, p := range env.Pods() {
		name := PodName("db", i)
		if p.GetSpec().GetHostname() != name || p.GetSpec().GetSubdomain() != "db-svc" ||
			p.GetMetadata().GetLabels()[PodNameLabel] != name || p.GetMetadata().GetLabels()[podutil.ControllerRevisionHashLabel] == "" {
			t.Errorf("pod %s: hostname %q subdomain %q labels %v", name, p.GetSpec().GetHostname(), p.GetSpec().GetSubdomain(), p.GetMetadata().GetLabels())
		}
	}
	st := status(env, "db")
	if st.GetReplicas() != 4 || st.GetCurrentReplicas() != 4 || st.GetUpdatedReplicas() != 4 || st.GetAvailableReplicas() != 4 {
		t.Errorf("status %v", st)
	}
}

func TestOrderedStartWaitsForReadiness(t *testing.T) {
	env, k := start(t, podtest.KubeletOptions{Manual: true})
	got := env.Apply(newSet("db", 3, "img:1"))
	podtest.WaitFor(t, wait, "db-0 pending", func() bool { return slices.Equal(k.Pending(), []string{"db-0"}) })
	podtest.WaitFor(t, wait, "the status to be written", func() bool {
		return status(env, "db").GetObservedGeneration() == got.GetMetadata().GetGeneration() && status(env, "db").GetReplicas() == 1
	})
	if n := len(env.Pods()); n != 1 {
		t.Fatalf("%d pods while db-0 is not ready, want 1", n)
	}
	k.Ready("db-0")
	podtest.WaitFor(t, wait, "db-1 pending", func() bool { return slices.Equal(k.Pending(), []string{"db-1"}) })
	k.Ready("db-1")
	podtest.WaitFor(t, wait, "db-2 pending", func() bool { return slices.Equal(k.Pending(), []string{"db-2"}) })
}

func TestParallelStartsAllAtOnce(t *testing.T) {
	env, k := start(t, podtest.KubeletOptions{Manual: true})
	set := newSet("db", 3, "img:1")
	set.Spec.PodManagementPolicy = Parallel
	env.Apply(set)
	podtest.WaitFor(t, wait, "3 pending pods", func() bool { return len(k.Pending()) == 3 })
	update(env, "db", func(s *meridianv1.StatefulSet) { s.Spec.Replicas = podtest.Ptr(int32(1)) })
	podtest.WaitFor(t, wait, "parallel scale-down of unready pods", func() bool { return len(env.Pods()) == 1 })
}

func TestOrderedScaleDown(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{Delay: 10 * time.Millisecond})
	env.Apply(newSet("db", 4, "img:1"))
	waitReady(t, env, "db", 4, "img:1")
	h := watchHistory(env, "db", false)
	update(env, "db", func(s *meridianv1.StatefulSet) { s.Spec.Replicas = podtest.Ptr(int32(1)) })
	waitReady(t, env, "db", 1, "img:1")
	h.check(t, []int{}, []int{3, 2, 1})
}

func TestRollingUpdateOrder(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{Delay: 20 * time.Millisecond})
	env.Apply(newSet("db", 3, "img:1"))
	waitReady(t, env, "db", 3, "img:1")

	h := watchHistory(env, "db", false)
	// Each pod is replaced only once the one above it runs the new
	// template and is ready again.
	var (
		mu       sync.Mutex
		tooEarly []string
	)
	w := podtest.WatchPods(env, func(ev storage.Event, live map[string]*meridianv1.Pod) {
		if ev.Type != storage.Deleted {
			return
		}
		ord, _ := Ordinal("db", ev.Object.GetMetadata().GetName())
		if above := live[PodName("db", ord+1)]; ord < 2 && (above == nil || podtest.Image(above) != "img:2" || !podutil.IsRunningAndReady(above)) {
			mu.Lock()
			tooEarly = append(tooEarly, fmt.Sprintf("db-%d replaced before db-%d was updated and ready", ord, ord+1))
			mu.Unlock()
		}
	})
	update(env, "db", func(s *meridianv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "img:2" })
	waitReady(t, env, "db", 3, "img:2")
	h.check(t, []int{2, 1, 0}, []int{2, 1, 0})
	w.Sync()
	mu.Lock()
	for _, e := range tooEarly {
		t.Error(e)
	}
	mu.Unlock()
	podtest.WaitFor(t, wait, "current and updated replicas 3", func() bool {
		st := status(env, "db")
		return st.GetCurrentReplicas() == 3 && st.GetUpdatedReplicas() == 3
	})
}

func TestPartition(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	set := newSet("db", 3, "img:1")
	set.Spec.UpdateStrategy = &meridianv1.StatefulSetUpdateStrategy{Type: RollingUpdate, RollingUpdate: &meridianv1.RollingUpdateStatefulSetStrategy{Partition: podtest.Ptr(int32(2))}}
	env.Apply(set)
	waitReady(t, env, "db", 3, "img:1")
	update(env, "db", func(s *meridianv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "img:2" })
	podtest.WaitFor(t, wait, "db-2 updated, db-0 and db-1 not", func() bool {
		st := status(env, "db")
		return st.GetUpdatedReplicas() == 1 && st.GetCurrentReplicas() == 2 && st.GetReadyReplicas() == 3
	})
	images := func() []string {
		var out []string
		for _, p := range env.Pods() {
			out = append(out, podtest.Image(p))
		}
		return out
	}
	if got := images(); !slices.Equal(got, []string{"img:1", "img:1", "img:2"}) {
		t.Fatalf("images %v, want img:1 img:1 img:2", got)
	}
	// A pod below the partition is re-created at the old revision.
	env.DeletePod("db-0")
	podtest.WaitFor(t, wait, "db-0 back", func() bool { return status(env, "db").GetReadyReplicas() == 3 && len(env.Pods()) == 3 })
	if got := images(); !slices.Equal(got, []string{"img:1", "img:1", "img:2"}) {
		t.Fatalf("images %v after re-creating db-0, want img:1 img:1 img:2", got)
	}
	// Lowering the partition finishes the rollout.
	update(env, "db", func(s *meridianv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = podtest.Ptr(int32(0)) })
	waitReady(t, env, "db", 3, "img:2")
}

func TestOnDelete(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	set := newSet("db", 2, "img:1")
	set.Spec.UpdateStrategy = &meridianv1.StatefulSetUpdateStrategy{Type: OnDelete}
	env.Apply(set)
	waitReady(t, env, "db", 2, "img:1")
	got := update(env, "db", func(s *meridianv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "img:2" })
	podtest.WaitFor(t, wait, "the new generation observed", func() bool {
		return status(env, "db").GetObservedGeneration() == got.GetMetadata().GetGeneration()
	})
	if st := status(env, "db"); st.GetUpdatedReplicas() != 0 || st.GetCurrentReplicas() != 2 {
		t.Fatalf("OnDelete replaced pods on its own: %v", st)
	}
	env.DeletePod("db-1")
	podtest.WaitFor(t, wait, "db-1 re-created at the new revision", func() bool {
		p := env.Get(podtest.Pods, "db-1")
		return p != nil && podtest.Image(p.(*meridianv1.Pod)) == "img:2" && podutil.IsRunningAndReady(p.(*meridianv1.Pod))
	})
	if p := env.Get(podtest.Pods, "db-0"); podtest.Image(p.(*meridianv1.Pod)) != "img:1" {
		t.Fatalf("db-0 was replaced too")
	}
}

func TestReplacesEndedPodUnderTheSameName(t *testing.T) {
	env, k := start(t, podtest.KubeletOptions{})
	env.Apply(newSet("db", 2, "img:1"))
	waitReady(t, env, "db", 2, "img:1")
	h := watchHistory(env, "db", false)
	old := env.Get(podtest.Pods, "db-1").GetMetadata().GetUid()
	k.Fail("db-1", podutil.PodFailed)
	podtest.WaitFor(t, wait, "db-1 replaced", func() bool {
		p := env.Get(podtest.Pods, "db-1")
		return p != nil && p.GetMetadata().GetUid() != old && podutil.IsRunningAndReady(p.(*meridianv1.Pod))
	})
	h.check(t, []int{1}, []int{1})

	if _, err := env.Store.Delete(env.Ctx(), sets, podtest.Namespace, "db", ""); err != nil {
		t.Fatal(err)
	}
	podtest.WaitFor(t, wait, "the set's pods to go with it", func() bool { return len(env.Pods()) == 0 })
}

func TestOrdinal(t *testing.T) {
	for _, tc := range []struct {
		pod  string
		want int
		ok   bool
	}{
		{"db-0", 0, true}, {"db-12", 12, true}, {"db-", 0, false}, {"db-01", 0, false},
		{"db-x", 0, false}, {"dbx-1", 0, false}, {"db-1-2", 0, false}, {"db--1", 0, false},
	} {
		got, ok := Ordinal("db", tc.pod)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Ordinal(db, %s) = %d, %v; want %d, %v", tc.pod, got, ok, tc.want, tc.ok)
		}
	}
}
