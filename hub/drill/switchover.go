package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// placeAll computes, before anything changes, where each workload's
// replicas go: the placement engine with the scope's clusters failed, as
// failover would place them.
func (e *execution) placeAll(ctx context.Context, clusters []*framework.Cluster) (string, error) {
	r := e.r
	var pols []*placement.Policy
	for _, k := range []*resource.Kind{ppKind, cppKind} {
		objs, _, err := r.cfg.Store.List(ctx, k, "", nil)
		if err != nil {
			return "", fmt.Errorf("failed to list %s: %w", k.Plural, err)
		}
		for _, o := range objs {
			pols = append(pols, placement.PolicyOf(o))
		}
	}
	failed := sortedKeys(e.scope)
	for _, w := range e.ws {
		var mine []*placement.Policy
		for _, p := range pols {
			if p.Kind == "ClusterPropagationPolicy" || p.Namespace == w.ns() {
				mine = append(mine, p)
			}
		}
		pol := placement.SelectPolicy(w.obj, mine)
		if e.spec.GetMode() == ModeUnplanned && failover.BehaviorOf(pol).Disabled {
			w.noFailover = "its policy disables failover: a real failure would leave it down"
		}
		snap := placement.SnapshotFor(w.obj, pol, clusters, w.binding)
		snap.Fresh = false
		snap.Failed = append(snap.Failed, failed...)
		res := r.cfg.Engine.Place(ctx, snap)
		if !res.Status.IsSuccess() {
			return fmt.Sprintf("no placement for %s off the scope: %s", w.id(), res.Status.Reason), nil
		}
		for _, t := range res.Targets {
			if e.scope[t.Cluster] || t.Replicas == 0 {
				continue
			}
			w.targets = append(w.targets, &meridianv1.TargetCluster{Name: t.Cluster, Replicas: t.Replicas})
		}
		if len(w.targets) == 0 {
			return fmt.Sprintf("no placement for %s off the scope", w.id()), nil
		}
		w.result.To = cloneTargets(w.targets)
	}
	return "", nil
}

// runPlanned is a switchover: the replicas come up at the targets while
// the source keeps its own, then the source drains; the RTO is the time a
// workload had fewer ready replicas than desired. A singleton cannot come
// up first: its copies in the scope stop (fenced) before its targets get
// it, and its RTO runs from the stop to its replicas ready at the targets.
// Then the original placement is restored the same way.
func (e *execution) runPlanned(ctx context.Context) error {
	start := e.now()
	deadline := e.deadline(start)
	singletons := 0
	err := each(e.ws, func(w *workload) error {
		e.measureRPO(w)
		w.result.DisruptedAt = ts(start)
		if w.singleton {
			return e.moveHeld(ctx, w, w.original, w.targets, deadline, func() { w.downSince = e.now() })
		}
		return e.hold(ctx, w, union(w.original, w.targets))
	})
	if err != nil {
		return err
	}
	for _, w := range e.ws {
		if w.singleton {
			singletons++
		}
	}
	if singletons > 0 {
		e.step("TargetsUp", "replicas added on the targets of %d workloads; the source keeps its own, except %d singletons: stopped on the source first, then moved", len(e.ws), singletons)
	} else {
		e.step("TargetsUp", "replicas added on the targets of %d workloads; the source keeps its own", len(e.ws))
	}
	err = e.wait(ctx, "the targets' readiness", deadline, e.trackDown(func(w *workload, o resource.Object, now time.Time) bool {
		return readyAt(o, w.targets)
	}))
	if err != nil {
		return err
	}
	e.step("TargetsReady", "every target has its replicas ready")
	if err := each(e.ws, func(w *workload) error { return e.hold(ctx, w, w.targets) }); err != nil {
		return err
	}
	e.step("Drain", "the scope's replicas are removed from %d workloads", len(e.ws))
	err = e.wait(ctx, "the drain", deadline, e.trackDown(func(w *workload, o resource.Object, now time.Time) bool {
		for _, c := range clusterStatus(o) {
			if e.scope[c.GetCluster()] && (c.GetCurrent() > 0 || c.GetReplicas() > 0) {
				return false
			}
		}
		return readyAt(o, w.targets)
	}))
	if err != nil {
		return err
	}
	now := e.now()
	for _, w := range e.ws {
		if !w.downSince.IsZero() {
			w.down += now.Sub(w.downSince)
		}
		e.recovered(w, w.down, now)
	}
	e.step("Drained", "the scope runs none of the workloads; worst time below the desired ready replicas %s", worstDown(e.ws))
	return e.failback(ctx)
}

// trackDown wraps a per-workload condition into a wait condition that
// also accumulates each workload's time below its desired ready replicas.
func (e *execution) trackDown(cond func(w *workload, o resource.Object, now time.Time) bool) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		objs, err := e.objects(ctx, "")
		if err != nil {
			return false, err
		}
		now := e.now()
		all := true
		for _, w := range e.ws {
			o := objs[w.id()]
			if o == nil {
				return false, fmt.Errorf("%s was deleted during the drill", w.id())
			}
			below := readyTotal(o) < desiredOf(o)
			if w.singleton && !w.downSince.IsZero() && !readyAt(o, w.targets) {
				below = true // its copy stopped at downSince: down until the targets' is ready
			}
			switch {
			case below && w.downSince.IsZero():
				w.downSince = now
			case !below && !w.downSince.IsZero():
				w.down += now.Sub(w.downSince)
				w.downSince = time.Time{}
			}
			if !cond(w, o, now) {
				all = false
			}
		}
		return all, nil
	}
}

func worstDown(ws []*workload) time.Duration {
	var d time.Duration
	for _, w := range ws {
		d = max(d, w.down)
	}
	return d.Round(time.Millisecond)
}

// runUnplanned is a simulated disaster, recovered by the real failover
// path: each workload's binding is marked with the scope's clusters failed
// (failover.MarkDrillFailure) and the failover controller on the hub
// leader treats them as Unreachable for that workload alone — after the
// policy's toleration it re-places the replicas (rate limit, same
// datacenter and region first, spread, the failover plugins), fences a
// singleton (Revoke, then Release until its
// epoch), and records the move (event FailedOver, metrics, the binding's
// history). The scope stops serving at the mark: the works controller
// drops the marked clusters' Works at once (hub/federation, targets), as a
// disaster would. The RTO runs from the mark (the simulated detection) to the
// replicas ready where failover put them. Then the drill removes the mark
// and restores the placement before it (restore).
func (e *execution) runUnplanned(ctx context.Context) error {
	start := e.now()
	deadline := e.deadline(start)
	err := each(e.ws, func(w *workload) error {
		e.measureRPO(w)
		if w.noFailover != "" {
			return nil
		}
		at := e.now()
		w.result.DisruptedAt = ts(at)
		w.epoch = w.binding.GetSpec().GetFencingEpoch()
		return e.holdWith(ctx, w, func(b *meridianv1.ResourceBinding) {
			failover.MarkDrillFailure(b, targetNames(w.from), at)
		})
	})
	if err != nil {
		return err
	}
	off := 0
	for _, w := range e.ws {
		if w.noFailover != "" {
			off++
			w.result.Message = w.noFailover
			w.result.RtoMet = false
			w.ready = true
		}
	}
	detail := fmt.Sprintf("%s marked failed for %d workloads: the failover controller moves them as off an Unreachable cluster, after their policy's toleration",
		strings.Join(sortedKeys(e.scope), ", "), len(e.ws)-off)
	if off > 0 {
		detail += fmt.Sprintf(" (%d not: their policy disables failover)", off)
	}
	e.step("Disruption", "%s", detail)
	moving := len(e.ws) - off
	var first, last time.Duration
	err = e.wait(ctx, "the failover", deadline, func(ctx context.Context) (bool, error) {
		objs, err := e.objects(ctx, "")
		if err != nil {
			return false, err
		}
		bs, err := e.bindings(ctx)
		if err != nil {
			return false, err
		}
		now := e.now()
		all := true
		for _, w := range e.ws {
			if w.ready {
				continue
			}
			o := objs[w.id()]
			b := bs[w.ns()+"/"+w.binding.GetMetadata().GetName()]
			if o == nil || b == nil {
				return false, fmt.Errorf("%s was deleted during the drill", w.id())
			}
			if !w.moved {
				if runsOn(b.GetSpec().GetClusters(), w.from) {
					all = false
					continue
				}
				e.failedOver(w, b)
				after := now.Sub(w.result.GetDisruptedAt().AsTime())
				if moving--; first == 0 || after < first {
					first = after
				}
				last = max(last, after)
				if moving == 0 {
					e.step("FailedOver", "the failover controller moved %d workloads off %s: the first %s, the last %s after the disruption",
						len(e.ws)-off, strings.Join(sortedKeys(e.scope), ", "), first.Round(time.Millisecond), last.Round(time.Millisecond))
				}
			}
			if readyAt(o, w.targets) {
				e.recovered(w, now.Sub(w.result.GetDisruptedAt().AsTime()), now)
				continue
			}
			all = false
		}
		return all, nil
	})
	if err != nil {
		return err
	}
	e.step("Recovered", "every workload failed over is ready on the survivors")
	return e.failback(ctx)
}

// failedOver records that the failover controller moved w off the scope:
// its new targets, the move's history entry, and a singleton's fencing.
func (e *execution) failedOver(w *workload, b *meridianv1.ResourceBinding) {
	w.moved = true
	w.targets = cloneTargets(b.GetSpec().GetClusters())
	w.result.To = cloneTargets(w.targets)
	hist := b.GetStatus().GetHistory()
	for i := len(hist) - 1; i >= 0; i-- {
		if h := hist[i]; h.GetType() == failover.MoveFailover && !h.GetTime().AsTime().Before(w.result.GetDisruptedAt().AsTime().Truncate(time.Second)) {
			if w.result.Message == "" {
				w.result.Message = "failover: " + h.GetReason()
			}
			break
		}
	}
	if ep := b.GetSpec().GetFencingEpoch(); w.singleton && ep != w.epoch {
		e.step("Fenced", "fenced %s on %s, epoch %d", w.name(), strings.Join(targetNames(w.from), ", "), ep)
	}
	e.dirty = true
}

// runsOn reports whether targets give replicas to a cluster of from.
func runsOn(targets, from []*meridianv1.TargetCluster) bool {
	for _, t := range targets {
		if t.GetReplicas() > 0 && slices.ContainsFunc(from, func(f *meridianv1.TargetCluster) bool { return f.GetName() == t.GetName() }) {
			return true
		}
	}
	return false
}

func targetNames(ts []*meridianv1.TargetCluster) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.GetName())
	}
	return out
}

// bindings reads every binding, by namespace/name.
func (e *execution) bindings(ctx context.Context) (map[string]*meridianv1.ResourceBinding, error) {
	objs, _, err := e.r.cfg.Store.List(ctx, bindingKind, "", nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list bindings: %w", err)
	}
	out := make(map[string]*meridianv1.ResourceBinding, len(objs))
	for _, o := range objs {
		out[o.GetMetadata().GetNamespace()+"/"+o.GetMetadata().GetName()] = o.(*meridianv1.ResourceBinding)
	}
	return out, nil
}

// failback restores the placement before the drill.
func (e *execution) failback(ctx context.Context) error {
	if err := e.restore(ctx, false); err != nil {
		return err
	}
	return nil
}

// restore undoes the drill: a test drill's namespace is deleted; the
// bindings it holds get their original placement back, targets first (the
// original clusters' replicas ready before the others are removed). A
// singleton goes back stop-first instead (moveSingleton): the clusters it
// leaves, and any it was being fenced off (AnnotationFencing), are fenced
// before one write gives it its original clusters back.
func (e *execution) restore(ctx context.Context, orphan bool) error {
	if e.spec.GetMode() == ModeTest {
		return e.cleanupTest(ctx)
	}
	held, err := e.held(ctx)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	// An unplanned drill's mark goes first, with what failover recorded for
	// it: failover stops acting on the scope, and its failback has nothing
	// to bring back — the drill restores the placement before it itself.
	marked := map[string]bool{}
	for _, b := range held {
		if cs, _, _ := failover.DrillFailure(b); len(cs) > 0 {
			marked[b.GetMetadata().GetNamespace()+"/"+b.GetMetadata().GetName()] = true
		}
	}
	var movedMu sync.Mutex
	moved := map[string]bool{} // failover had moved it off a marked cluster
	if len(marked) > 0 {
		err := each(held, func(b *meridianv1.ResourceBinding) error {
			key := b.GetMetadata().GetNamespace() + "/" + b.GetMetadata().GetName()
			if !marked[key] {
				return nil
			}
			return e.writeHeld(ctx, b, func(x *meridianv1.ResourceBinding) {
				fo := slices.Clone(x.GetSpec().GetFailedOver())
				cs := failover.ClearDrillFailure(x)
				movedMu.Lock()
				moved[key] = slices.ContainsFunc(fo, func(f *meridianv1.FailedOver) bool { return slices.Contains(cs, f.GetCluster()) })
				movedMu.Unlock()
			})
		})
		if err != nil {
			return err
		}
		e.step("Unmarked", "%s no longer failed for %d workloads", strings.Join(sortedKeys(e.scope), ", "), len(marked))
		if held, err = e.held(ctx); err != nil { // failover may have moved them meanwhile
			return err
		}
	}
	objs, err := e.objects(ctx, "")
	if err != nil {
		return err
	}
	deadline := e.now().Add(e.r.cfg.MaxDuration)
	err = each(held, func(b *meridianv1.ResourceBinding) error {
		orig, _ := decodeTargets(b.GetMetadata().GetAnnotations()[AnnotationOriginal])
		ref := b.GetSpec().GetResource()
		o := objs[ref.GetKind()+"/"+ref.GetNamespace()+"/"+ref.GetName()]
		if ref.GetKind() == "StatefulSet" || o != nil && federation.IsSingleton(o) || len(pendingFencing(b)) > 0 {
			return e.moveSingleton(ctx, &singletonMove{
				kind: resource.MustLookup(ref.GetKind()), ns: ref.GetNamespace(), name: ref.GetName(),
				current: b.GetSpec().GetClusters(), to: orig, pending: pendingFencing(b), deadline: deadline,
				write: func(ctx context.Context, mutate func(*meridianv1.ResourceBinding)) error {
					return e.writeHeld(ctx, b, mutate)
				},
			})
		}
		return e.updateBinding(ctx, b, union(b.GetSpec().GetClusters(), orig), false)
	})
	if err != nil {
		return err
	}
	e.step("Failback", "the original clusters get their replicas back on %d workloads", len(held))
	t := time.NewTicker(e.r.cfg.Poll)
	defer t.Stop()
	for pending := held; len(pending) > 0; {
		objs, err := e.objects(ctx, "")
		if err != nil {
			return err
		}
		var next []*meridianv1.ResourceBinding
		for _, b := range pending {
			ref := b.GetSpec().GetResource()
			orig, _ := decodeTargets(b.GetMetadata().GetAnnotations()[AnnotationOriginal])
			if o := objs[ref.GetKind()+"/"+ref.GetNamespace()+"/"+ref.GetName()]; o != nil && !readyAt(o, orig) {
				next = append(next, b)
			}
		}
		if pending = next; len(pending) == 0 {
			break
		}
		if e.now().After(deadline) {
			e.step("Failback", "%d workloads not ready on their original clusters after %s: released anyway", len(pending), e.r.cfg.MaxDuration)
			break
		}
		if !orphan {
			_, _ = e.flush(ctx) // progress; a failed write is retried next time
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	err = each(held, func(b *meridianv1.ResourceBinding) error {
		orig, _ := decodeTargets(b.GetMetadata().GetAnnotations()[AnnotationOriginal])
		if !moved[b.GetMetadata().GetNamespace()+"/"+b.GetMetadata().GetName()] {
			return e.updateBinding(ctx, b, orig, true)
		}
		return e.writeHeld(ctx, b, func(x *meridianv1.ResourceBinding) {
			appendHistory(x, failover.MoveFailback, x.GetSpec().GetClusters(), orig, fmt.Sprintf("drill %s ended: the placement before it is restored", e.name), e.now())
			x.Spec.Clusters = cloneTargets(orig)
			delete(x.Metadata.Annotations, AnnotationDrill)
			delete(x.Metadata.Annotations, AnnotationOriginal)
		})
	})
	if err != nil {
		return err
	}
	e.step("Restored", "%d workloads have their placement before the drill back", len(held))
	return nil
}

// held lists the bindings this drill holds.
func (e *execution) held(ctx context.Context) ([]*meridianv1.ResourceBinding, error) {
	objs, _, err := e.r.cfg.Store.List(ctx, bindingKind, "", nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list bindings: %w", err)
	}
	var out []*meridianv1.ResourceBinding
	for _, o := range objs {
		if b := o.(*meridianv1.ResourceBinding); b.GetMetadata().GetAnnotations()[AnnotationDrill] == e.name {
			out = append(out, b)
		}
	}
	return out, nil
}

// hold sets w's binding to clusters, marking it held by the drill (and
// recording the original placement the first time).
func (e *execution) hold(ctx context.Context, w *workload, clusters []*meridianv1.TargetCluster) error {
	return e.holdWith(ctx, w, func(b *meridianv1.ResourceBinding) { b.Spec.Clusters = cloneTargets(clusters) })
}

// holdWith applies mutate to w's binding, marking it held by the drill
// (and recording the original placement the first time).
func (e *execution) holdWith(ctx context.Context, w *workload, mutate func(b *meridianv1.ResourceBinding)) error {
	uid := w.obj.GetMetadata().GetUid()
	_, err := e.r.cfg.Store.Update(ctx, bindingKind, w.ns(), w.binding.GetMetadata().GetName(), func(o resource.Object) error {
		b := o.(*meridianv1.ResourceBinding)
		if b.GetSpec().GetResource().GetUid() != uid {
			return fmt.Errorf("%s was replaced during the drill", w.id())
		}
		md := resource.Meta(b)
		if md.Annotations == nil {
			md.Annotations = map[string]string{}
		}
		if holder := md.Annotations[AnnotationDrill]; holder != "" && holder != e.name {
			return fmt.Errorf("%s is held by drill %s", w.id(), holder)
		}
		if _, ok := md.Annotations[AnnotationOriginal]; !ok {
			md.Annotations[AnnotationOriginal] = encodeTargets(w.original)
		}
		md.Annotations[AnnotationDrill] = e.name
		mutate(b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to update the binding of %s: %w", w.id(), err)
	}
	return nil
}

// updateBinding sets b's clusters and, with release, lets it go.
func (e *execution) updateBinding(ctx context.Context, b *meridianv1.ResourceBinding, clusters []*meridianv1.TargetCluster, release bool) error {
	return e.writeHeld(ctx, b, func(x *meridianv1.ResourceBinding) {
		x.Spec.Clusters = cloneTargets(clusters)
		if release {
			delete(x.Metadata.Annotations, AnnotationDrill)
			delete(x.Metadata.Annotations, AnnotationOriginal)
		}
	})
}

// writeHeld applies mutate to b as stored, while this drill holds it (a
// binding released already is left alone).
func (e *execution) writeHeld(ctx context.Context, b *meridianv1.ResourceBinding, mutate func(x *meridianv1.ResourceBinding)) error {
	ns, name := b.GetMetadata().GetNamespace(), b.GetMetadata().GetName()
	_, err := e.r.cfg.Store.Update(ctx, bindingKind, ns, name, func(o resource.Object) error {
		x := o.(*meridianv1.ResourceBinding)
		if x.GetMetadata().GetAnnotations()[AnnotationDrill] != e.name {
			return nil // released already
		}
		mutate(x)
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to restore binding %s/%s: %w", ns, name, err)
	}
	return nil
}

// union is a and b merged by cluster, the larger replica count winning,
// sorted by name.
func union(a, b []*meridianv1.TargetCluster) []*meridianv1.TargetCluster {
	m := map[string]int32{}
	for _, ts := range [][]*meridianv1.TargetCluster{a, b} {
		for _, t := range ts {
			m[t.GetName()] = max(m[t.GetName()], t.GetReplicas())
		}
	}
	out := make([]*meridianv1.TargetCluster, 0, len(m))
	for n, r := range m {
		out = append(out, &meridianv1.TargetCluster{Name: n, Replicas: r})
	}
	slices.SortFunc(out, func(x, y *meridianv1.TargetCluster) int { return strings.Compare(x.GetName(), y.GetName()) })
	return out
}

// encodeTargets is "cluster=replicas,..."; decodeTargets reads it back.
func encodeTargets(ts []*meridianv1.TargetCluster) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s=%d", t.GetName(), t.GetReplicas())
	}
	return strings.Join(parts, ",")
}

func decodeTargets(s string) ([]*meridianv1.TargetCluster, error) {
	var out []*meridianv1.TargetCluster
	if s == "" {
		return out, nil
	}
	for _, p := range strings.Split(s, ",") {
		name, n, ok := strings.Cut(p, "=")
		r, err := strconv.ParseInt(n, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("%q is not cluster=replicas", p)
		}
		out = append(out, &meridianv1.TargetCluster{Name: name, Replicas: int32(r)})
	}
	return out, nil
}

// appendHistory adds a move to b's history, keeping the last
// failover.MaxHistory (as failover does).
func appendHistory(b *meridianv1.ResourceBinding, typ string, from, to []*meridianv1.TargetCluster, reason string, now time.Time) {
	if b.Status == nil {
		b.Status = &meridianv1.ResourceBindingStatus{}
	}
	b.Status.History = append(b.Status.History, &meridianv1.PlacementMove{
		Time: ts(now), Type: typ, Reason: reason, From: cloneTargets(from), To: cloneTargets(to),
	})
	if n := len(b.Status.History); n > failover.MaxHistory {
		b.Status.History = slices.Clone(b.Status.History[n-failover.MaxHistory:])
	}
}
