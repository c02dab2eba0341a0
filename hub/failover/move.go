package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// evictionRecheck is the backstop re-check of an eviction waiting for its
// replacements.
const evictionRecheck = 5 * time.Second

// endEvictions ends the graceful evictions that are over: the
// replacements are ready on every target, the grace period passed, or the
// policy purges immediately. The copy on a cluster that is still
// Unreachable is purged no sooner than UnreachablePurgeDelay after the
// move: that purge (a binding write, an event, the Work's delete) reaches
// no one until the cluster is back, and when a datacenter fails, the
// writes of the moves still to make come first. done reports that it wrote the binding (the
// write brings the binding back for the next phase).
func (c *Controller) endEvictions(ctx context.Context, w *workload, now time.Time) (done bool, err error) {
	ev := w.binding.GetSpec().GetEvicting()
	if len(ev) == 0 {
		return false, nil
	}
	ready, _ := c.ready(w)
	ended := map[string]string{}
	for _, e := range ev {
		end := e.GetSince().AsTime().Add(w.behavior.GracePeriod)
		switch {
		case w.behavior.Immediately:
			ended[e.GetCluster()] = "the policy purges immediately"
		case ready && w.clusters[e.GetCluster()].health == framework.HealthUnreachable &&
			now.Before(e.GetSince().AsTime().Add(c.cfg.UnreachablePurgeDelay)) && now.Before(end):
			// The cluster cannot hear the purge yet: it yields to the
			// moves of a failover still under way, and goes at once
			// if the cluster comes back (its health queues this binding)
			// or the grace period ends, if that is sooner.
			c.requeue(w.key, min(e.GetSince().AsTime().Add(c.cfg.UnreachablePurgeDelay).Sub(now), end.Sub(now)))
		case ready:
			ended[e.GetCluster()] = "the replacements are ready"
		case !now.Before(end):
			ended[e.GetCluster()] = fmt.Sprintf("the grace period (%s) is over", w.behavior.GracePeriod)
		default:
			// Work status changes bring the binding back; this is the
			// backstop.
			c.requeue(w.key, min(end.Sub(now), evictionRecheck))
		}
	}
	if len(ended) == 0 {
		return false, nil
	}
	err = c.write(ctx, w, func(b *meridianv1.ResourceBinding) {
		b.Spec.Evicting = slices.DeleteFunc(b.Spec.Evicting, func(e *meridianv1.GracefulEviction) bool { return ended[e.GetCluster()] != "" })
	})
	if err != nil {
		return false, err
	}
	for cl, why := range ended {
		c.event(ctx, w.obj, controller.EventNormal, ReasonEvicted, "Removed the copy on %s: %s", cl, why)
	}
	return true, nil
}

// failover moves the workload off the clusters of its placement that have
// been Unreachable for the toleration. done reports that it acted (moved
// it, or is waiting for the rate limit, the fence, a veto or a placement
// that fits).
func (c *Controller) failover(ctx context.Context, w *workload, now time.Time) (done bool, err error) {
	if w.behavior.Disabled {
		return false, nil
	}
	spec := w.binding.GetSpec()
	var due []string
	var dueAt time.Time // when the last of them became due
	for _, t := range spec.GetClusters() {
		h, ok := w.clusters[t.GetName()]
		if !ok || h.health != framework.HealthUnreachable || h.since.IsZero() {
			continue
		}
		at := h.since.Add(w.behavior.Toleration)
		if now.Before(at) {
			c.requeue(w.key, at.Sub(now))
			continue
		}
		due = append(due, t.GetName())
		dueAt = maxTime(dueAt, at)
	}
	if len(due) == 0 {
		return false, nil
	}
	r := c.limiter.ReserveN(now, 1)
	if !r.OK() {
		c.requeue(w.key, time.Second)
		return true, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		c.requeue(w.key, d)
		return true, nil
	}

	snap := placement.SnapshotFor(w.obj, w.policy, c.clusterInfos(w), w.binding)
	snap.Fresh = false // failover moves as little as it can, whatever the policy did
	snap.Failed = failedSet(spec, due)
	proposal, why := c.propose(ctx, &snap, due)
	if proposal == nil {
		c.blockedEvent(ctx, w, due, ReasonFailoverBlocked, ResultBlocked, "Cannot move the workload off %s: %s", strings.Join(due, ", "), why)
		return true, nil
	}
	proposal, veto := c.hook(ctx, w, &snap, due, proposal)
	if veto != "" {
		c.blockedEvent(ctx, w, due, ReasonFailoverVetoed, ResultVetoed, "Failover off %s vetoed: %s", strings.Join(due, ", "), veto)
		return true, nil
	}

	// A singleton is released last, for a move that is decided: a release
	// fences the old copy for good (its epoch floor rises).
	epoch := spec.GetFencingEpoch()
	singleton := federation.IsSingleton(w.obj)
	drilled := slices.ContainsFunc(due, func(d string) bool { return w.drillFailed[d] })
	if singleton {
		var wait time.Duration
		// A drill-failed cluster keeps its lease: its copy is revoked, as
		// for a planned move (drill.go).
		epoch, wait, dueAt, err = c.release(ctx, w, due, drilled, dueAt, now)
		if errors.Is(err, errNoRevoker) {
			r.CancelAt(now)
			c.blockedEvent(ctx, w, due, ReasonFailoverBlocked, ResultBlocked, "Cannot fence the workload off %s for drill %s: %v", strings.Join(due, ", "), w.drill, err)
			return true, nil
		}
		if err != nil {
			r.CancelAt(now)
			return false, err
		}
		if wait > 0 {
			r.CancelAt(now) // the token goes back: nothing moved
			c.requeue(w.key, wait)
			return true, nil
		}
	}

	from := spec.GetClusters()
	to := toTargets(proposal)
	var moved []string
	var count int32
	for _, d := range due {
		r, _ := replicasOn(from, d)
		count += r
		if w.drillFailed[d] {
			moved = append(moved, fmt.Sprintf("%s (failed by drill %s for %s)", d, w.drill, now.Sub(w.clusters[d].since).Round(time.Second)))
			continue
		}
		moved = append(moved, fmt.Sprintf("%s (Unreachable for %s)", d, now.Sub(w.clusters[d].since).Round(time.Second)))
	}
	duplicated := snap.Duplicated()
	what := fmt.Sprintf("%d replicas", count)
	if duplicated {
		what = "the copy"
	}
	reason := fmt.Sprintf("moved %s from %s to %s", what, strings.Join(moved, ", "), gains(from, to, duplicated))
	err = c.write(ctx, w, c.withPlacementStatus(ctx, w, func(b *meridianv1.ResourceBinding) {
		b.Spec.Clusters = cloneTargets(to)
		for _, d := range due {
			r, _ := replicasOn(from, d)
			// A drill-failed cluster is in fact healthy: a kept copy would
			// serve next to its replacement, so it is purged at once.
			if !w.behavior.Immediately && !w.drillFailed[d] {
				b.Spec.Evicting = slices.DeleteFunc(b.Spec.Evicting, func(e *meridianv1.GracefulEviction) bool { return e.GetCluster() == d })
				b.Spec.Evicting = append(b.Spec.Evicting, &meridianv1.GracefulEviction{Cluster: d, Replicas: r, Since: timestamppb.New(now), Reason: "Unreachable"})
			}
			if i := slices.IndexFunc(b.Spec.FailedOver, func(f *meridianv1.FailedOver) bool { return f.GetCluster() == d }); i >= 0 {
				b.Spec.FailedOver[i].Replicas = max(b.Spec.FailedOver[i].GetReplicas(), r)
				b.Spec.FailedOver[i].Time = timestamppb.New(now)
			} else {
				b.Spec.FailedOver = append(b.Spec.FailedOver, &meridianv1.FailedOver{Cluster: d, Replicas: r, Time: timestamppb.New(now)})
			}
		}
		if singleton {
			b.Spec.FencingEpoch = epoch
		}
		appendHistory(b, MoveFailover, from, to, reason, now)
	}))
	if err != nil {
		for _, d := range due {
			c.metrics.failovers.WithLabelValues(d, ResultError).Inc()
		}
		return false, err
	}
	c.forget(w.key)
	if singleton {
		c.dropReleased(w.key, epoch)
	}
	c.metrics.latency.Observe(now.Sub(dueAt).Seconds())
	for _, d := range due {
		c.metrics.failovers.WithLabelValues(d, ResultMoved).Inc()
	}
	c.log.Info("failed over", "workload", w.ID(), "why", reason)
	c.event(ctx, w.obj, controller.EventWarning, ReasonFailedOver, "%s", reason)
	return true, nil
}

// failedSet is the clusters a failover snapshot keeps out: those failed
// over before (and not failed back yet) and those failing now.
func failedSet(spec *meridianv1.ResourceBindingSpec, due []string) []string {
	out := slices.Clone(due)
	for _, f := range spec.GetFailedOver() {
		if _, in := replicasOn(spec.GetClusters(), f.GetCluster()); !in && !slices.Contains(out, f.GetCluster()) {
			out = append(out, f.GetCluster())
		}
	}
	slices.Sort(out)
	return out
}

// propose is the placement without the failed clusters: for a duplicated
// workload the targets without them (the others already run a copy), for
// a divided one what the engine makes of it in steady mode. It returns
// nil and why when nothing fits.
func (c *Controller) propose(ctx context.Context, snap *framework.Snapshot, due []string) ([]framework.Target, string) {
	if snap.Duplicated() {
		var out []framework.Target
		for _, t := range snap.Previous {
			if !slices.Contains(due, t.Cluster) {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, "no other cluster runs it"
		}
		return out, ""
	}
	res := c.cfg.Engine.Place(ctx, *snap)
	if !res.Status.IsSuccess() {
		return nil, res.Status.Reason
	}
	return res.Targets, ""
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// clusterInfos is every cluster as placement sees it, sorted by name.
func (c *Controller) clusterInfos(w *workload) []*framework.Cluster {
	out := make([]*framework.Cluster, 0, len(w.clusters))
	for _, h := range w.clusters {
		out = append(out, h.info)
	}
	slices.SortFunc(out, func(a, b *framework.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// blockedEvent records a blocked or vetoed failover (at most once per
// blockedEventEvery per workload and reason) and retries it later.
func (c *Controller) blockedEvent(ctx context.Context, w *workload, due []string, reason, result, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, d := range due {
		c.metrics.failovers.WithLabelValues(d, result).Inc()
	}
	if c.noteBlocked(w.key, reason+msg, c.cfg.Now()) {
		c.log.Warn("failover held", "workload", w.ID(), "reason", reason, "why", msg)
		c.event(ctx, w.obj, controller.EventWarning, reason, "%s", msg)
	}
	c.requeue(w.key, retryBlocked)
}
