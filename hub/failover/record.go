package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Types of a PlacementMove in a binding's history.
const (
	MoveFailover = "Failover"
	MoveFailback = "Failback"
	// MovePlacement is a singleton moved by a policy change (planned.go).
	MovePlacement = "Placement"
)

// errMoved is returned by a write whose binding changed since the cache
// was read (the placement controller re-placed it): the sync is retried on
// the binding stored now.
var errMoved = errors.New("the binding changed since it was read")

// write applies mutate to the stored binding, provided it is still the one
// the cache showed (same uid and generation, and the same drill mark):
// failover, the placement controller and a drill never overwrite each
// other's decisions.
func (c *Controller) write(ctx context.Context, w *workload, mutate func(b *meridianv1.ResourceBinding)) error {
	md := w.binding.GetMetadata()
	uid, gen := md.GetUid(), md.GetGeneration()
	// From the informer's copy: a failover of many workloads writes
	// each binding in one etcd round trip instead of a read and a write.
	_, err := store.UpdateFrom(ctx, c.cfg.Store, w.binding, func(o resource.Object) error {
		b := o.(*meridianv1.ResourceBinding)
		if b.GetMetadata().GetUid() != uid || b.GetMetadata().GetGeneration() != gen {
			return errMoved
		}
		// A drill's mark is metadata (no new generation): a decision made
		// with a mark that the drill has removed since (or without one it
		// has added) must not land (drill.go).
		if drillMark(b) != drillMark(w.binding) {
			return errMoved
		}
		if b.Spec == nil {
			b.Spec = &meridianv1.ResourceBindingSpec{}
		}
		if b.Status == nil {
			b.Status = &meridianv1.ResourceBindingStatus{}
		}
		mutate(b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to update binding %s/%s: %w", md.GetNamespace(), md.GetName(), err)
	}
	return nil
}

// withPlacementStatus returns change, extended to write the placement
// status (verdicts, Scheduled condition) the placement controller would
// write for the binding once change is made: it re-places every binding
// whose spec changed, and finds nothing left to write then. During a
// failover of many workloads that is one etcd write less per move. When
// the placement would not keep the targets change writes (or cannot
// place), change is returned as is, and the placement controller does
// what it does.
func (c *Controller) withPlacementStatus(ctx context.Context, w *workload, change func(b *meridianv1.ResourceBinding)) func(b *meridianv1.ResourceBinding) {
	after := proto.Clone(w.binding).(*meridianv1.ResourceBinding)
	if after.Spec == nil {
		after.Spec = &meridianv1.ResourceBindingSpec{}
	}
	if after.Status == nil {
		after.Status = &meridianv1.ResourceBindingStatus{}
	}
	change(after)
	want, ok := placement.Replace(ctx, c.cfg.Engine, w.obj, w.policy, placement.ClustersOf(c.clusters), after)
	if !ok || !sameTargets(want.GetSpec().GetClusters(), after.GetSpec().GetClusters()) || len(want.GetSpec().GetPlannedClusters()) > 0 {
		return change
	}
	return func(b *meridianv1.ResourceBinding) {
		change(b)
		cond := proto.Clone(want.GetStatus().GetConditions()[0]).(*meridianv1.Condition)
		if oc := b.GetStatus().GetConditions(); len(oc) == 1 && oc[0].GetStatus() == cond.GetStatus() {
			cond.LastTransitionTime = oc[0].GetLastTransitionTime()
		} else {
			cond.LastTransitionTime = timestamppb.Now()
		}
		b.Status.Conditions = []*meridianv1.Condition{cond}
		b.Status.Clusters = want.GetStatus().GetClusters()
		b.Status.ObservedGeneration = want.GetStatus().GetObservedGeneration()
	}
}

// appendHistory adds a move to the binding's history, keeping the last
// MaxHistory.
func appendHistory(b *meridianv1.ResourceBinding, typ string, from, to []*meridianv1.TargetCluster, reason string, now time.Time) {
	b.Status.History = append(b.Status.History, &meridianv1.PlacementMove{
		Time: timestamppb.New(now), Type: typ, Reason: reason,
		From: cloneTargets(from), To: cloneTargets(to),
	})
	if n := len(b.Status.History); n > MaxHistory {
		b.Status.History = slices.Clone(b.Status.History[n-MaxHistory:])
	}
}

func cloneTargets(ts []*meridianv1.TargetCluster) []*meridianv1.TargetCluster {
	out := make([]*meridianv1.TargetCluster, len(ts))
	for i, t := range ts {
		out[i] = proto.Clone(t).(*meridianv1.TargetCluster)
	}
	return out
}

func toTargets(ts []framework.Target) []*meridianv1.TargetCluster {
	out := make([]*meridianv1.TargetCluster, 0, len(ts))
	for _, t := range ts {
		out = append(out, &meridianv1.TargetCluster{Name: t.Cluster, Replicas: t.Replicas})
	}
	slices.SortFunc(out, func(a, b *meridianv1.TargetCluster) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

func fromTargets(ts []*meridianv1.TargetCluster) []framework.Target {
	out := make([]framework.Target, 0, len(ts))
	for _, t := range ts {
		out = append(out, framework.Target{Cluster: t.GetName(), Replicas: t.GetReplicas()})
	}
	return out
}

func replicasOn(ts []*meridianv1.TargetCluster, cluster string) (int32, bool) {
	for _, t := range ts {
		if t.GetName() == cluster {
			return t.GetReplicas(), true
		}
	}
	return 0, false
}

// gains describes where replicas went between two placements: "dc-a2 (3),
// dc-b1 (1)"; for a duplicated workload, the clusters added.
func gains(from, to []*meridianv1.TargetCluster, duplicated bool) string {
	var parts []string
	for _, t := range to {
		before, had := replicasOn(from, t.GetName())
		switch {
		case duplicated && !had:
			parts = append(parts, t.GetName())
		case !duplicated && t.GetReplicas() > before:
			parts = append(parts, fmt.Sprintf("%s (%d)", t.GetName(), t.GetReplicas()-before))
		}
	}
	if len(parts) == 0 {
		return "the clusters that already run it"
	}
	return strings.Join(parts, ", ")
}
