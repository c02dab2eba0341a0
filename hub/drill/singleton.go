package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Fence decides when a singleton may start elsewhere: hub/fencing.Table
// implements it (hub/failover and hub/federation declare the same
// interface). Release answers with the workload's new fencing epoch once
// the copy on cluster cannot run any more, or how long to wait.
type Fence interface {
	Release(ctx context.Context, workload, cluster string) (epoch int64, wait time.Duration, err error)
}

// Revoker begins the planned release of a singleton off a cluster that
// keeps its lease — every move a drill makes, since a drill never makes a
// cluster unhealthy. hub/fencing.Table implements it next to Fence; the
// runner type-asserts Config.Fence.
type Revoker interface {
	Revoke(ctx context.Context, workload, cluster string) error
}

// AnnotationFencing on a held binding lists the clusters (comma-separated)
// a singleton is being fenced off for a move that no binding write has
// carried yet: written before the first Revoke, removed by the write that
// moves the singleton. Whoever restores the binding (the drill's failback,
// an abort, the next leader) follows those revocations through, so that
// the copy they stopped runs again with the new epoch instead of staying
// stopped for good.
const AnnotationFencing = "meridian.io/drill-fencing"

// errNoRevoker refuses a drill of singletons when Config.Fence cannot
// revoke: Release alone would wait for a lease that a healthy cluster
// keeps renewing.
var errNoRevoker = errors.New("the fence cannot revoke a lease (no Revoke): a singleton cannot leave a healthy cluster fenced")

// singletonMove is one move of a singleton's held binding.
type singletonMove struct {
	kind          *resource.Kind
	ns, name      string
	current, to   []*meridianv1.TargetCluster
	pending       []string // clusters revoked earlier for a move not written (AnnotationFencing)
	deadline      time.Time
	write         func(ctx context.Context, mutate func(b *meridianv1.ResourceBinding)) error
	check         func(ctx context.Context) error // the drill's guards while it waits (nil: none)
	onStopStarted func()                          // called once the copies begin to stop
}

// key is the workload as the fence names it: "namespace/Kind/name".
func (m *singletonMove) key() string { return m.ns + "/" + m.kind.Kind + "/" + m.name }

// leaving is the clusters the move takes the singleton off: those of
// current with replicas that to does not target, and those revoked before
// for a move that was not written.
func (m *singletonMove) leaving() []string {
	out := slices.Clone(m.pending)
	for _, t := range m.current {
		if t.GetReplicas() > 0 && !slices.ContainsFunc(m.to, func(x *meridianv1.TargetCluster) bool { return x.GetName() == t.GetName() }) {
			out = append(out, t.GetName())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// moveSingleton moves a singleton's binding to m.to without two copies
// running at once: the copies on the clusters it leaves stop first, then
// one binding write carries the new clusters and the new fencing epoch.
// With Config.Fence each such cluster is revoked and released until the
// fence answers with an epoch (the member reported the copy fenced);
// without one, the clusters are scaled to 0 in the binding, the runner
// waits until their Works report no replicas (or are gone), and the epoch
// is the binding's plus one. The move is recorded on the timeline.
func (e *execution) moveSingleton(ctx context.Context, m *singletonMove) error {
	leaving := m.leaving()
	if len(leaving) == 0 {
		return m.write(ctx, func(b *meridianv1.ResourceBinding) { b.Spec.Clusters = cloneTargets(m.to) })
	}
	if m.onStopStarted != nil {
		m.onStopStarted()
	}
	var released int64
	var err error
	how := ""
	if e.r.cfg.Fence != nil {
		released, err = e.fenceOff(ctx, m, leaving)
	} else {
		err = e.stopOff(ctx, m, leaving)
		how = " (no fence: stopped before the move)"
	}
	if err != nil {
		return err
	}
	var epoch int64
	err = m.write(ctx, func(b *meridianv1.ResourceBinding) {
		epoch = max(b.GetSpec().GetFencingEpoch()+1, released)
		b.Spec.Clusters = cloneTargets(m.to)
		b.Spec.FencingEpoch = epoch
		delete(b.Metadata.Annotations, AnnotationFencing)
	})
	if err != nil {
		return err
	}
	e.step("Fenced", "fenced %s on %s, epoch %d%s", m.name, strings.Join(leaving, ", "), epoch, how)
	return nil
}

// fenceOff revokes the singleton on each cluster it leaves and releases it
// until the fence answers with an epoch; it returns the highest.
func (e *execution) fenceOff(ctx context.Context, m *singletonMove, leaving []string) (int64, error) {
	rev, ok := e.r.cfg.Fence.(Revoker)
	if !ok {
		return 0, errNoRevoker
	}
	// A Revoke is a commitment: record it first, so that a restore
	// follows it through whatever happens to this drill meanwhile.
	err := m.write(ctx, func(b *meridianv1.ResourceBinding) {
		md := resource.Meta(b)
		if md.Annotations == nil {
			md.Annotations = map[string]string{}
		}
		md.Annotations[AnnotationFencing] = strings.Join(leaving, ",")
	})
	if err != nil {
		return 0, err
	}
	// Revoking again while a revocation is pending changes nothing.
	for _, cl := range leaving {
		if err := rev.Revoke(ctx, m.key(), cl); err != nil {
			return 0, fmt.Errorf("failed to revoke %s on %s: %w", m.key(), cl, err)
		}
	}
	var epoch int64
	for _, cl := range leaving {
		ep, err := e.release(ctx, m, cl)
		if err != nil {
			return 0, err
		}
		epoch = max(epoch, ep)
	}
	return epoch, nil
}

// release asks the fence to release the singleton off cluster until it
// answers with an epoch, sleeping (with ctx) as long as it says between
// asks; past m.deadline it gives up.
func (e *execution) release(ctx context.Context, m *singletonMove, cluster string) (int64, error) {
	for {
		epoch, wait, err := e.r.cfg.Fence.Release(ctx, m.key(), cluster)
		if err != nil {
			return 0, fmt.Errorf("failed to release %s on %s: %w", m.key(), cluster, err)
		}
		if wait <= 0 && epoch > 0 {
			return epoch, nil
		}
		if err := e.pause(ctx, m, max(wait, e.r.cfg.Poll), "fencing "+m.name+" off "+cluster); err != nil {
			return 0, err
		}
	}
}

// stopOff (no fence) scales the singleton to 0 on the clusters it leaves
// and waits until each one's Work reports, for its latest generation
// applied, no replicas, none current and none ready — or is gone.
func (e *execution) stopOff(ctx context.Context, m *singletonMove, leaving []string) error {
	err := m.write(ctx, func(b *meridianv1.ResourceBinding) {
		for _, t := range b.Spec.Clusters {
			if slices.Contains(leaving, t.GetName()) {
				t.Replicas = 0
			}
		}
	})
	if err != nil {
		return err
	}
	for {
		stopped := true
		for _, cl := range leaving {
			ok, err := e.workStopped(ctx, m, cl)
			if err != nil {
				return err
			}
			stopped = stopped && ok
		}
		if stopped {
			return nil
		}
		if err := e.pause(ctx, m, e.r.cfg.Poll, "stopping "+m.name+" on "+strings.Join(leaving, ", ")); err != nil {
			return err
		}
	}
}

// workStopped reports whether the singleton's Work on cluster reports
// nothing running (or is gone).
func (e *execution) workStopped(ctx context.Context, m *singletonMove, cluster string) (bool, error) {
	o, err := e.r.cfg.Store.Get(ctx, workKind, federation.ClusterNamespace(cluster), federation.WorkName(m.kind, m.ns, m.name))
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to read the Work of %s on %s: %w", m.key(), cluster, err)
	}
	w := o.(*meridianv1.Work)
	st := w.GetStatus().GetWorkload()
	return st != nil && st.GetApplied() && st.GetObservedGeneration() >= w.GetMetadata().GetGeneration() &&
		st.GetReplicas() == 0 && st.GetCurrent() == 0 && st.GetReadyReplicas() == 0, nil
}

// pause sleeps d (with ctx) between two looks at a singleton being
// stopped, after checking the guards and the deadline.
func (e *execution) pause(ctx context.Context, m *singletonMove, d time.Duration, what string) error {
	if m.check != nil {
		if err := m.check(ctx); err != nil {
			return err
		}
	}
	left := m.deadline.Sub(e.now())
	if left <= 0 {
		return &stopError{reason: what + " took too long"}
	}
	t := time.NewTimer(min(d, left))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stopCheck is the guards without a status write (safe from the
// goroutines of each): an abort requested, a cluster not Ready.
func (e *execution) stopCheck(ctx context.Context) error {
	o, err := e.r.cfg.Store.Get(ctx, drillKind, "", e.name)
	if err != nil {
		return fmt.Errorf("failed to read drill %s: %w", e.name, err)
	}
	if o.(*meridianv1.Drill).GetSpec().GetAbort() {
		return &stopError{reason: "requested by the operator (meridian drill abort)"}
	}
	clusters, err := e.r.clusters(ctx)
	if err != nil {
		return err
	}
	if bad := notReady(clusters); len(bad) > 0 {
		return &stopError{reason: "a real failure: " + strings.Join(bad, ", ")}
	}
	return nil
}

// moveHeld moves the singleton w (a workload of this drill) to to, holding
// its binding.
func (e *execution) moveHeld(ctx context.Context, w *workload, current, to []*meridianv1.TargetCluster, deadline time.Time, onStop func()) error {
	return e.moveSingleton(ctx, &singletonMove{
		kind: w.kind, ns: w.ns(), name: w.name(), current: current, to: to, deadline: deadline,
		write: func(ctx context.Context, mutate func(b *meridianv1.ResourceBinding)) error {
			return e.holdWith(ctx, w, mutate)
		},
		check: e.stopCheck, onStopStarted: onStop,
	})
}

// pendingFencing is the clusters a held binding was being fenced off
// (AnnotationFencing).
func pendingFencing(b *meridianv1.ResourceBinding) []string {
	s := b.GetMetadata().GetAnnotations()[AnnotationFencing]
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
