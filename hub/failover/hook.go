package failover

import (
	"context"
	"fmt"
	"slices"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/policies/framework"
)

// hook asks every failover plugin (Engine.FailoverPlugins, in order) about
// the proposal: a veto stops the move and its reason is returned; targets
// replace the proposal when they are valid (validTargets), and the next
// plugin sees them. A plugin that fails, or answers targets that are not
// valid, is logged, recorded as an event and skipped: failover does not
// wait for a broken plugin.
func (c *Controller) hook(ctx context.Context, w *workload, snap *framework.Snapshot, failed []string, proposal []framework.Target) ([]framework.Target, string) {
	for _, p := range c.cfg.Engine.FailoverPlugins() {
		dec, st := p.Failover(ctx, snap, slices.Clone(failed), slices.Clone(proposal))
		if st.Rejects() {
			c.log.Warn("failover plugin failed; its answer is ignored", "plugin", p.Name(), "workload", w.ID(), "err", st.AsError())
			continue
		}
		if dec.Veto {
			return nil, fmt.Sprintf("%s: %s", p.Name(), dec.Reason)
		}
		if dec.Targets == nil {
			continue
		}
		if err := validTargets(snap, dec.Targets); err != nil {
			c.log.Warn("failover plugin chose invalid targets; they are ignored", "plugin", p.Name(), "workload", w.ID(), "err", err)
			c.event(ctx, w.obj, controller.EventWarning, ReasonFailoverBlocked, "Failover plugin %s chose invalid targets (ignored): %v", p.Name(), err)
			continue
		}
		proposal = slices.Clone(dec.Targets)
	}
	return proposal, ""
}

// validTargets checks targets a plugin chose: every cluster known, not
// failed and named once; no negative count; and the replicas add up to
// the workload's (divided), or every target runs them all (duplicated).
func validTargets(snap *framework.Snapshot, targets []framework.Target) error {
	if len(targets) == 0 {
		return fmt.Errorf("no target")
	}
	known := map[string]bool{}
	for _, c := range snap.Clusters {
		known[c.Name] = true
	}
	seen := map[string]bool{}
	var sum int64
	want := snap.Workload.Replicas
	for _, t := range targets {
		switch {
		case !known[t.Cluster]:
			return fmt.Errorf("cluster %q is not known", t.Cluster)
		case snap.IsFailed(t.Cluster):
			return fmt.Errorf("cluster %s failed", t.Cluster)
		case seen[t.Cluster]:
			return fmt.Errorf("cluster %s is named twice", t.Cluster)
		case t.Replicas < 0:
			return fmt.Errorf("cluster %s gets %d replicas", t.Cluster, t.Replicas)
		case snap.Duplicated() && t.Replicas != want:
			return fmt.Errorf("cluster %s gets %d replicas, a duplicated workload runs %d everywhere", t.Cluster, t.Replicas, want)
		}
		seen[t.Cluster] = true
		sum += int64(t.Replicas)
	}
	if !snap.Duplicated() && sum != int64(want) {
		return fmt.Errorf("the targets add up to %d replicas, the workload has %d", sum, want)
	}
	return nil
}
