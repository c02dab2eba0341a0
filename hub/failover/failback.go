package failover

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// recheck is the backstop re-check of a failback waiting for replicas to
// be ready (Work status changes bring it back sooner).
const recheck = 2 * time.Second

// failback moves replicas back to one recovered cluster of the binding's
// failedOver, one step at a time. A cluster is recovered when it is Ready
// and, unless a failback was requested (`meridian failback`), has been
// for the stabilization window; with failback Manual it waits for the
// request. Each step waits for the previous one: no eviction left, every
// target Ready and its replicas ready. The step's target is the placement
// the policy prefers (a fresh placement, the other failed clusters still
// kept out); a step moves at most MaxStep replicas towards it. When
// nothing is left to move the failedOver record is cleared. A singleton
// moves back in one step, without waiting for its replicas, fenced: the
// clusters it leaves are revoked and released (Fence, Revoker) before the
// binding moves, with the epoch the release returns.
func (c *Controller) failback(ctx context.Context, w *workload, now time.Time) (done bool, err error) {
	spec := w.binding.GetSpec()
	ann := w.binding.GetMetadata().GetAnnotations()
	_, requested := ann[AnnotationFailbackRequested]
	only := ann[AnnotationFailbackCluster]
	var back string
	for _, fo := range spec.GetFailedOver() {
		cl := fo.GetCluster()
		h, ok := w.clusters[cl]
		if !ok || h.health != framework.HealthReady {
			continue
		}
		asked := requested && (only == "" || only == cl)
		if !asked {
			if w.behavior.Manual {
				continue
			}
			if stable := h.since.Add(w.behavior.Stabilization); now.Before(stable) {
				c.requeue(w.key, stable.Sub(now))
				continue
			}
		}
		back = cl
		break
	}
	if len(spec.GetPlannedClusters()) > 0 {
		return false, nil // a policy change is moving it (planned.go)
	}
	if back == "" {
		if requested && !c.anyPending(w, only) {
			return true, c.clearRequest(ctx, w)
		}
		return false, nil
	}
	if len(spec.GetEvicting()) > 0 {
		return false, nil // the last move is not over: its end brings the binding back
	}
	for _, t := range spec.GetClusters() {
		if h := w.clusters[t.GetName()]; h.health != framework.HealthReady {
			c.requeue(w.key, recheck)
			return false, nil
		}
	}
	// A singleton moves in one step, and its copy stops as soon as the
	// step begins (Revoke): waiting for its replicas to be ready would
	// stall a step that is under way (its write conflicted, or the leader
	// changed) for good.
	singleton := federation.IsSingleton(w.obj)
	if ok, _ := c.ready(w); !ok && !singleton {
		c.requeue(w.key, recheck)
		return false, nil
	}

	snap := placement.SnapshotFor(w.obj, w.policy, c.clusterInfos(w), w.binding)
	snap.Fresh = true
	snap.Failed = slices.DeleteFunc(failedSet(spec, nil), func(cl string) bool { return cl == back })
	res := c.cfg.Engine.Place(ctx, snap)
	if !res.Status.IsSuccess() {
		c.log.Warn("failback: no placement fits", "workload", w.ID(), "cluster", back, "why", res.Status.Reason)
		c.requeue(w.key, retryBlocked)
		return false, nil
	}
	from := spec.GetClusters()
	limit := MaxStep(snap.Workload.Replicas)
	if singleton {
		limit = max(snap.Workload.Replicas, 1) // one step: it never runs in two places
	}
	next, ok := StepToward(fromTargets(from), res.Targets, snap.Duplicated(), limit)
	if !ok {
		c.requeue(w.key, recheck) // the replica count is changing: wait for the placement controller
		return false, nil
	}
	to := toTargets(next)
	complete := sameTargets(to, toTargets(res.Targets))
	moved := !sameTargets(from, to)
	reason := fmt.Sprintf("%s is back: moved to %s", back, gains(from, to, snap.Duplicated()))
	if !moved {
		reason = fmt.Sprintf("%s is back: nothing to move back (the placement the policy prefers is in force)", back)
	}

	// A singleton leaves healthy clusters: each is revoked, and the move
	// written only once Release says the member stopped its copy, with the
	// epoch it returns (fence.go).
	epoch := spec.GetFencingEpoch()
	leaving := placement.Leaves(from, to)
	fenced := singleton && len(leaving) > 0
	if fenced {
		var held bool
		if epoch, held, err = c.fencePlanned(ctx, w, leaving, now, "failback to "+back); held || err != nil {
			return held, err
		}
	}
	err = c.write(ctx, w, func(b *meridianv1.ResourceBinding) {
		b.Spec.Clusters = to
		if fenced {
			b.Spec.FencingEpoch = epoch
		}
		b.Spec.Evicting = slices.DeleteFunc(b.Spec.Evicting, func(e *meridianv1.GracefulEviction) bool {
			_, in := replicasOn(to, e.GetCluster())
			return in
		})
		if complete {
			b.Spec.FailedOver = slices.DeleteFunc(b.Spec.FailedOver, func(f *meridianv1.FailedOver) bool { return f.GetCluster() == back })
			if only == back || len(b.Spec.FailedOver) == 0 {
				delete(b.Metadata.Annotations, AnnotationFailbackRequested)
				delete(b.Metadata.Annotations, AnnotationFailbackCluster)
			}
		}
		if moved || complete {
			appendHistory(b, MoveFailback, from, to, reason, now)
		}
	})
	if err != nil {
		return false, err
	}
	if fenced {
		c.dropReleased(w.key, epoch)
	}
	if complete {
		c.metrics.failbacks.WithLabelValues(back, "done").Inc()
		c.event(ctx, w.obj, controller.EventNormal, ReasonFailedBack, "%s", reason)
	} else {
		c.metrics.failbacks.WithLabelValues(back, "step").Inc()
		c.event(ctx, w.obj, controller.EventNormal, ReasonFailbackStep, "%s", reason)
	}
	return true, nil
}

// anyPending reports whether a failback request still has a failedOver
// cluster to act on (only: the cluster it names, "" for all).
func (c *Controller) anyPending(w *workload, only string) bool {
	for _, fo := range w.binding.GetSpec().GetFailedOver() {
		if only == "" || fo.GetCluster() == only {
			return true
		}
	}
	return false
}

func (c *Controller) clearRequest(ctx context.Context, w *workload) error {
	return c.write(ctx, w, func(b *meridianv1.ResourceBinding) {
		delete(b.Metadata.Annotations, AnnotationFailbackRequested)
		delete(b.Metadata.Annotations, AnnotationFailbackCluster)
	})
}

// MaxStep is the most replicas one failback step moves: a quarter of the
// workload's replicas, rounded up, and at least one.
func MaxStep(replicas int32) int32 { return max(1, (replicas+3)/4) }

// StepToward moves current at most limit replicas towards desired: the
// clusters furthest below their desired count gain first, those furthest
// above lose first (ties by name). A duplicated workload has no counts to
// move: the step is desired itself. ok is false when current and desired
// do not hold the same number of replicas (a scale is under way).
func StepToward(current, desired []framework.Target, duplicated bool, limit int32) (next []framework.Target, ok bool) {
	if duplicated {
		return slices.Clone(desired), true
	}
	cur, want := map[string]int32{}, map[string]int32{}
	var names []string
	var have, total int64
	for _, t := range current {
		cur[t.Cluster] += t.Replicas
		have += int64(t.Replicas)
		names = append(names, t.Cluster)
	}
	for _, t := range desired {
		want[t.Cluster] += t.Replicas
		total += int64(t.Replicas)
		names = append(names, t.Cluster)
	}
	if have != total {
		return nil, false
	}
	slices.Sort(names)
	names = slices.Compact(names)
	type gap struct {
		name string
		n    int32
	}
	var up, down []gap
	for _, n := range names {
		switch d := want[n] - cur[n]; {
		case d > 0:
			up = append(up, gap{n, d})
		case d < 0:
			down = append(down, gap{n, -d})
		}
	}
	order := func(a, b gap) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.name, b.name)) }
	slices.SortFunc(up, order)
	slices.SortFunc(down, order)
	move := func(gaps []gap, sign int32) {
		left := limit
		for _, g := range gaps {
			m := min(g.n, left)
			cur[g.name] += sign * m
			left -= m
		}
	}
	move(up, 1)
	move(down, -1)
	for _, n := range names {
		if cur[n] > 0 {
			next = append(next, framework.Target{Cluster: n, Replicas: cur[n]})
		}
	}
	return next, true
}

func sameTargets(a, b []*meridianv1.TargetCluster) bool {
	return slices.EqualFunc(a, b, func(x, y *meridianv1.TargetCluster) bool {
		return x.GetName() == y.GetName() && x.GetReplicas() == y.GetReplicas()
	})
}
