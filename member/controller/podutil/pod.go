// Package podutil holds what the member's workload controllers (ReplicaSet,
// Deployment, StatefulSet, DaemonSet) share about pods: label selectors,
// readiness and availability, building pods from templates, template
// hashes, rollout budgets, the order in which to delete pods, adopting and
// releasing dependents, and expectations of the controller's own writes.
//
// Everything here reads objects and never changes them in place: callers
// pass objects straight from an informer's shared cache.
package podutil

import (
	"cmp"
	"slices"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Pod phases, as the node agent writes them.
const (
	PodPending   = "Pending"
	PodRunning   = "Running"
	PodSucceeded = "Succeeded"
	PodFailed    = "Failed"
	PodUnknown   = "Unknown"
)

// Condition types and statuses.
const (
	ConditionReady = "Ready"
	ConditionTrue  = "True"
	ConditionFalse = "False"
)

// Restart policies.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"
)

// readyCondition returns the pod's Ready condition, or nil.
func readyCondition(pod *meridianv1.Pod) *meridianv1.Condition {
	for _, c := range pod.GetStatus().GetConditions() {
		if c.GetType() == ConditionReady {
			return c
		}
	}
	return nil
}

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(pod *meridianv1.Pod) bool {
	return readyCondition(pod).GetStatus() == ConditionTrue
}

// ReadySince returns when the pod last became ready, and false if it is not
// ready. A ready pod without a transition time counts as ready since ever.
func ReadySince(pod *meridianv1.Pod) (time.Time, bool) {
	c := readyCondition(pod)
	if c.GetStatus() != ConditionTrue {
		return time.Time{}, false
	}
	if c.GetLastTransitionTime() == nil {
		return time.Time{}, true
	}
	return c.GetLastTransitionTime().AsTime(), true
}

// IsPodAvailable reports whether the pod has been ready for at least
// minReadySeconds at now. With minReadySeconds 0, available means ready.
func IsPodAvailable(pod *meridianv1.Pod, minReadySeconds int32, now time.Time) bool {
	since, ok := ReadySince(pod)
	if !ok {
		return false
	}
	if minReadySeconds <= 0 || since.IsZero() {
		return true
	}
	return !since.Add(time.Duration(minReadySeconds) * time.Second).After(now)
}

// AvailableIn returns how long until a ready pod becomes available, and
// false if it is not ready or already available: the controller re-queues
// its owner after that long to count it.
func AvailableIn(pod *meridianv1.Pod, minReadySeconds int32, now time.Time) (time.Duration, bool) {
	since, ok := ReadySince(pod)
	if !ok || minReadySeconds <= 0 || since.IsZero() {
		return 0, false
	}
	d := since.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
	return d, d > 0
}

// IsPodTerminal reports whether the pod has ended (Succeeded or Failed):
// its processes will not run again, whatever its restart policy says.
func IsPodTerminal(pod *meridianv1.Pod) bool {
	p := pod.GetStatus().GetPhase()
	return p == PodSucceeded || p == PodFailed
}

// IsPodActive reports whether the pod counts toward a workload's replicas:
// it has not ended and is not being deleted.
func IsPodActive(pod *meridianv1.Pod) bool {
	return !IsPodTerminal(pod) && pod.GetMetadata().GetDeletionTimestamp() == nil
}

// IsRunningAndReady reports whether the pod is Running and Ready: the
// condition a StatefulSet waits for before it moves to the next ordinal.
func IsRunningAndReady(pod *meridianv1.Pod) bool {
	return pod.GetStatus().GetPhase() == PodRunning && IsPodReady(pod)
}

// FilterActive returns the active pods of pods, in order.
func FilterActive(pods []*meridianv1.Pod) []*meridianv1.Pod {
	out := make([]*meridianv1.Pod, 0, len(pods))
	for _, p := range pods {
		if IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// phaseRank orders phases by how far a pod has come: a pod that has not
// started costs less to delete than one that runs.
func phaseRank(phase string) int {
	switch phase {
	case PodPending, "":
		return 0
	case PodUnknown:
		return 1
	case PodRunning:
		return 2
	}
	return 3
}

func restarts(pod *meridianv1.Pod) int32 {
	var n int32
	for _, cs := range pod.GetStatus().GetContainerStatuses() {
		n = max(n, cs.GetRestartCount())
	}
	return n
}

// CompareForDeletion orders two pods by how willingly a controller deletes
// them, most willingly first, as Kubernetes' ActivePods does:
//
//  1. not yet on a node before on a node (nothing runs yet);
//  2. Pending before Unknown before Running;
//  3. not ready before ready;
//  4. ready for less time before ready for longer, so that pods that are
//     available (ready for minReadySeconds) go last;
//  5. more restarts before fewer;
//  6. newer before older.
//
// Names break the remaining ties so that the order is deterministic.
func CompareForDeletion(a, b *meridianv1.Pod) int {
	if c := cmp.Compare(boolRank(a.GetSpec().GetNodeName() != ""), boolRank(b.GetSpec().GetNodeName() != "")); c != 0 {
		return c
	}
	if c := cmp.Compare(phaseRank(a.GetStatus().GetPhase()), phaseRank(b.GetStatus().GetPhase())); c != 0 {
		return c
	}
	sa, ra := ReadySince(a)
	sb, rb := ReadySince(b)
	if c := cmp.Compare(boolRank(ra), boolRank(rb)); c != 0 {
		return c
	}
	if ra && rb && !sa.Equal(sb) {
		return -sa.Compare(sb) // later readiness first
	}
	if c := cmp.Compare(restarts(b), restarts(a)); c != 0 {
		return c
	}
	ca, cb := a.GetMetadata().GetCreationTimestamp().AsTime(), b.GetMetadata().GetCreationTimestamp().AsTime()
	if !ca.Equal(cb) {
		return -ca.Compare(cb) // newer first
	}
	return cmp.Compare(a.GetMetadata().GetName(), b.GetMetadata().GetName())
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SortForDeletion sorts pods in place, the pod to delete first at index 0
// (see CompareForDeletion).
func SortForDeletion(pods []*meridianv1.Pod) {
	slices.SortStableFunc(pods, CompareForDeletion)
}

// Counts are the pod tallies a workload's status reports.
type Counts struct {
	// Replicas is the number of active pods.
	Replicas int32
	// Ready is the number of active pods whose Ready condition is True.
	Ready int32
	// Available is the number of active pods ready for minReadySeconds.
	Available int32
	// NextAvailable is the soonest time a ready pod becomes available
	// (zero if none is waiting): when the owner should look again.
	NextAvailable time.Duration
}

// Count tallies the active pods of pods at now.
func Count(pods []*meridianv1.Pod, minReadySeconds int32, now time.Time) Counts {
	var c Counts
	for _, p := range pods {
		if !IsPodActive(p) {
			continue
		}
		c.Replicas++
		if IsPodReady(p) {
			c.Ready++
		}
		if IsPodAvailable(p, minReadySeconds, now) {
			c.Available++
		} else if d, ok := AvailableIn(p, minReadySeconds, now); ok && (c.NextAvailable == 0 || d < c.NextAvailable) {
			c.NextAvailable = d
		}
	}
	return c
}
