package deployment

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/member/controller/podutil/podtest"
	"github.com/meridian-fed/meridian/member/controller/replicaset"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const wait = 15 * time.Second

func newDeployment(name string, n int32, image string) *meridianv1.Deployment {
	return &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: podtest.Namespace},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: podtest.Ptr(n),
			Selector: podtest.Selector(name),
			Template: podtest.Template(name, image),
		},
	}
}

// start runs the Deployment and ReplicaSet controllers and a fake kubelet.
func start(t *testing.T, opts podtest.KubeletOptions) (*podtest.Env, *podtest.Kubelet) {
	env := podtest.NewEnv(t)
	d := New(env.Store, env.Informers, env.Recorder, env.Log)
	rs := replicaset.New(env.Store, env.Informers, env.Recorder, env.Log)
	env.Start(d.Run, rs.Run)
	return env, podtest.StartKubelet(env, opts)
}

func getDeployment(env *podtest.Env, name string) *meridianv1.Deployment {
	o := env.Get(podtest.Deployments, name)
	if o == nil {
		return nil
	}
	return o.(*meridianv1.Deployment)
}

func replicaSets(env *podtest.Env) []*meridianv1.ReplicaSet {
	var out []*meridianv1.ReplicaSet
	for _, o := range env.List(podtest.ReplicaSets) {
		out = append(out, o.(*meridianv1.ReplicaSet))
	}
	return out
}

// rolledOut reports whether the Deployment says its rollout is complete
// and its pods agree: n pods, all ready, all running image.
func rolledOut(env *podtest.Env, name string, n int32, image string) bool {
	d := getDeployment(env, name)
	st := d.GetStatus()
	if d == nil || st.GetObservedGeneration() != d.GetMetadata().GetGeneration() || st.GetReplicas() != n ||
		st.GetUpdatedReplicas() != n || st.GetAvailableReplicas() != n || st.GetReadyReplicas() != n {
		return false
	}
	c := podutil.FindCondition(st.GetConditions(), ConditionProgressing)
	if c.GetReason() != ReasonNewReplicaSetAvailable {
		return false
	}
	pods := env.Pods()
	if len(pods) != int(n) {
		return false
	}
	for _, p := range pods {
		if podtest.Image(p) != image || !podutil.IsPodReady(p) {
			return false
		}
	}
	return true
}

func waitRolledOut(t *testing.T, env *podtest.Env, name string, n int32, image string) {
	t.Helper()
	podtest.WaitFor(t, wait, fmt.Sprintf("%s rolled out to %d × %s", name, n, image), func() bool { return rolledOut(env, name, n, image) })
}

func setImage(env *podtest.Env, name, image string) {
	env.Update(podtest.Deployments, name, func(o resource.Object) error {
		o.(*meridianv1.Deployment).Spec.Template.Spec.Containers[0].Image = image
		return nil
	})
}

func TestCreateBecomesReady(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	env.Apply(newDeployment("web", 3, "img:1"))
	waitRolledOut(t, env, "web", 3, "img:1")

	rss := replicaSets(env)
	if len(rss) != 1 {
		t.Fatalf("%d replica sets, want 1", len(rss))
	}
	rs := rss[0]
	hash := rs.GetMetadata().GetLabels()[podutil.PodTemplateHashLabel]
	if hash == "" || rs.GetMetadata().GetName() != "web-"+hash || rs.GetSpec().GetSelector().GetMatchLabels()[podutil.PodTemplateHashLabel] != hash {
		t.Errorf("replica set %s labels %v: want web-<pod-template-hash>, labelled and selected by the hash", rs.GetMetadata().GetName(), rs.GetMetadata().GetLabels())
	}
	if rev := rs.GetMetadata().GetAnnotations()[RevisionAnnotation]; rev != "1" {
		t.Errorf("replica set revision %q, want 1", rev)
	}
	d := getDeployment(env, "web")
	if rev := d.GetMetadata().GetAnnotations()[RevisionAnnotation]; rev != "1" {
		t.Errorf("deployment revision %q, want 1", rev)
	}
	if c := podutil.FindCondition(d.GetStatus().GetConditions(), ConditionAvailable); c.GetStatus() != podutil.ConditionTrue {
		t.Errorf("Available condition %v, want True", c)
	}
	for _, p := range env.Pods() {
		if p.GetMetadata().GetLabels()[podutil.PodTemplateHashLabel] != hash || !strings.HasPrefix(p.GetMetadata().GetName(), "web-"+hash+"-") {
			t.Errorf("pod %s labels %v: want the replica set's name prefix and hash", p.GetMetadata().GetName(), p.GetMetadata().GetLabels())
		}
	}
}

// TestRollingUpdateInvariants rolls a Deployment while the fake kubelet
// makes one pod ready at a time, and checks every state the store goes
// through: never more than replicas+maxSurge pods, never fewer than
// replicas-maxUnavailable ready ones.
func TestRollingUpdateInvariants(t *testing.T) {
	for _, tc := range []struct {
		name            string
		replicas        int32
		surge, unavail  *meridianv1.IntOrString
		wantSurge, want int // resolved maxSurge, maxUnavailable
		graceful        bool
	}{
		{"defaults 25%", 4, nil, nil, 1, 1, false},
		{"defaults round surge up, unavailable down", 6, nil, nil, 2, 1, false},
		{"surge only", 3, podutil.Int(1), podutil.Int(0), 1, 0, false},
		{"unavailable only", 3, podutil.Int(0), podutil.Int(1), 0, 1, false},
		{"percentages", 5, podutil.Percent(40), podutil.Percent(40), 2, 2, false},
		// Pods on a node are deleted gracefully: terminating pods no longer
		// count, as in Kubernetes.
		{"graceful deletion", 4, nil, nil, 1, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := podtest.KubeletOptions{Manual: true}
			if tc.graceful {
				opts.Node, opts.TerminationDelay = "node-1", 20*time.Millisecond
			}
			env, k := start(t, opts)
			d := newDeployment("web", tc.replicas, "img:1")
			d.Spec.Strategy = &meridianv1.DeploymentStrategy{Type: RollingUpdate, RollingUpdate: &meridianv1.RollingUpdateDeployment{MaxSurge: tc.surge, MaxUnavailable: tc.unavail}}
			env.Apply(d)
			readyOneByOne(t, env, k, func() bool { return rolledOut(env, "web", tc.replicas, "img:1") })

			var (
				mu         sync.Mutex
				violations []string
				states     int
				maxPods    int
				minReady   = int(tc.replicas)
			)
			w := podtest.WatchPods(env, func(ev storage.Event, live map[string]*meridianv1.Pod) {
				active, ready := 0, 0
				for _, p := range live {
					if podutil.IsPodActive(p) {
						active++
						if podutil.IsPodReady(p) {
							ready++
						}
					}
				}
				mu.Lock()
				defer mu.Unlock()
				states++
				maxPods, minReady = max(maxPods, active), min(minReady, ready)
				if active > int(tc.replicas)+tc.wantSurge {
					violations = append(violations, fmt.Sprintf("%d pods > %d+%d after %v %s", active, tc.replicas, tc.wantSurge, ev.Type, ev.Object.GetMetadata().GetName()))
				}
				if ready < int(tc.replicas)-tc.want {
					violations = append(violations, fmt.Sprintf("%d ready < %d-%d after %v %s", ready, tc.replicas, tc.want, ev.Type, ev.Object.GetMetadata().GetName()))
				}
			})
			setImage(env, "web", "img:2")
			readyOneByOne(t, env, k, func() bool { return rolledOut(env, "web", tc.replicas, "img:2") })
			w.Sync()

			mu.Lock()
			defer mu.Unlock()
			for _, v := range violations {
				t.Error(v)
			}
			t.Logf("%d states; at most %d pods, at least %d ready", states, maxPods, minReady)
		})
	}
}

// readyOneByOne makes pending pods ready one at a time until done.
func readyOneByOne(t *testing.T, env *podtest.Env, k *podtest.Kubelet, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("rollout did not finish; pods: %s; %s", podtest.Describe(env.Pods()), describeRollout(env))
		}
		podtest.Poll(t, time.Until(deadline), func() bool { return len(k.Pending()) > 0 || done() })
		k.ReadyNext()
	}
}

func TestRecreate(t *testing.T) {
	// Pods bound to a node take a while to terminate: the new ones must
	// wait until the old ones are gone, not only terminating.
	env, _ := start(t, podtest.KubeletOptions{Delay: 20 * time.Millisecond, Node: "node-1", TerminationDelay: 50 * time.Millisecond})
	d := newDeployment("web", 3, "img:1")
	d.Spec.Strategy = &meridianv1.DeploymentStrategy{Type: Recreate}
	env.Apply(d)
	waitRolledOut(t, env, "web", 3, "img:1")

	var (
		mu    sync.Mutex
		mixed []string
	)
	w := podtest.WatchPods(env, func(_ storage.Event, live map[string]*meridianv1.Pod) {
		images := map[string]bool{}
		for _, p := range live {
			if !podutil.IsPodTerminal(p) {
				images[podtest.Image(p)] = true
			}
		}
		if len(images) > 1 {
			mu.Lock()
			mixed = append(mixed, podtest.Describe(mapValues(live)))
			mu.Unlock()
		}
	})
	setImage(env, "web", "img:2")
	waitRolledOut(t, env, "web", 3, "img:2")
	w.Sync()
	mu.Lock()
	defer mu.Unlock()
	for _, m := range mixed {
		t.Errorf("old and new pods ran together: %s", m)
	}
}

func mapValues(m map[string]*meridianv1.Pod) []*meridianv1.Pod {
	out := make([]*meridianv1.Pod, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetMetadata().GetName() < out[j].GetMetadata().GetName() })
	return out
}

func TestRollback(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	env.Apply(newDeployment("web", 2, "img:1"))
	waitRolledOut(t, env, "web", 2, "img:1")
	v1 := replicaSets(env)[0].GetMetadata().GetName()
	setImage(env, "web", "img:2")
	waitRolledOut(t, env, "web", 2, "img:2")

	if _, err := Rollback(env.Ctx(), env.Store, podtest.Namespace, "web", 99); !errors.Is(err, ErrRevisionNotFound) {
		t.Fatalf("Rollback to 99: %v, want ErrRevisionNotFound", err)
	}
	if _, err := Rollback(env.Ctx(), env.Store, podtest.Namespace, "web", 2); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("Rollback to the current revision: %v, want ErrUnchanged", err)
	}
	if _, err := Rollback(env.Ctx(), env.Store, podtest.Namespace, "nope", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Rollback of a missing deployment: %v, want ErrNotFound", err)
	}

	// Undo: back to revision 1's template, which becomes revision 3 and
	// runs in revision 1's ReplicaSet again.
	got, err := Rollback(env.Ctx(), env.Store, podtest.Namespace, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if img := got.(*meridianv1.Deployment).GetSpec().GetTemplate().GetSpec().GetContainers()[0].GetImage(); img != "img:1" {
		t.Fatalf("rolled back to %s, want img:1", img)
	}
	waitRolledOut(t, env, "web", 2, "img:1")
	rs := env.Get(podtest.ReplicaSets, v1)
	if rs == nil {
		t.Fatalf("replica set %s of revision 1 is gone; rollback should reuse it", v1)
	}
	if ann := rs.GetMetadata().GetAnnotations(); ann[RevisionAnnotation] != "3" || ann[RevisionHistoryAnnotation] != "1" {
		t.Errorf("reused replica set annotations %v, want revision 3 with history 1", ann)
	}
	if n := len(replicaSets(env)); n != 2 {
		t.Errorf("%d replica sets, want 2", n)
	}

	// And to an explicit revision.
	if _, err := Rollback(env.Ctx(), env.Store, podtest.Namespace, "web", 2); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, env, "web", 2, "img:2")
	hist, err := History(env.Ctx(), env.Store, podtest.Namespace, "web")
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, h := range hist {
		revs = append(revs, fmt.Sprintf("%d:%s", h.Number, h.Template.GetSpec().GetContainers()[0].GetImage()))
	}
	if got := strings.Join(revs, " "); got != "3:img:1 4:img:2" {
		t.Errorf("history %q, want \"3:img:1 4:img:2\"", got)
	}
}

func TestRevisionHistoryLimit(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	d := newDeployment("web", 1, "img:1")
	d.Spec.RevisionHistoryLimit = podtest.Ptr(int32(2))
	env.Apply(d)
	waitRolledOut(t, env, "web", 1, "img:1")
	for v := 2; v <= 5; v++ {
		setImage(env, "web", fmt.Sprintf("img:%d", v))
		waitRolledOut(t, env, "web", 1, fmt.Sprintf("img:%d", v))
	}
	podtest.WaitFor(t, wait, "old replica sets pruned to 2", func() bool { return len(replicaSets(env)) == 3 })
	var revs []string
	for _, rs := range replicaSets(env) {
		revs = append(revs, rs.GetMetadata().GetAnnotations()[RevisionAnnotation])
	}
	sort.Strings(revs)
	if got := strings.Join(revs, ","); got != "3,4,5" {
		t.Errorf("revisions kept %s, want 3,4,5", got)
	}
}

func TestPaused(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	env.Apply(newDeployment("web", 2, "img:1"))
	waitRolledOut(t, env, "web", 2, "img:1")

	got := env.Update(podtest.Deployments, "web", func(o resource.Object) error {
		d := o.(*meridianv1.Deployment)
		d.Spec.Paused = true
		d.Spec.Template.Spec.Containers[0].Image = "img:2"
		d.Spec.Replicas = podtest.Ptr(int32(4))
		return nil
	})
	// Paused: the new size applies, the new template does not.
	podtest.WaitFor(t, wait, "the paused deployment scaled to 4 × img:1", func() bool {
		d := getDeployment(env, "web")
		c := podutil.FindCondition(d.GetStatus().GetConditions(), ConditionProgressing)
		if d.GetStatus().GetObservedGeneration() != got.GetMetadata().GetGeneration() || c.GetReason() != ReasonDeploymentPaused {
			return false
		}
		pods := env.Pods()
		ready := 0
		for _, p := range pods {
			if podtest.Image(p) != "img:1" {
				t.Fatalf("pod %s runs %s while paused", p.GetMetadata().GetName(), podtest.Image(p))
			}
			if podutil.IsPodReady(p) {
				ready++
			}
		}
		return ready == 4 && len(pods) == 4
	})
	if n := len(replicaSets(env)); n != 1 {
		t.Fatalf("%d replica sets while paused, want 1", n)
	}

	env.Update(podtest.Deployments, "web", func(o resource.Object) error {
		o.(*meridianv1.Deployment).Spec.Paused = false
		return nil
	})
	waitRolledOut(t, env, "web", 4, "img:2")
}

func TestScaleEventsAndDeletion(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	env.Apply(newDeployment("web", 2, "img:1"))
	waitRolledOut(t, env, "web", 2, "img:1")
	setImage(env, "web", "img:2")
	waitRolledOut(t, env, "web", 2, "img:2")

	var scaling []string
	for _, o := range env.List(resource.MustLookup("Event")) {
		ev := o.(*meridianv1.Event)
		if ev.GetReason() == ReasonScalingReplicaSet && ev.GetInvolvedObject().GetName() == "web" {
			scaling = append(scaling, ev.GetMessage())
		}
	}
	if len(scaling) < 3 {
		t.Errorf("ScalingReplicaSet events %q, want the create, the scale-ups and the scale-downs", scaling)
	}

	if _, err := env.Store.Delete(env.Ctx(), podtest.Deployments, podtest.Namespace, "web", ""); err != nil {
		t.Fatal(err)
	}
	podtest.WaitFor(t, wait, "the deployment's replica sets and pods to go", func() bool {
		return len(replicaSets(env)) == 0 && len(env.Pods()) == 0
	})
}

func TestAdoptsOrphanReplicaSet(t *testing.T) {
	env, _ := start(t, podtest.KubeletOptions{})
	d := newDeployment("web", 2, "img:1")
	hash, err := podutil.TemplateHash(d.GetSpec().GetTemplate(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The ReplicaSet a Deployment of that template would make, orphaned
	// (its Deployment deleted with --cascade=orphan, say).
	rs := newReplicaSet(d, hash, 1, 2)
	rs.Metadata.OwnerReferences = nil
	env.Apply(rs)
	env.Apply(d)
	waitRolledOut(t, env, "web", 2, "img:1")
	rss := replicaSets(env)
	if len(rss) != 1 || !controller.IsControlledBy(rss[0], env.Get(podtest.Deployments, "web")) {
		t.Fatalf("replica sets %d; want the orphan adopted and no other made", len(rss))
	}
}

// describeRollout renders the Deployments and ReplicaSets for failure messages.
func describeRollout(env *podtest.Env) string {
	var b strings.Builder
	for _, o := range env.List(podtest.Deployments) {
		d := o.(*meridianv1.Deployment)
		fmt.Fprintf(&b, "deployment %s gen %d status %v; ", d.GetMetadata().GetName(), d.GetMetadata().GetGeneration(), d.GetStatus())
	}
	for _, rs := range replicaSets(env) {
		fmt.Fprintf(&b, "rs %s rev %s spec %d status %v; ", rs.GetMetadata().GetName(), rs.GetMetadata().GetAnnotations()[RevisionAnnotation], replicas(rs), rs.GetStatus())
	}
	return b.String()
}
