package replicaset

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/member/controller/podutil/podtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const wait = 10 * time.Second

func newRS(name string, n int32) *meridianv1.ReplicaSet {
	return &meridianv1.ReplicaSet{
		ApiVersion: "apps/v1", Kind: "ReplicaSet",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: podtest.Namespace},
		Spec: &meridianv1.ReplicaSetSpec{
			Replicas: podtest.Ptr(n),
			Selector: podtest.Selector(name),
			Template: podtest.Template(name, "img:1"),
		},
	}
}

// start runs a ReplicaSet controller and an automatic fake kubelet.
func start(t *testing.T) (*podtest.Env, *podtest.Kubelet) {
	env := podtest.NewEnv(t)
	c := New(env.Store, env.Informers, env.Recorder, env.Log)
	env.Start(c.Run)
	return env, podtest.StartKubelet(env, podtest.KubeletOptions{})
}

// owned returns the active pods controlled by the ReplicaSet name.
func owned(env *podtest.Env, name string) []*meridianv1.Pod {
	var out []*meridianv1.Pod
	for _, p := range env.Pods() {
		if ref := controller.ControllerOf(p); ref != nil && ref.GetName() == name && podutil.IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

func rsStatus(env *podtest.Env, name string) *meridianv1.ReplicaSetStatus {
	o := env.Get(podtest.ReplicaSets, name)
	if o == nil {
		return nil
	}
	return o.(*meridianv1.ReplicaSet).GetStatus()
}

// waitReady waits until the ReplicaSet has n pods, all ready, and says so.
func waitReady(t *testing.T, env *podtest.Env, name string, n int32) {
	t.Helper()
	podtest.WaitFor(t, wait, fmt.Sprintf("%s to have %d ready pods", name, n), func() bool {
		st := rsStatus(env, name)
		return len(owned(env, name)) == int(n) && len(env.Pods()) == int(n) &&
			st.GetReplicas() == n && st.GetReadyReplicas() == n && st.GetAvailableReplicas() == n
	})
}

func scaleTo(env *podtest.Env, name string, n int32) {
	env.Update(podtest.ReplicaSets, name, func(o resource.Object) error {
		o.(*meridianv1.ReplicaSet).Spec.Replicas = podtest.Ptr(n)
		return nil
	})
}

func TestScaleUpAndDown(t *testing.T) {
	env, _ := start(t)
	// No ReplicaSet ever has more pods than its largest spec so far: the
	// expectations keep a stale cache from creating twice.
	var mu sync.Mutex
	maxSeen, limit := 0, 3
	w := podtest.WatchPods(env, func(_ storage.Event, live map[string]*meridianv1.Pod) {
		mu.Lock()
		defer mu.Unlock()
		if len(live) > limit {
			maxSeen = max(maxSeen, len(live))
		}
	})
	env.Apply(newRS("web", 3))
	waitReady(t, env, "web", 3)

	mu.Lock()
	limit = 10
	mu.Unlock()
	scaleTo(env, "web", 10)
	waitReady(t, env, "web", 10)
	if st := rsStatus(env, "web"); st.GetObservedGeneration() != env.Get(podtest.ReplicaSets, "web").GetMetadata().GetGeneration() {
		t.Errorf("observedGeneration = %d, want the generation", st.GetObservedGeneration())
	}

	scaleTo(env, "web", 2)
	waitReady(t, env, "web", 2)
	w.Sync()
	mu.Lock()
	defer mu.Unlock()
	if maxSeen > 0 {
		t.Errorf("saw %d pods at once, more than the spec allowed", maxSeen)
	}
}

func TestScaleDownDeletesLeastReadyFirst(t *testing.T) {
	env := podtest.NewEnv(t)
	c := New(env.Store, env.Informers, env.Recorder, env.Log)
	env.Start(c.Run)
	k := podtest.StartKubelet(env, podtest.KubeletOptions{Manual: true})
	env.Apply(newRS("web", 4))
	podtest.WaitFor(t, wait, "4 pending pods", func() bool { return len(k.Pending()) == 4 })
	ready := map[string]bool{k.ReadyNext(): true, k.ReadyNext(): true}
	// The controller chooses victims from its cache: scale down only once it
	// has seen the two pods ready (its status says so), else it may
	// rightly keep a pod whose readiness it has not observed yet.
	podtest.WaitFor(t, wait, "the controller to see 2 ready pods", func() bool { return rsStatus(env, "web").GetReadyReplicas() == 2 })
	scaleTo(env, "web", 2)
	podtest.WaitFor(t, wait, "2 pods", func() bool { return len(env.Pods()) == 2 })
	for _, p := range env.Pods() {
		if !ready[p.GetMetadata().GetName()] {
			t.Errorf("kept pod %s, which was not ready, over a ready one", p.GetMetadata().GetName())
		}
	}
}

func TestReplacesEndedAndDeletedPods(t *testing.T) {
	env, k := start(t)
	env.Apply(newRS("web", 3))
	waitReady(t, env, "web", 3)
	pods := env.Pods()
	failed, succeeded, deleted := pods[0].GetMetadata().GetName(), pods[1].GetMetadata().GetName(), pods[2].GetMetadata().GetName()

	k.Fail(failed, podutil.PodFailed)
	k.Fail(succeeded, podutil.PodSucceeded)
	env.DeletePod(deleted)
	podtest.WaitFor(t, wait, "the ended and deleted pods to be replaced", func() bool {
		for _, p := range env.Pods() {
			if n := p.GetMetadata().GetName(); n == failed || n == succeeded || n == deleted {
				return false
			}
		}
		return true
	})
	waitReady(t, env, "web", 3)
}

func TestAdoptsOrphansAndReleasesStrays(t *testing.T) {
	env, _ := start(t)
	// An orphan that matches, made before the ReplicaSet.
	orphan := podutil.NewPod(podtest.Template("web", "img:1"), newRS("web", 1), "orphan")
	orphan.Metadata.OwnerReferences = nil
	env.Apply(orphan)
	// A pod of another app is not adopted.
	other := podutil.NewPod(podtest.Template("other", "img:1"), newRS("web", 1), "other")
	other.Metadata.OwnerReferences = nil
	env.Apply(other)

	env.Apply(newRS("web", 2))
	podtest.WaitFor(t, wait, "the orphan adopted and one pod created", func() bool {
		return len(owned(env, "web")) == 2 && rsStatus(env, "web").GetReadyReplicas() == 2
	})
	rs := env.Get(podtest.ReplicaSets, "web")
	if !controller.IsControlledBy(env.Get(podtest.Pods, "orphan"), rs) {
		t.Fatalf("orphan not adopted")
	}
	if controller.ControllerOf(env.Get(podtest.Pods, "other")) != nil {
		t.Fatalf("a pod the selector does not match was adopted")
	}

	// Relabel the adopted pod: released, and replaced.
	env.Update(podtest.Pods, "orphan", func(o resource.Object) error {
		resource.Meta(o).Labels = map[string]string{"app": "stray"}
		return nil
	})
	podtest.WaitFor(t, wait, "the relabelled pod released and replaced", func() bool {
		p := env.Get(podtest.Pods, "orphan")
		return p != nil && controller.ControllerOf(p) == nil && len(owned(env, "web")) == 2
	})
}

func TestDeletedReplicaSetTakesItsPods(t *testing.T) {
	env, _ := start(t)
	env.Apply(newRS("web", 2))
	waitReady(t, env, "web", 2)
	if _, err := env.Store.Delete(env.Ctx(), podtest.ReplicaSets, podtest.Namespace, "web", ""); err != nil {
		t.Fatal(err)
	}
	podtest.WaitFor(t, wait, "the pods of the deleted ReplicaSet to go", func() bool { return len(env.Pods()) == 0 })
}

func TestCollectsPodsOfAnEarlierReplicaSet(t *testing.T) {
	env, _ := start(t)
	// A pod left behind by an earlier ReplicaSet "web" (uid "gone").
	left := podutil.NewPod(podtest.Template("web", "img:1"), newRS("web", 1), "left-behind")
	left.Metadata.OwnerReferences[0].Uid = "gone"
	env.Apply(left)
	env.Apply(newRS("web", 1))
	waitReady(t, env, "web", 1)
	if env.Get(podtest.Pods, "left-behind") != nil {
		t.Fatal("the pod of the earlier ReplicaSet was not collected")
	}
}

func TestAvailableAfterMinReadySeconds(t *testing.T) {
	env, _ := start(t)
	rs := newRS("web", 2)
	rs.Spec.MinReadySeconds = 1
	env.Apply(rs)
	podtest.WaitFor(t, wait, "2 ready pods", func() bool { return rsStatus(env, "web").GetReadyReplicas() == 2 })
	if st := rsStatus(env, "web"); st.GetAvailableReplicas() != 0 {
		t.Errorf("availableReplicas = %d right after readiness, want 0 (minReadySeconds 1)", st.GetAvailableReplicas())
	}
	// Nothing changes in the store after that: the controller must come
	// back on its own to count them.
	podtest.WaitFor(t, wait, "2 available pods", func() bool { return rsStatus(env, "web").GetAvailableReplicas() == 2 })
}

func TestInvalidSelectorCreatesNothing(t *testing.T) {
	env, _ := start(t)
	rs := newRS("web", 2)
	rs.Spec.Selector = podtest.Selector("nope") // does not match the template
	got := env.Apply(rs)
	podtest.WaitFor(t, wait, "observedGeneration", func() bool {
		return rsStatus(env, "web").GetObservedGeneration() == got.GetMetadata().GetGeneration()
	})
	if n := len(env.Pods()); n != 0 {
		t.Fatalf("%d pods created for a selector that does not match the template", n)
	}
}

// TestStatusCountsThePodsItCreated: the status a scale-up writes already
// counts the pods the sync created, instead of a status of the old count
// first and the new one a sync later (one status write less per scale-up,
// for the ReplicaSet and for the Deployment that follows it). No kubelet
// runs, so nothing but the creations changes the status.
func TestStatusCountsThePodsItCreated(t *testing.T) {
	env := podtest.NewEnv(t)
	c := New(env.Store, env.Informers, env.Recorder, env.Log)
	env.Start(c.Run)
	_, from, err := env.Store.List(env.Ctx(), resource.MustLookup("ReplicaSet"), podtest.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	rsw := env.Store.Watch(env.Ctx(), resource.MustLookup("ReplicaSet"), podtest.Namespace, nil, from)
	env.Apply(newRS("web", 3))
	podtest.WaitFor(t, wait, "web's status to count 3 pods", func() bool {
		return rsStatus(env, "web").GetReplicas() == 3
	})
	last := env.Get(podtest.ReplicaSets, "web").GetMetadata().GetResourceVersion()
	for ev := range rsw {
		st := ev.Object.(*meridianv1.ReplicaSet).GetStatus()
		if st.GetObservedGeneration() > 0 && st.GetReplicas() != 3 {
			t.Errorf("a status of %d replicas was written after the sync that created 3: %v", st.GetReplicas(), st)
		}
		if ev.Object.GetMetadata().GetResourceVersion() == last {
			break
		}
	}
}
