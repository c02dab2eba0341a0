// Package locality is the Locality scorer: it prefers the clusters that
// already run the workload, so that a re-placement (a scale, a cluster
// joining, a capacity change) keeps replicas where they are instead of
// chasing a slightly better score elsewhere. Moving replicas costs
// restarts, cold caches and cross-datacenter traffic; a placement should
// move them only when the policy or a filter says so.
//
// With the default weights (Locality 1, AvailableCapacity 1) a running
// cluster's locality bonus (MaxScore) is at least any difference in free
// capacity (at most MaxScore): a new cluster never ranks above a running
// one (at best it ties, when it is empty and the running one is full, and
// the tie-break decides), and running clusters rank among themselves by
// free capacity.
package locality

import (
	"context"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Name is the plugin's name in configuration (placement.scorers) and in
// reasons.
const Name = "Locality"

// Reasons of the Skip statuses.
const (
	// ReasonFirstPlacement: nothing runs yet, so no cluster is local.
	ReasonFirstPlacement = "first placement: the workload runs nowhere yet"
	// ReasonFresh: the snapshot asks for a placement that ignores where the
	// workload runs (its policy changed).
	ReasonFresh = "fresh placement: where the workload runs does not count"
)

// Plugin is the Locality scorer. It holds no state: one Plugin serves
// every placement, concurrently.
type Plugin struct{}

var _ framework.ScorePlugin = (*Plugin)(nil)

// New returns the Locality scorer. It takes no arguments.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Score is framework.MaxScore for a cluster in Snapshot.Previous (whatever
// its replica count there, so a duplicated workload without replicas
// counts too) and 0 for any other. It answers Skip (score 0) when
// Previous is empty (ReasonFirstPlacement) or the snapshot is Fresh
// (ReasonFresh): then every cluster would score the same, or must.
func (*Plugin) Score(_ context.Context, s *framework.Snapshot, c *framework.Cluster) (int64, *framework.Status) {
	switch {
	case s == nil || len(s.Previous) == 0:
		return 0, framework.NewStatus(framework.Skip, ReasonFirstPlacement)
	case s.Fresh:
		return 0, framework.NewStatus(framework.Skip, ReasonFresh)
	case c == nil:
		return 0, nil
	}
	for _, t := range s.Previous {
		if t.Cluster == c.Name {
			return framework.MaxScore, nil
		}
	}
	return 0, nil
}
