package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// podInfo is NewPodInfo for a test pod, with a uid.
func podInfo(t testing.TB, p *meridianv1.Pod, uid string) *PodInfo {
	t.Helper()
	resource.Meta(p).Uid = uid
	pi, err := NewPodInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	return pi
}

// cacheOf is a cache holding nodes.
func cacheOf(t testing.TB, nodes ...*meridianv1.Node) *Cache {
	t.Helper()
	c := NewCache()
	for _, n := range nodes {
		if err := c.SetNode(n); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func nodeInfo(t *testing.T, n *meridianv1.Node) *NodeInfo {
	t.Helper()
	ni := newNodeInfo(n.GetMetadata().GetName())
	if err := ni.setNode(n); err != nil {
		t.Fatal(err)
	}
	return ni
}

func TestTolerations(t *testing.T) {
	taint := &meridianv1.Taint{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}
	tests := []struct {
		name string
		tol  *meridianv1.Toleration
		want bool
	}{
		{"equal", &meridianv1.Toleration{Key: "dedicated", Operator: "Equal", Value: "gpu", Effect: "NoSchedule"}, true},
		{"default operator is Equal", &meridianv1.Toleration{Key: "dedicated", Value: "gpu"}, true},
		{"other value", &meridianv1.Toleration{Key: "dedicated", Value: "tpu"}, false},
		{"exists", &meridianv1.Toleration{Key: "dedicated", Operator: "Exists"}, true},
		{"exists, other effect", &meridianv1.Toleration{Key: "dedicated", Operator: "Exists", Effect: "NoExecute"}, false},
		{"empty key exists tolerates all", &meridianv1.Toleration{Operator: "Exists"}, true},
		{"empty key equal tolerates nothing", &meridianv1.Toleration{Value: "gpu"}, false},
		{"other key", &meridianv1.Toleration{Key: "zone", Operator: "Exists"}, false},
	}
	for _, tt := range tests {
		if got := tolerated([]*meridianv1.Toleration{tt.tol}, taint); got != tt.want {
			t.Errorf("%s: tolerated = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFilters(t *testing.T) {
	gpu := &meridianv1.Taint{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}
	withGPU := func(n *meridianv1.Node) *meridianv1.Node {
		n.Status.Allocatable["example.com/gpu"] = "2"
		return n
	}
	cordoned := node("c", "4", "8Gi", nil)
	cordoned.Spec.Unschedulable = true
	full := node("full", "4", "8Gi", nil)
	full.Status.Allocatable[ResourcePods] = "1"

	tests := []struct {
		name   string
		plugin FilterPlugin
		pod    *meridianv1.Pod
		node   *meridianv1.Node
		used   *meridianv1.Pod // a pod already on the node
		code   Code
		reason string
	}{
		{"fits", NodeResourcesFit{}, pod("p", "1", "1Gi", ""), node("n", "2", "2Gi", nil), nil, Success, ""},
		{"fits exactly", NodeResourcesFit{}, pod("p", "1", "1Gi", ""), node("n", "2", "2Gi", nil), pod("q", "1", "1Gi", ""), Success, ""},
		{"cpu", NodeResourcesFit{}, pod("p", "1500m", "", ""), node("n", "2", "2Gi", nil), pod("q", "1", "", ""), Unschedulable, "Insufficient cpu"},
		{"memory", NodeResourcesFit{}, pod("p", "", "2Gi", ""), node("n", "2", "2Gi", nil), pod("q", "", "1Mi", ""), Unschedulable, "Insufficient memory"},
		{"named resource", NodeResourcesFit{}, gpuPod("3"), withGPU(node("n", "2", "2Gi", nil)), nil, Unschedulable, "Insufficient example.com/gpu"},
		{"named resource fits", NodeResourcesFit{}, gpuPod("2"), withGPU(node("n", "2", "2Gi", nil)), nil, Success, ""},
		{"named resource absent", NodeResourcesFit{}, gpuPod("1"), node("n", "2", "2Gi", nil), nil, Unschedulable, "Insufficient example.com/gpu"},
		{"no requests always fit", NodeResourcesFit{}, pod("p", "", "", ""), node("n", "", "", nil), nil, Success, ""},
		{"pod count", NodeResourcesFit{}, pod("p", "", "", ""), full, pod("q", "", "", ""), Unschedulable, ReasonTooManyPods},
		{"selector match", NodeSelector{}, selectorPod(map[string]string{"disk": "ssd"}), node("n", "1", "1Gi", map[string]string{"disk": "ssd", "x": "y"}), nil, Success, ""},
		{"selector mismatch", NodeSelector{}, selectorPod(map[string]string{"disk": "ssd"}), node("n", "1", "1Gi", map[string]string{"disk": "hdd"}), nil, UnschedulableAndUnresolvable, ReasonNodeSelector},
		{"selector missing label", NodeSelector{}, selectorPod(map[string]string{"disk": "ssd"}), node("n", "1", "1Gi", nil), nil, UnschedulableAndUnresolvable, ReasonNodeSelector},
		{"taint", TaintToleration{}, pod("p", "", "", ""), node("n", "1", "1Gi", nil, gpu), nil, UnschedulableAndUnresolvable, "node(s) had untolerated taint {dedicated: gpu}"},
		{"prefer-no-schedule is no bar", TaintToleration{}, pod("p", "", "", ""), node("n", "1", "1Gi", nil, &meridianv1.Taint{Key: "k", Effect: "PreferNoSchedule"}), nil, Success, ""},
		{"no-execute bars", TaintToleration{}, pod("p", "", "", ""), node("n", "1", "1Gi", nil, &meridianv1.Taint{Key: "k", Value: "v", Effect: "NoExecute"}), nil, UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"},
		{"cordoned", NodeUnschedulable{}, pod("p", "", "", ""), cordoned, nil, UnschedulableAndUnresolvable, ReasonNodeUnschedulable},
		{"not cordoned", NodeUnschedulable{}, pod("p", "", "", ""), node("n", "1", "1Gi", nil), nil, Success, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := nodeInfo(t, tt.node)
			if tt.used != nil {
				u := podInfo(t, tt.used, "used")
				ni.addPod(&podState{requests: u.Requests, scoreRequests: u.ScoreRequests})
			}
			st := tt.plugin.Filter(podInfo(t, tt.pod, "uid"), ni)
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), st, tt.code)
			}
			if tt.reason != "" && (len(st.Reasons()) == 0 || st.Reasons()[0] != tt.reason) {
				t.Fatalf("reasons = %q, want %q", st.Reasons(), tt.reason)
			}
		})
	}
}

func gpuPod(n string) *meridianv1.Pod {
	p := pod("gpu", "", "", "")
	p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = n
	return p
}

func selectorPod(sel map[string]string) *meridianv1.Pod {
	p := pod("sel", "", "", "")
	p.Spec.NodeSelector = sel
	return p
}

func TestPodRequestsCountInitContainers(t *testing.T) {
	p := pod("p", "500m", "100Mi", "")
	p.Spec.Containers = append(p.Spec.Containers, &meridianv1.Container{Name: "side",
		Resources: &meridianv1.ResourceRequirements{Requests: map[string]string{"cpu": "250m"}}})
	p.Spec.InitContainers = []*meridianv1.Container{{Name: "init",
		Resources: &meridianv1.ResourceRequirements{Requests: map[string]string{"cpu": "100m", "memory": "1Gi"}}}}
	pi := podInfo(t, p, "uid")
	if pi.Requests.MilliCPU != 750 || pi.Requests.Memory != 1<<30 {
		t.Fatalf("requests = %+v, want 750m cpu (sum of containers) and 1Gi memory (the init container's)", pi.Requests)
	}
	bad := pod("bad", "lots", "", "")
	resource.Meta(bad).Uid = "x"
	if _, err := NewPodInfo(bad); err == nil || !strings.Contains(err.Error(), `"lots"`) {
		t.Fatalf("NewPodInfo with cpu \"lots\" = %v, want a parse error naming it", err)
	}
}

func TestFitErrorMessage(t *testing.T) {
	e := &FitError{NumAllNodes: 3, Reasons: map[string]int{
		"node(s) had untolerated taint {dedicated: gpu}": 1,
		"Insufficient cpu":    2,
		"Insufficient memory": 1,
	}}
	want := "0/3 nodes are available: 2 Insufficient cpu, 1 Insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}."
	if got := e.Error(); got != want {
		t.Fatalf("message = %q\nwant %q", got, want)
	}
	if got := (&FitError{}).Error(); got != "0/0 nodes are available: no nodes available to schedule pods." {
		t.Fatalf("no-node message = %q", got)
	}
}

func TestFilterOrderComesFromTheProfile(t *testing.T) {
	// A node that fails both the taint and the cpu check reports the first
	// filter in the profile's order.
	n := node("n", "1", "1Gi", nil, &meridianv1.Taint{Key: "k", Value: "v", Effect: "NoSchedule"})
	for _, tt := range []struct {
		filters []string
		want    string
	}{
		{[]string{TaintTolerationName, NodeResourcesFitName}, "node(s) had untolerated taint {k: v}"},
		{[]string{NodeResourcesFitName, TaintTolerationName}, "Insufficient cpu"},
	} {
		fw, err := NewFramework(Profile{Filters: tt.filters})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cacheOf(t, n).ScheduleAndAssume(fw, podInfo(t, pod("p", "2", "", ""), "uid"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("filters %v: error %v, want reason %q", tt.filters, err, tt.want)
		}
	}
}

func TestNewFrameworkRejectsBadProfiles(t *testing.T) {
	for _, p := range []Profile{
		{Filters: []string{"NodeAffinity"}},
		{Filters: []string{LeastAllocatedName}},
		{Filters: []string{TaintTolerationName, TaintTolerationName}},
		{Scores: []ScorePluginConfig{{Name: NodeSelectorName, Weight: 1}}},
		{Scores: []ScorePluginConfig{{Name: LeastAllocatedName, Weight: 0}}},
	} {
		if _, err := NewFramework(p); err == nil {
			t.Errorf("NewFramework(%+v) succeeded, want an error", p)
		}
	}
}

func TestLeastAllocatedPrefersEmptierNodes(t *testing.T) {
	c := cacheOf(t, node("busy", "4", "8Gi", nil), node("idle", "4", "8Gi", nil))
	fw, err := NewFramework(Profile{Filters: DefaultProfile().Filters, Scores: []ScorePluginConfig{{Name: LeastAllocatedName, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPod(boundPod("load", "busy", "2", "4Gi")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		n, err := c.ScheduleAndAssume(fw, podInfo(t, pod("p", "500m", "1Gi", ""), fmt.Sprintf("uid-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if n != "idle" {
			t.Fatalf("pod %d went to %s, want idle", i, n)
		}
	}
}

func TestSelectorSpreadOnItsOwn(t *testing.T) {
	// Nodes of very different sizes: spreading alone ignores size.
	c := cacheOf(t, node("huge", "64", "256Gi", nil), node("tiny-1", "1", "1Gi", nil), node("tiny-2", "1", "1Gi", nil))
	fw, err := NewFramework(Profile{Scores: []ScorePluginConfig{{Name: SelectorSpreadName, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for i := range 9 {
		n, err := c.ScheduleAndAssume(fw, podInfo(t, pod("p", "", "", "web"), fmt.Sprintf("uid-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		per[n]++
	}
	if per["huge"] != 3 || per["tiny-1"] != 3 || per["tiny-2"] != 3 {
		t.Fatalf("per node = %v, want 3 each", per)
	}
}

func TestTieBreakIsDeterministic(t *testing.T) {
	nodes := []*meridianv1.Node{node("a", "4", "8Gi", nil), node("b", "4", "8Gi", nil), node("c", "4", "8Gi", nil)}
	fw, err := NewFramework(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	chosen := map[string]bool{}
	for i := range 20 {
		uid := fmt.Sprintf("pod-uid-%d", i)
		first, err := cacheOf(t, nodes...).ScheduleAndAssume(fw, podInfo(t, pod("p", "", "", ""), uid))
		if err != nil {
			t.Fatal(err)
		}
		// The same pod against the same nodes, listed in another order,
		// lands on the same node.
		again, err := cacheOf(t, nodes[2], nodes[0], nodes[1]).ScheduleAndAssume(fw, podInfo(t, pod("p", "", "", ""), uid))
		if err != nil {
			t.Fatal(err)
		}
		if first != again {
			t.Fatalf("pod %s: %s, then %s", uid, first, again)
		}
		chosen[first] = true
	}
	if len(chosen) < 2 {
		t.Fatalf("20 tied pods all went to %v; the tie-break should differ per pod", chosen)
	}
}

func boundPod(name, node, cpu, memory string) *meridianv1.Pod {
	p := pod(name, cpu, memory, "")
	resource.Meta(p).Uid = "uid-" + name
	p.Spec.NodeName = node
	return p
}

func TestCacheAssumeConfirmForget(t *testing.T) {
	c := cacheOf(t, node("n", "2", "2Gi", nil))
	fw, err := NewFramework(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	pi := podInfo(t, pod("p", "1", "", ""), "uid-p")
	if _, err := c.ScheduleAndAssume(fw, pi); err != nil {
		t.Fatal(err)
	}
	if r, n := c.Requested("n"); r.MilliCPU != 1000 || n != 1 || !c.Has("uid-p") {
		t.Fatalf("after assume: %dm in %d pods", r.MilliCPU, n)
	}
	// The informer still shows the pod unbound: the assumption stands.
	if _, err := c.SetPod(pi.Pod); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Requested("n"); r.MilliCPU != 1000 {
		t.Fatalf("a lagging informer dropped the assumption: %dm", r.MilliCPU)
	}
	// The informer shows it bound: confirmed, not counted twice.
	bound := boundPod("p", "n", "1", "")
	if _, err := c.SetPod(bound); err != nil {
		t.Fatal(err)
	}
	c.Forget("uid-p") // a confirmed pod is not forgotten
	if r, n := c.Requested("n"); r.MilliCPU != 1000 || n != 1 {
		t.Fatalf("after confirm: %dm in %d pods", r.MilliCPU, n)
	}
	// It finishes: its cpu is free again.
	bound.Status = &meridianv1.PodStatus{Phase: phaseSucceeded}
	if freed, _ := c.SetPod(bound); !freed {
		t.Fatal("a finished pod did not free its node")
	}
	if r, n := c.Requested("n"); r.MilliCPU != 0 || n != 0 || c.Has("uid-p") {
		t.Fatalf("after finish: %dm in %d pods", r.MilliCPU, n)
	}

	// An assumption whose binding failed is forgotten.
	pi2 := podInfo(t, pod("q", "1", "", ""), "uid-q")
	if _, err := c.ScheduleAndAssume(fw, pi2); err != nil {
		t.Fatal(err)
	}
	c.Forget("uid-q")
	if r, n := c.Requested("n"); r.MilliCPU != 0 || n != 0 {
		t.Fatalf("after forget: %dm in %d pods", r.MilliCPU, n)
	}
}

func TestCacheKeepsPodsOfMissingNodes(t *testing.T) {
	c := NewCache()
	if _, err := c.SetPod(boundPod("early", "late-node", "1", "")); err != nil {
		t.Fatal(err)
	}
	if c.NodeCount() != 0 {
		t.Fatal("a pod's node became schedulable before its Node object existed")
	}
	if err := c.SetNode(node("late-node", "2", "2Gi", nil)); err != nil {
		t.Fatal(err)
	}
	if r, n := c.Requested("late-node"); r.MilliCPU != 1000 || n != 1 {
		t.Fatalf("node that arrived after its pod: %dm in %d pods", r.MilliCPU, n)
	}
	c.RemoveNode("late-node")
	if c.NodeCount() != 0 {
		t.Fatal("a removed node is still schedulable")
	}
	if r, _ := c.Requested("late-node"); r.MilliCPU != 1000 {
		t.Fatal("removing a node lost its pods")
	}
	if !c.RemovePod(boundPod("early", "late-node", "1", "")) {
		t.Fatal("RemovePod did not report freeing resources")
	}
}
