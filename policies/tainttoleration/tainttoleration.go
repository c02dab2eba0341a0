// Package tainttoleration is the TaintToleration filter: a cluster's taints
// repel the workloads whose policy does not tolerate them, with
// Kubernetes' taint and toleration semantics one level up (a cluster
// instead of a node), as Karmada does it.
//
// The tolerations are the policy's placement.clusterTolerations, never the
// pod template's tolerations: those are for the member's nodes, and a
// workload author should not be able to walk onto a tainted cluster by
// editing a template the federation operator does not own.
//
// Effects:
//   - NoExecute: the cluster must not run the workload at all; a cluster
//     that already runs it is rejected too, so the workload leaves it. A
//     toleration's tolerationSeconds does not shorten the toleration here
//     (as in the Kubernetes scheduler): when to evict is failover's
//     decision, not placement's.
//   - NoSchedule: no new placement on the cluster; a cluster that already
//     runs the workload (in Snapshot.Previous, and the snapshot is not
//     Fresh) keeps it, because NoSchedule evicts nobody.
//   - PreferNoSchedule (or any other effect): not a bar; ignored here.
package tainttoleration

import (
	"context"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Name is the plugin's name in configuration (placement.filters) and in
// reasons.
const Name = "TaintToleration"

// Taint effects, as Kubernetes names them.
const (
	EffectNoSchedule       = "NoSchedule"
	EffectPreferNoSchedule = "PreferNoSchedule"
	EffectNoExecute        = "NoExecute"
)

// Toleration operators, as Kubernetes names them; an empty operator is
// Equal.
const (
	OperatorEqual  = "Equal"
	OperatorExists = "Exists"
)

// Plugin is the TaintToleration filter. It holds no state: one Plugin
// serves every placement, concurrently.
type Plugin struct{}

var _ framework.FilterPlugin = (*Plugin)(nil)

// New returns the TaintToleration filter. It takes no arguments: the
// tolerations come with each snapshot's placement.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Filter rejects c, Unschedulable (taints come and go), for the first of
// its taints, in the cluster's order, that bars the workload and that the
// policy does not tolerate; the reason names the taint:
// `cluster has taint maintenance=true:NoSchedule that the policy does not
// tolerate`. A cluster without such a taint passes. There is no Skip: a
// policy without tolerations (or no policy) is exactly the one taints keep
// out.
func (*Plugin) Filter(_ context.Context, s *framework.Snapshot, c *framework.Cluster) *framework.Status {
	if c == nil || len(c.Taints) == 0 {
		return nil
	}
	var tols []*meridianv1.Toleration
	if s != nil {
		tols = s.Placement.GetClusterTolerations()
	}
	runs := kept(s, c)
	for _, t := range c.Taints {
		switch t.GetEffect() {
		case EffectNoExecute:
		case EffectNoSchedule:
			if runs {
				continue // NoSchedule keeps new placements out and evicts nobody
			}
		default:
			continue
		}
		if !Tolerated(tols, t) {
			return framework.NewStatus(framework.Unschedulable, "cluster has taint %s that the policy does not tolerate", TaintString(t))
		}
	}
	return nil
}

// Tolerated reports whether any of tols tolerates the taint, by
// Kubernetes' rules: a toleration with an effect matches only that effect
// (empty matches every effect); one with a key matches only that key; an
// empty key with operator Exists matches every taint; Exists ignores the
// value, Equal (the default) needs the same value. A toleration with an
// empty key and operator Equal matches nothing (Kubernetes forbids it).
func Tolerated(tols []*meridianv1.Toleration, t *meridianv1.Taint) bool {
	for _, tol := range tols {
		if e := tol.GetEffect(); e != "" && e != t.GetEffect() {
			continue
		}
		if k := tol.GetKey(); k != "" && k != t.GetKey() {
			continue
		}
		switch tol.GetOperator() {
		case OperatorExists:
			return true
		case "", OperatorEqual:
			if tol.GetKey() != "" && tol.GetValue() == t.GetValue() {
				return true
			}
		}
	}
	return false
}

// TaintString renders a taint as kubectl does: key=value:effect, or
// key:effect when the value is empty.
func TaintString(t *meridianv1.Taint) string {
	kv := t.GetKey()
	if v := t.GetValue(); v != "" {
		kv += "=" + v
	}
	return kv + ":" + t.GetEffect()
}

// kept reports whether the placement keeps what c runs now: c is in the
// current placement and the snapshot is not Fresh (a fresh placement
// ignores where the workload runs, so nothing is kept).
func kept(s *framework.Snapshot, c *framework.Cluster) bool {
	if s == nil || s.Fresh {
		return false
	}
	for _, t := range s.Previous {
		if t.Cluster == c.Name {
			return true
		}
	}
	return false
}
