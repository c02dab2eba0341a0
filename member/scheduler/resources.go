package scheduler

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/meridian-fed/meridian/member/controller"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Resource names with a meaning of their own.
const (
	ResourceCPU    = "cpu"
	ResourceMemory = "memory"
	// ResourcePods in a node's allocatable bounds how many pods it runs.
	ResourcePods = "pods"
)

// Requests assumed for scoring a pod that requests nothing, as Kubernetes
// does: otherwise LeastAllocated would see a node full of such pods as
// empty and pile every one of them onto it.
const (
	defaultMilliCPU = 100               // 0.1 core
	defaultMemory   = 200 * 1024 * 1024 // 200 MiB
)

// Resources is an amount of every resource: cpu in millicores, memory in
// bytes, anything else (gpu, ephemeral-storage, ...) in its own units.
type Resources struct {
	// MilliCPU is cpu in thousandths of a core ("500m" is 500, "2" is 2000).
	MilliCPU int64
	// Memory is in bytes.
	Memory int64
	// Scalar holds every other named resource; nil when there is none.
	Scalar map[string]int64
}

// ParseResources reads a quantity map ("cpu": "500m", "memory": "1Gi").
// "pods" is not a resource a pod requests and is left out.
func ParseResources(m map[string]string) (Resources, error) {
	var r Resources
	for name, v := range m {
		if name == ResourcePods {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return Resources{}, fmt.Errorf("failed to parse %s quantity %q: %w", name, v, err)
		}
		switch name {
		case ResourceCPU:
			r.MilliCPU = q.MilliValue()
		case ResourceMemory:
			r.Memory = q.Value()
		default:
			if r.Scalar == nil {
				r.Scalar = map[string]int64{}
			}
			r.Scalar[name] = q.Value()
		}
	}
	return r, nil
}

// Add adds o to r.
func (r *Resources) Add(o Resources) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[string]int64{}
		}
		r.Scalar[k] += v
	}
}

// Sub subtracts o from r.
func (r *Resources) Sub(o Resources) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[string]int64{}
		}
		r.Scalar[k] -= v
		if r.Scalar[k] == 0 {
			delete(r.Scalar, k)
		}
	}
}

// setMax raises every resource of r to at least o's.
func (r *Resources) setMax(o Resources) {
	r.MilliCPU = max(r.MilliCPU, o.MilliCPU)
	r.Memory = max(r.Memory, o.Memory)
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[string]int64{}
		}
		r.Scalar[k] = max(r.Scalar[k], v)
	}
}

// Equal reports whether r and o are the same amounts.
func (r Resources) Equal(o Resources) bool {
	if r.MilliCPU != o.MilliCPU || r.Memory != o.Memory || len(r.Scalar) != len(o.Scalar) {
		return false
	}
	for k, v := range r.Scalar {
		if ov, ok := o.Scalar[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// PodInfo is what the scheduler needs to know about a pod, computed once
// per scheduling attempt.
type PodInfo struct {
	// Pod is the pod (shared with the informer cache: read only).
	Pod *meridianv1.Pod
	// Key is "namespace/name"; UID the pod's uid.
	Key, UID string
	// Requests is what the pod asks for: per resource, the larger of the
	// sum over its containers and the largest init container (which runs
	// alone, before them), as in Kubernetes.
	Requests Resources
	// ScoreRequests is Requests with the defaults for unset cpu and memory.
	ScoreRequests Resources
	// OwnerUID is the uid of the pod's controller (its ReplicaSet, Job,
	// ...), "" if it has none.
	OwnerUID string

	// siblings counts, per node, the pods of the same controller; the
	// Cache sets it for the length of one scheduling cycle, under its lock.
	siblings map[*NodeInfo]int
}

// Siblings is how many pods of the pod's own controller are on node (0 for
// a pod without one). Valid while the pod is being scheduled.
func (p *PodInfo) Siblings(node *NodeInfo) int { return p.siblings[node] }

// NewPodInfo computes a pod's PodInfo; it fails on a malformed quantity.
func NewPodInfo(pod *meridianv1.Pod) (*PodInfo, error) {
	req, err := podRequests(pod)
	if err != nil {
		return nil, err
	}
	pi := &PodInfo{Pod: pod, Key: controller.Key(pod), UID: pod.GetMetadata().GetUid(), Requests: req}
	pi.ScoreRequests = nonZero(req)
	if ref := controller.ControllerOf(pod); ref != nil {
		pi.OwnerUID = ref.GetUid()
	}
	return pi, nil
}

func podRequests(pod *meridianv1.Pod) (Resources, error) {
	var sum, initMax Resources
	for _, c := range pod.GetSpec().GetContainers() {
		r, err := ParseResources(c.GetResources().GetRequests())
		if err != nil {
			return Resources{}, fmt.Errorf("container %s: %w", c.GetName(), err)
		}
		sum.Add(r)
	}
	for _, c := range pod.GetSpec().GetInitContainers() {
		r, err := ParseResources(c.GetResources().GetRequests())
		if err != nil {
			return Resources{}, fmt.Errorf("init container %s: %w", c.GetName(), err)
		}
		initMax.setMax(r)
	}
	sum.setMax(initMax)
	return sum, nil
}

func nonZero(r Resources) Resources {
	out := Resources{MilliCPU: r.MilliCPU, Memory: r.Memory}
	if out.MilliCPU == 0 {
		out.MilliCPU = defaultMilliCPU
	}
	if out.Memory == 0 {
		out.Memory = defaultMemory
	}
	return out
}

// NodeInfo is the scheduler's view of one node: the node and the totals of
// the pods bound (or assumed bound) to it, kept up to date incrementally as
// pods come and go. Plugins read it and must not change it.
type NodeInfo struct {
	// Node is the node object; nil while pods name a node that does not
	// exist (yet, or any more).
	Node *meridianv1.Node
	// Name is the node's name.
	Name string
	// Allocatable is what pods may use (status.allocatable, or capacity).
	Allocatable Resources
	// MaxPods is the node's "pods" allocatable; 0 means no limit.
	MaxPods int64
	// Requested sums the requests of the node's pods that have not
	// finished; ScoreRequested the same with the scoring defaults.
	Requested, ScoreRequested Resources
	// Pods is how many pods (not finished) are on the node.
	Pods int
	// taintStatus is TaintToleration's failure for each of the node's
	// taints, made when the node is loaded rather than once per pod.
	taintStatus []*Status
}

// Labels are the node's labels.
func (n *NodeInfo) Labels() map[string]string { return n.Node.GetMetadata().GetLabels() }

// Taints are the node's taints.
func (n *NodeInfo) Taints() []*meridianv1.Taint { return n.Node.GetSpec().GetTaints() }

func newNodeInfo(name string) *NodeInfo {
	return &NodeInfo{Name: name}
}

// setNode loads a node object's allocatable; a quantity that does not
// parse counts as nothing (and is returned as an error to log).
func (n *NodeInfo) setNode(node *meridianv1.Node) error {
	n.Node = node
	n.taintStatus = n.taintStatus[:0]
	for _, t := range node.GetSpec().GetTaints() {
		n.taintStatus = append(n.taintStatus, NewStatus(UnschedulableAndUnresolvable, reasonUntoleratedTaint(t)))
	}
	alloc := node.GetStatus().GetAllocatable()
	if len(alloc) == 0 {
		alloc = node.GetStatus().GetCapacity()
	}
	n.MaxPods = 0
	if v, ok := alloc[ResourcePods]; ok {
		if q, err := resource.ParseQuantity(v); err == nil {
			n.MaxPods = q.Value()
		}
	}
	r, err := ParseResources(alloc)
	n.Allocatable = r
	if err != nil {
		return fmt.Errorf("node %s allocatable: %w", node.GetMetadata().GetName(), err)
	}
	return nil
}

func (n *NodeInfo) addPod(p *podState) {
	n.Requested.Add(p.requests)
	n.ScoreRequested.Add(p.scoreRequests)
	n.Pods++
}

func (n *NodeInfo) removePod(p *podState) {
	n.Requested.Sub(p.requests)
	n.ScoreRequested.Sub(p.scoreRequests)
	n.Pods--
}

// sortedNames returns the keys of m in order.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
