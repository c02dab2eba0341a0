package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

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
		snap := placement.SnapshotFor(w.obj, placement.SelectPolicy(w.obj, mine), clusters, w.binding)
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

// runUnplanned is a simulated disaster: the scope loses the workloads at
// once (their Works go, so its members delete the pods), the replicas are
// placed on the survivors as failover would, and the RTO is the time to
// their readiness there. Then failback.
//
// A singleton is fenced off the scope (stopped) before its targets get it;
// its disruption begins with the stop.
func (e *execution) runUnplanned(ctx context.Context) error {
	start := e.now()
	deadline := e.deadline(start)
	err := each(e.ws, func(w *workload) error {
		e.measureRPO(w)
		if w.singleton {
			w.result.DisruptedAt = ts(e.now())
			return e.moveHeld(ctx, w, w.original, w.targets, deadline, nil)
		}
		if err := e.hold(ctx, w, w.targets); err != nil {
			return err
		}
		w.result.DisruptedAt = ts(e.now())
		return nil
	})
	if err != nil {
		return err
	}
	e.step("Disruption", "%s fenced: removed from %d workloads at once; their replicas re-placed on the survivors", strings.Join(sortedKeys(e.scope), ", "), len(e.ws))
	err = e.wait(ctx, "the failover", deadline, func(ctx context.Context) (bool, error) {
		objs, err := e.objects(ctx, "")
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
			if o == nil {
				return false, fmt.Errorf("%s was deleted during the drill", w.id())
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
	e.step("Recovered", "every workload is ready on the survivors")
	return e.failback(ctx)
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
		return e.updateBinding(ctx, b, orig, true)
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
