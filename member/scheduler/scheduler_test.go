package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestSchedulerFitsResources(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.create(node("big", "2", "4Gi", nil))
	h.create(node("small", "1", "2Gi", nil))

	h.create(pod("fits-big", "1500m", "1Gi", ""))
	if n := h.waitBound("fits-big"); n != "big" {
		t.Fatalf("fits-big bound to %s; only big has 1.5 cpu", n)
	}
	p := h.pod("fits-big")
	if c := p.GetStatus().GetConditions(); len(c) != 1 || c[0].GetType() != ConditionPodScheduled || c[0].GetStatus() != "True" {
		t.Fatalf("bound pod conditions = %v, want PodScheduled=True", c)
	}

	h.create(pod("too-big", "3", "", ""))
	msg := h.waitUnschedulable("too-big")
	if want := "0/2 nodes are available: 2 Insufficient cpu."; msg != want {
		t.Fatalf("message = %q, want %q", msg, want)
	}
	waitFor(t, "a FailedScheduling event", func() (bool, string) {
		evs := h.events("too-big")
		return slices.Contains(evs, "FailedScheduling: "+msg), fmt.Sprint(evs)
	})

	// Memory counts too, and the pods already bound count against a node:
	// big has 500m and 3Gi left, small 1 cpu and 2Gi.
	h.create(pod("needs-mem", "600m", "3584Mi", ""))
	h.waitMessage("needs-mem", "0/2 nodes are available: 2 Insufficient memory, 1 Insufficient cpu.")
}

func TestSchedulerExplainsEveryNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.create(node("n1", "1", "1Gi", nil))
	h.create(node("n2", "1", "1Gi", nil))
	h.create(node("gpu", "8", "32Gi", nil, &meridianv1.Taint{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}))
	h.create(pod("hungry", "2", "", ""))
	h.waitMessage("hungry", "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}.")
}

func TestSchedulerNodeSelector(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.create(node("ssd-1", "4", "8Gi", map[string]string{"disk": "ssd"}))
	h.create(node("hdd-1", "4", "8Gi", map[string]string{"disk": "hdd"}))
	h.create(node("hdd-2", "4", "8Gi", map[string]string{"disk": "hdd"}))
	for i := range 4 {
		p := pod(fmt.Sprintf("db-%d", i), "100m", "", "db")
		p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
		h.create(p)
	}
	for i := range 4 {
		if n := h.waitBound(fmt.Sprintf("db-%d", i)); n != "ssd-1" {
			t.Fatalf("db-%d bound to %s, want ssd-1", i, n)
		}
	}
	p := pod("nvme", "100m", "", "")
	p.Spec.NodeSelector = map[string]string{"disk": "nvme"}
	h.create(p)
	h.waitMessage("nvme", "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")
}

func TestSchedulerTaintsAndTolerations(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.create(node("gpu-1", "4", "8Gi", nil,
		&meridianv1.Taint{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"},
		&meridianv1.Taint{Key: "slow", Effect: "PreferNoSchedule"}))
	// Cordoned from its first write: a cordon written after the node was
	// created can reach the scheduler's cache after the pod below does.
	cordoned := node("cordoned", "4", "8Gi", nil)
	cordoned.Spec.Unschedulable = true
	h.create(cordoned)

	h.create(pod("plain", "100m", "", ""))
	h.waitMessage("plain", "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable.")

	tolerant := pod("trainer", "100m", "", "")
	tolerant.Spec.Tolerations = []*meridianv1.Toleration{{Key: "dedicated", Operator: "Equal", Value: "gpu", Effect: "NoSchedule"}}
	h.create(tolerant)
	if n := h.waitBound("trainer"); n != "gpu-1" {
		t.Fatalf("trainer bound to %s, want gpu-1", n)
	}

	wrongValue := pod("wrong", "100m", "", "")
	wrongValue.Spec.Tolerations = []*meridianv1.Toleration{{Key: "dedicated", Value: "tpu"}}
	h.create(wrongValue)
	h.waitUnschedulable("wrong")

	everything := pod("anything", "100m", "", "")
	everything.Spec.Tolerations = []*meridianv1.Toleration{{Operator: "Exists"}}
	h.create(everything)
	h.waitBound("anything") // tolerates the taint and the cordon
}

func TestSchedulerSpreadsAcrossNodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	for _, n := range []string{"a", "b", "c"} {
		h.create(node(n, "4", "8Gi", nil))
	}
	for i := range 6 {
		h.create(pod(fmt.Sprintf("web-%d", i), "", "", "web"))
	}
	perNode := map[string]int{}
	for i := range 6 {
		perNode[h.waitBound(fmt.Sprintf("web-%d", i))]++
	}
	if perNode["a"] != 2 || perNode["b"] != 2 || perNode["c"] != 2 {
		t.Fatalf("pods per node = %v, want 2 on each", perNode)
	}
}

func TestSchedulerRetriesWhenTheClusterChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.create(node("n1", "1", "2Gi", nil))
	h.create(pod("first", "800m", "", ""))
	h.waitBound("first")

	// No room: the pod waits...
	h.create(pod("second", "800m", "", ""))
	h.waitMessage("second", "0/1 nodes are available: 1 Insufficient cpu.")
	// ...until a node is added.
	h.create(node("n2", "1", "2Gi", nil))
	if n := h.waitBound("second"); n != "n2" {
		t.Fatalf("second bound to %s, want the new node n2", n)
	}

	// Both nodes are full; finishing a pod frees its cpu.
	h.create(pod("third", "800m", "", ""))
	h.waitUnschedulable("third")
	if _, err := h.st.Update(h.ctx, podKind, ns, "first", func(o resource.Object) error {
		o.(*meridianv1.Pod).Status.Phase = phaseSucceeded
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := h.waitBound("third"); n != "n1" {
		t.Fatalf("third bound to %s, want n1 where first finished", n)
	}

	// And deleting a pod frees its cpu too.
	h.create(pod("fourth", "800m", "", ""))
	h.waitUnschedulable("fourth")
	if _, err := h.st.Delete(h.ctx, podKind, ns, "second", ""); err != nil {
		t.Fatal(err)
	}
	if n := h.waitBound("fourth"); n != "n2" {
		t.Fatalf("fourth bound to %s, want n2 where second was deleted", n)
	}
}

func TestSchedulerLeavesOtherPodsAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	h.create(node("n1", "4", "8Gi", nil))
	other := pod("other", "100m", "", "")
	other.Spec.SchedulerName = "gpu-scheduler"
	h.create(other)
	done := pod("done", "100m", "", "")
	h.create(done)
	h.waitBound("done")
	// A pod for another scheduler is never bound, nor marked; the marker
	// pod below is scheduled after it was seen.
	h.create(pod("marker", "100m", "", ""))
	h.waitBound("marker")
	if p := h.pod("other"); p.GetSpec().GetNodeName() != "" || len(p.GetStatus().GetConditions()) != 0 {
		t.Fatalf("a pod of another scheduler was touched: %v %v", p.GetSpec().GetNodeName(), p.GetStatus())
	}
}

func TestSchedulerNeverOvercommits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{Binders: 32})
	const nodes, perNode, extra = 4, 10, 20 // 10 pods of 100m fill a 1-cpu node
	for i := range nodes {
		h.create(node(fmt.Sprintf("n%d", i), "1", "64Gi", nil))
	}
	total := nodes*perNode + extra
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 10 {
				if _, err := h.st.Create(h.ctx, pod(fmt.Sprintf("p-%03d", i), "100m", "", "")); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var bound, unschedulable int
	usage := map[string]int64{}
	waitFor(t, "every pod to be bound or marked unschedulable", func() (bool, string) {
		objs, _, err := h.st.List(h.ctx, podKind, ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		bound, unschedulable = 0, 0
		clear(usage)
		for _, o := range objs {
			p := o.(*meridianv1.Pod)
			if n := p.GetSpec().GetNodeName(); n != "" {
				bound++
				usage[n] += 100
				continue
			}
			for _, c := range p.GetStatus().GetConditions() {
				if c.GetType() == ConditionPodScheduled && c.GetStatus() == "False" {
					unschedulable++
				}
			}
		}
		return bound+unschedulable == total, fmt.Sprintf("%d bound, %d unschedulable", bound, unschedulable)
	})
	for n, milli := range usage {
		if milli > 1000 {
			t.Fatalf("node %s overcommitted: %dm of 1000m requested", n, milli)
		}
	}
	if bound != nodes*perNode || unschedulable != extra {
		t.Fatalf("%d bound and %d unschedulable, want %d and %d", bound, unschedulable, nodes*perNode, extra)
	}
	// The cache agrees with the store.
	for i := range nodes {
		n := fmt.Sprintf("n%d", i)
		if r, pods := h.s.Cache().Requested(n); r.MilliCPU != usage[n] || pods != int(usage[n]/100) {
			t.Fatalf("cache says %s has %dm in %d pods; the store says %dm", n, r.MilliCPU, pods, usage[n])
		}
	}
	msg := h.waitUnschedulable(firstUnbound(t, h))
	if !strings.HasPrefix(msg, "0/4 nodes are available: 4 Insufficient cpu") {
		t.Fatalf("message = %q", msg)
	}
}

func firstUnbound(t *testing.T, h *harness) string {
	objs, _, err := h.st.List(h.ctx, podKind, ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.(*meridianv1.Pod).GetSpec().GetNodeName() == "" {
			return o.GetMetadata().GetName()
		}
	}
	t.Fatal("every pod is bound")
	return ""
}
