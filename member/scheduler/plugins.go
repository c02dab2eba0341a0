package scheduler

import (
	"fmt"

	"github.com/meridian-fed/meridian/policies/tainttoleration"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Names of the built-in filter plugins.
const (
	NodeUnschedulableName = "NodeUnschedulable"
	TaintTolerationName   = "TaintToleration"
	NodeSelectorName      = "NodeSelector"
	NodeResourcesFitName  = "NodeResourcesFit"
)

// Reasons the filters give, worded as Kubernetes words them so that
// `describe` reads the same.
const (
	ReasonNodeUnschedulable = "node(s) were unschedulable"
	ReasonNodeSelector      = "node(s) didn't match Pod's node affinity/selector"
	ReasonTooManyPods       = "Too many pods"
)

// reasonInsufficient is the reason for a resource a node lacks.
func reasonInsufficient(resource string) string { return "Insufficient " + resource }

// The statuses of the common single-reason failures, made once: filters
// run for every node and every pod, and most nodes fail for one of these.
// A Status is never changed after it is made, so sharing is safe.
var (
	statusUnschedulableNode = NewStatus(UnschedulableAndUnresolvable, ReasonNodeUnschedulable)
	statusNodeSelector      = NewStatus(UnschedulableAndUnresolvable, ReasonNodeSelector)
	statusInsufficientCPU   = NewStatus(Unschedulable, reasonInsufficient(ResourceCPU))
	statusInsufficientMem   = NewStatus(Unschedulable, reasonInsufficient(ResourceMemory))
	statusSkip              = NewStatus(Skip)
)

// reasonUntoleratedTaint is the reason for a taint the pod does not tolerate.
func reasonUntoleratedTaint(t *meridianv1.Taint) string {
	return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.GetKey(), t.GetValue())
}

// taintUnschedulable is the taint Kubernetes puts on a cordoned node; a pod
// that tolerates it may still go there (a DaemonSet's pods do).
const taintUnschedulable = "node.kubernetes.io/unschedulable"

// NodeUnschedulable filters out cordoned nodes (spec.unschedulable).
type NodeUnschedulable struct{}

var _ FilterPlugin = NodeUnschedulable{}

// Name is NodeUnschedulableName.
func (NodeUnschedulable) Name() string { return NodeUnschedulableName }

// Filter rejects a cordoned node unless the pod tolerates
// node.kubernetes.io/unschedulable:NoSchedule.
func (NodeUnschedulable) Filter(pod *PodInfo, node *NodeInfo) *Status {
	if !node.Node.GetSpec().GetUnschedulable() {
		return nil
	}
	if tolerated(pod.Pod.GetSpec().GetTolerations(), &meridianv1.Taint{Key: taintUnschedulable, Effect: "NoSchedule"}) {
		return nil
	}
	return statusUnschedulableNode
}

// TaintToleration filters out nodes with a NoSchedule or NoExecute taint the
// pod does not tolerate (PreferNoSchedule is only a preference, not a bar).
type TaintToleration struct{}

var _ FilterPlugin = TaintToleration{}

// Name is TaintTolerationName.
func (TaintToleration) Name() string { return TaintTolerationName }

// Filter rejects the node for its first untolerated taint.
func (TaintToleration) Filter(pod *PodInfo, node *NodeInfo) *Status {
	tols := pod.Pod.GetSpec().GetTolerations()
	for i, t := range node.Taints() {
		if e := t.GetEffect(); e != "NoSchedule" && e != "NoExecute" {
			continue
		}
		if !tolerated(tols, t) {
			return node.taintStatus[i]
		}
	}
	return nil
}

// tolerated reports whether any toleration matches the taint, by
// Kubernetes' rules. Nodes and clusters share the one matcher
// (tainttoleration.Tolerated), so that a toleration means the same to the
// member's scheduler and to the hub's placement.
func tolerated(tols []*meridianv1.Toleration, t *meridianv1.Taint) bool {
	return tainttoleration.Tolerated(tols, t)
}

// NodeSelector filters out nodes whose labels do not match the pod's
// spec.nodeSelector.
type NodeSelector struct{}

var (
	_ FilterPlugin    = NodeSelector{}
	_ PreFilterPlugin = NodeSelector{}
)

// Name is NodeSelectorName.
func (NodeSelector) Name() string { return NodeSelectorName }

// PreFilter skips the plugin for a pod without a nodeSelector.
func (NodeSelector) PreFilter(pod *PodInfo) *Status {
	if len(pod.Pod.GetSpec().GetNodeSelector()) == 0 {
		return statusSkip
	}
	return nil
}

// Filter rejects a node missing one of the selector's labels.
func (NodeSelector) Filter(pod *PodInfo, node *NodeInfo) *Status {
	labels := node.Labels()
	for k, v := range pod.Pod.GetSpec().GetNodeSelector() {
		if got, ok := labels[k]; !ok || got != v {
			return statusNodeSelector
		}
	}
	return nil
}

// NodeResourcesFit filters out nodes without room for the pod: for cpu,
// memory and every other resource the pod requests, what the node's pods
// (bound or assumed, not finished) request plus what this pod requests
// must not exceed the node's allocatable. A node's "pods" allocatable
// bounds its pod count.
type NodeResourcesFit struct{}

var _ FilterPlugin = NodeResourcesFit{}

// Name is NodeResourcesFitName.
func (NodeResourcesFit) Name() string { return NodeResourcesFitName }

// Filter lists every resource the node lacks (a node short of both cpu and
// memory counts under both in the message, as in Kubernetes).
func (NodeResourcesFit) Filter(pod *PodInfo, node *NodeInfo) *Status {
	req, used, alloc := pod.Requests, node.Requested, node.Allocatable
	tooMany := node.MaxPods > 0 && int64(node.Pods)+1 > node.MaxPods
	cpu := req.MilliCPU > 0 && used.MilliCPU+req.MilliCPU > alloc.MilliCPU
	mem := req.Memory > 0 && used.Memory+req.Memory > alloc.Memory
	if !tooMany && len(req.Scalar) == 0 {
		switch {
		case cpu && !mem:
			return statusInsufficientCPU
		case mem && !cpu:
			return statusInsufficientMem
		case !cpu && !mem:
			return nil
		}
	}
	var reasons []string
	if tooMany {
		reasons = append(reasons, ReasonTooManyPods)
	}
	if cpu {
		reasons = append(reasons, reasonInsufficient(ResourceCPU))
	}
	if mem {
		reasons = append(reasons, reasonInsufficient(ResourceMemory))
	}
	if len(req.Scalar) > 0 {
		for _, name := range sortedNames(req.Scalar) {
			if v := req.Scalar[name]; v > 0 && used.Scalar[name]+v > alloc.Scalar[name] {
				reasons = append(reasons, reasonInsufficient(name))
			}
		}
	}
	if len(reasons) > 0 {
		return NewStatus(Unschedulable, reasons...)
	}
	return nil
}

// Names of the built-in score plugins.
const (
	LeastAllocatedName = "LeastAllocated"
	SelectorSpreadName = "SelectorSpread"
)

// LeastAllocated prefers nodes with the most room left: the mean, over cpu
// and memory, of the fraction of allocatable still free once the pod is
// placed, on 0..MaxNodeScore. Pods that request nothing count with the
// scoring defaults (0.1 cpu, 200 MiB), so they spread out too.
type LeastAllocated struct{}

var _ ScorePlugin = LeastAllocated{}

// Name is LeastAllocatedName.
func (LeastAllocated) Name() string { return LeastAllocatedName }

// Score is the node's free fraction after placing the pod.
func (LeastAllocated) Score(pod *PodInfo, node *NodeInfo) (int64, *Status) {
	cpu := freeScore(node.ScoreRequested.MilliCPU+pod.ScoreRequests.MilliCPU, node.Allocatable.MilliCPU)
	mem := freeScore(node.ScoreRequested.Memory+pod.ScoreRequests.Memory, node.Allocatable.Memory)
	return (cpu + mem) / 2, nil
}

// freeScore is (capacity-requested)/capacity on 0..MaxNodeScore; 0 for a
// node without that resource or already full.
func freeScore(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	// In float: (capacity-requested)*100 overflows int64 for nodes that
	// declare exabytes.
	return int64(float64(capacity-requested) * MaxNodeScore / float64(capacity))
}

// SelectorSpread prefers nodes with fewer pods of the pod's own controller
// (its ReplicaSet, StatefulSet, Job, ...), so that losing one node loses as
// few of a workload's pods as possible. The node with the most such pods
// scores 0, nodes with none score MaxNodeScore.
type SelectorSpread struct{}

var (
	_ ScorePlugin     = SelectorSpread{}
	_ PreScorePlugin  = SelectorSpread{}
	_ ScoreNormalizer = SelectorSpread{}
)

// Name is SelectorSpreadName.
func (SelectorSpread) Name() string { return SelectorSpreadName }

// PreScore skips pods without a controller: there is nothing to spread.
func (SelectorSpread) PreScore(pod *PodInfo) *Status {
	if pod.OwnerUID == "" {
		return statusSkip
	}
	return nil
}

// Score is the raw count of the controller's pods on the node.
func (SelectorSpread) Score(pod *PodInfo, node *NodeInfo) (int64, *Status) {
	return int64(pod.Siblings(node)), nil
}

// NormalizeScore maps counts to MaxNodeScore * (most - count) / most.
func (SelectorSpread) NormalizeScore(_ *PodInfo, _ []*NodeInfo, scores []int64) *Status {
	var most int64
	for _, s := range scores {
		most = max(most, s)
	}
	for i, s := range scores {
		if most == 0 {
			scores[i] = MaxNodeScore
		} else {
			scores[i] = MaxNodeScore * (most - s) / most
		}
	}
	return nil
}
