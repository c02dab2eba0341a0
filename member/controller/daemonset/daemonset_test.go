package daemonset

import (
	"fmt"
	"slices"
	"sort"
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

const wait = 15 * time.Second

var daemonSets = resource.MustLookup("DaemonSet")

func newDS(name, image string) *meridianv1.DaemonSet {
	return &meridianv1.DaemonSet{
		ApiVersion: "apps/v1", Kind: "DaemonSet",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: podtest.Namespace},
		Spec: &meridianv1.DaemonSetSpec{
			Selector: podtest.Selector(name),
			Template: podtest.Template(name, image),
		},
	}
}

func node(name string, labels map[string]string, taints ...*meridianv1.Taint) *meridianv1.Node {
	return &meridianv1.Node{
		ApiVersion: "v1", Kind: "Node",
		Metadata: &meridianv1.ObjectMeta{Name: name, Labels: labels},
		Spec:     &meridianv1.NodeSpec{Taints: taints},
	}
}

// start runs the controller and a fake kubelet for pods bound to nodes;
// daemon pods are deleted gracefully and take a moment to go.
func start(t *testing.T, delay time.Duration) (*podtest.Env, *podtest.Kubelet) {
	env := podtest.NewEnv(t)
	c := New(env.Store, env.Informers, env.Recorder, env.Log)
	env.Start(c.Run)
	return env, podtest.StartKubelet(env, podtest.KubeletOptions{Scheduled: true, Delay: delay, TerminationDelay: 20 * time.Millisecond})
}

func dsStatus(env *podtest.Env, name string) *meridianv1.DaemonSetStatus {
	o := env.Get(daemonSets, name)
	if o == nil {
		return nil
	}
	return o.(*meridianv1.DaemonSet).GetStatus()
}

// placement returns the nodes of the live (not ended, not terminating)
// pods, sorted; a node twice means two pods there.
func placement(env *podtest.Env) []string { return nodesOf(env.Pods()) }

// nodesOf is placement over pods already listed.
func nodesOf(pods []*meridianv1.Pod) []string {
	var out []string
	for _, p := range pods {
		if podutil.IsPodActive(p) {
			out = append(out, p.GetSpec().GetNodeName())
		}
	}
	sort.Strings(out)
	return out
}

// waitPlaced waits until exactly the nodes given run one ready pod each,
// and no pod is left elsewhere or terminating.
func waitPlaced(t *testing.T, env *podtest.Env, nodes ...string) {
	t.Helper()
	podtest.WaitFor(t, wait, fmt.Sprintf("one ready pod on each of %v", nodes), func() bool {
		pods := env.Pods()
		for _, p := range pods {
			if !podutil.IsPodActive(p) || !podutil.IsPodReady(p) {
				return false
			}
		}
		return slices.Equal(nodesOf(pods), nodes) // the same list: a pod made meanwhile must not pass unready
	})
}

func TestOnePodPerNode(t *testing.T) {
	env, _ := start(t, 0)
	for _, n := range []string{"n1", "n2", "n3"} {
		env.Apply(node(n, nil))
	}
	env.Apply(newDS("agent", "img:1"))
	waitPlaced(t, env, "n1", "n2", "n3")
	podtest.WaitFor(t, wait, "the status counts", func() bool {
		st := dsStatus(env, "agent")
		return st.GetDesiredNumberScheduled() == 3 && st.GetCurrentNumberScheduled() == 3 && st.GetNumberReady() == 3 &&
			st.GetNumberAvailable() == 3 && st.GetUpdatedNumberScheduled() == 3 && st.GetNumberMisscheduled() == 0
	})
	for _, p := range env.Pods() {
		if !controller.IsControlledBy(p, env.Get(daemonSets, "agent")) || p.GetMetadata().GetLabels()[podutil.ControllerRevisionHashLabel] == "" {
			t.Errorf("pod %s: owner %v labels %v", p.GetMetadata().GetName(), controller.ControllerOf(p), p.GetMetadata().GetLabels())
		}
	}
}

func TestNodeAddedAndRemoved(t *testing.T) {
	env, _ := start(t, 0)
	env.Apply(node("n1", nil))
	env.Apply(newDS("agent", "img:1"))
	waitPlaced(t, env, "n1")
	env.Apply(node("n2", nil))
	waitPlaced(t, env, "n1", "n2")
	if _, err := env.Store.Delete(env.Ctx(), podtest.Nodes, "", "n1", ""); err != nil {
		t.Fatal(err)
	}
	waitPlaced(t, env, "n2")
}

func TestTaintsAndCordons(t *testing.T) {
	env, _ := start(t, 0)
	env.Apply(node("plain", nil))
	env.Apply(node("tainted", nil, &meridianv1.Taint{Key: "dedicated", Value: "db", Effect: EffectNoSchedule}))
	cordoned := node("cordoned", nil)
	cordoned.Spec.Unschedulable = true
	env.Apply(cordoned)
	env.Apply(newDS("agent", "img:1"))
	waitPlaced(t, env, "plain")

	// A toleration lets it onto the tainted node (not the cordoned one).
	env.Update(daemonSets, "agent", func(o resource.Object) error {
		o.(*meridianv1.DaemonSet).Spec.Template.Spec.Tolerations = []*meridianv1.Toleration{{Key: "dedicated", Operator: "Equal", Value: "db", Effect: EffectNoSchedule}}
		return nil
	})
	waitPlaced(t, env, "plain", "tainted")
	// The template changed: let the rolling update replace plain's pod too.
	podtest.WaitFor(t, wait, "both pods on the new template", func() bool {
		st := dsStatus(env, "agent")
		return st.GetUpdatedNumberScheduled() == 2 && st.GetNumberAvailable() == 2 && len(env.Pods()) == 2
	})

	// NoSchedule on a node keeps new pods away but evicts nobody.
	env.Update(podtest.Nodes, "plain", func(o resource.Object) error {
		o.(*meridianv1.Node).Spec.Taints = []*meridianv1.Taint{{Key: "maintenance", Effect: EffectNoSchedule}}
		return nil
	})
	podtest.WaitFor(t, wait, "the pod on the NoSchedule node counted as misscheduled", func() bool {
		st := dsStatus(env, "agent")
		return st.GetDesiredNumberScheduled() == 1 && st.GetNumberMisscheduled() == 1
	})
	if got := placement(env); !slices.Equal(got, []string{"plain", "tainted"}) {
		t.Fatalf("pods on %v after a NoSchedule taint, want them to stay on plain and tainted", got)
	}

	// NoExecute evicts.
	env.Update(podtest.Nodes, "plain", func(o resource.Object) error {
		o.(*meridianv1.Node).Spec.Taints = []*meridianv1.Taint{{Key: "maintenance", Effect: EffectNoExecute}}
		return nil
	})
	waitPlaced(t, env, "tainted")

	// Uncordon: a pod comes.
	env.Update(podtest.Nodes, "cordoned", func(o resource.Object) error {
		o.(*meridianv1.Node).Spec.Unschedulable = false
		return nil
	})
	waitPlaced(t, env, "cordoned", "tainted")
}

func TestNodeSelector(t *testing.T) {
	env, _ := start(t, 0)
	env.Apply(node("ssd1", map[string]string{"disk": "ssd"}))
	env.Apply(node("hdd1", map[string]string{"disk": "hdd"}))
	ds := newDS("agent", "img:1")
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	env.Apply(ds)
	waitPlaced(t, env, "ssd1")

	env.Update(podtest.Nodes, "hdd1", func(o resource.Object) error {
		resource.Meta(o).Labels = map[string]string{"disk": "ssd"}
		return nil
	})
	env.Update(podtest.Nodes, "ssd1", func(o resource.Object) error {
		resource.Meta(o).Labels = map[string]string{"disk": "hdd"}
		return nil
	})
	waitPlaced(t, env, "hdd1")
}

func TestReplacesEndedPod(t *testing.T) {
	env, k := start(t, 0)
	env.Apply(node("n1", nil))
	env.Apply(newDS("agent", "img:1"))
	waitPlaced(t, env, "n1")
	old := env.Pods()[0].GetMetadata().GetName()
	k.Fail(old, podutil.PodFailed)
	podtest.WaitFor(t, wait, "a new pod on n1", func() bool {
		pods := env.Pods()
		return len(pods) == 1 && pods[0].GetMetadata().GetName() != old && podutil.IsPodReady(pods[0])
	})
}

// TestRollingUpdate checks every state of a rollout over 5 nodes: never
// more than maxUnavailable nodes without an available pod.
func TestRollingUpdate(t *testing.T) {
	for _, maxUnavailable := range []int{1, 2} {
		t.Run(fmt.Sprintf("maxUnavailable=%d", maxUnavailable), func(t *testing.T) {
			env, _ := start(t, 20*time.Millisecond)
			nodes := []string{"n1", "n2", "n3", "n4", "n5"}
			for _, n := range nodes {
				env.Apply(node(n, nil))
			}
			ds := newDS("agent", "img:1")
			if maxUnavailable != 1 {
				ds.Spec.UpdateStrategy = &meridianv1.DaemonSetUpdateStrategy{Type: RollingUpdate,
					RollingUpdate: &meridianv1.RollingUpdateDaemonSet{MaxUnavailable: podutil.Int(int32(maxUnavailable))}}
			}
			env.Apply(ds)
			waitPlaced(t, env, nodes...)

			var (
				mu         sync.Mutex
				worst      int
				violations []string
			)
			w := podtest.WatchPods(env, func(ev storage.Event, live map[string]*meridianv1.Pod) {
				up := map[string]bool{}
				for _, p := range live {
					if podutil.IsPodActive(p) && podutil.IsPodReady(p) {
						up[p.GetSpec().GetNodeName()] = true
					}
				}
				mu.Lock()
				defer mu.Unlock()
				down := len(nodes) - len(up)
				worst = max(worst, down)
				if down > maxUnavailable {
					violations = append(violations, fmt.Sprintf("%d nodes without an available pod after %v %s", down, ev.Type, ev.Object.GetMetadata().GetName()))
				}
			})
			env.Update(daemonSets, "agent", func(o resource.Object) error {
				o.(*meridianv1.DaemonSet).Spec.Template.Spec.Containers[0].Image = "img:2"
				return nil
			})
			podtest.WaitFor(t, wait, "every node to run img:2", func() bool {
				pods := env.Pods()
				for _, p := range pods {
					if podtest.Image(p) != "img:2" || !podutil.IsPodReady(p) {
						return false
					}
				}
				return slices.Equal(placement(env), nodes) && dsStatus(env, "agent").GetUpdatedNumberScheduled() == 5
			})
			w.Sync()
			mu.Lock()
			defer mu.Unlock()
			for _, v := range violations {
				t.Error(v)
			}
			t.Logf("at worst %d nodes without an available pod", worst)
		})
	}
}

func TestPlace(t *testing.T) {
	tmpl := func(sel map[string]string, tols ...*meridianv1.Toleration) *meridianv1.PodTemplateSpec {
		return &meridianv1.PodTemplateSpec{Spec: &meridianv1.PodSpec{NodeSelector: sel, Tolerations: tols}}
	}
	taint := func(key, value, effect string) *meridianv1.Taint {
		return &meridianv1.Taint{Key: key, Value: value, Effect: effect}
	}
	cordoned := node("n", nil)
	cordoned.Spec.Unschedulable = true
	for _, tc := range []struct {
		name      string
		tmpl      *meridianv1.PodTemplateSpec
		node      *meridianv1.Node
		run, keep bool
	}{
		{"plain", tmpl(nil), node("n", nil), true, true},
		{"selector matches", tmpl(map[string]string{"a": "1"}), node("n", map[string]string{"a": "1", "b": "2"}), true, true},
		{"selector does not match", tmpl(map[string]string{"a": "1"}), node("n", map[string]string{"a": "2"}), false, false},
		{"NoSchedule", tmpl(nil), node("n", nil, taint("k", "v", EffectNoSchedule)), false, true},
		{"NoExecute", tmpl(nil), node("n", nil, taint("k", "v", EffectNoExecute)), false, false},
		{"PreferNoSchedule is ignored", tmpl(nil), node("n", nil, taint("k", "v", EffectPreferNoSchedule)), true, true},
		{"tolerated Equal", tmpl(nil, &meridianv1.Toleration{Key: "k", Value: "v"}), node("n", nil, taint("k", "v", EffectNoExecute)), true, true},
		{"wrong value", tmpl(nil, &meridianv1.Toleration{Key: "k", Value: "w"}), node("n", nil, taint("k", "v", EffectNoExecute)), false, false},
		{"Exists any value", tmpl(nil, &meridianv1.Toleration{Key: "k", Operator: "Exists", Effect: EffectNoSchedule}), node("n", nil, taint("k", "v", EffectNoSchedule)), true, true},
		{"wrong effect", tmpl(nil, &meridianv1.Toleration{Key: "k", Operator: "Exists", Effect: EffectNoSchedule}), node("n", nil, taint("k", "v", EffectNoExecute)), false, false},
		{"Exists everything", tmpl(nil, &meridianv1.Toleration{Operator: "Exists"}), node("n", nil, taint("k", "v", EffectNoExecute)), true, true},
		{"default not-ready toleration", tmpl(nil), node("n", nil, taint(TaintNodeNotReady, "", EffectNoExecute)), true, true},
		{"cordoned", tmpl(nil), cordoned, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Place(tc.tmpl, tc.node)
			if p.Run != tc.run || p.Keep != tc.keep {
				t.Errorf("Place = %+v, want run %v keep %v", p, tc.run, tc.keep)
			}
		})
	}
}
