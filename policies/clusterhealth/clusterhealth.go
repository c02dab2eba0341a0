// Package clusterhealth is the ClusterHealth filter: it keeps new
// placements off clusters that are not healthy or are cordoned, without
// moving what already runs on a cluster that may only be having a bad
// minute.
//
// Health comes from the hub's view of the cluster (gossip and heartbeats,
// see framework.Health). The filter separates two questions:
//
//   - May the workload go there? Only a Ready, uncordoned cluster takes a
//     new placement.
//   - Must the workload leave? Only when the cluster is in a state this
//     filter does not know (such as fenced). An Unreachable, Suspect or
//     Unknown cluster keeps what it runs: whether and when to move it off
//     is failover's decision (it waits a toleration, rate-limits, keeps
//     spread), not the placement's — a placement that dropped a cluster
//     the moment its link flapped would delete its workloads when the
//     link came back; and a cordoned cluster keeps what it runs, as a
//     cordoned Kubernetes node does. (ReplicaDivision never grows a
//     cluster that takes no new placements.)
//
// A cluster "runs" the workload when it is in Snapshot.Previous and the
// snapshot is not Fresh (a fresh placement ignores where the workload
// runs, so nothing is kept).
package clusterhealth

import (
	"context"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Name is the plugin's name in configuration (placement.filters) and in
// reasons.
const Name = "ClusterHealth"

// Reasons the filter gives, for `meridian describe`.
const (
	ReasonUnreachable = "cluster is unreachable"
	ReasonSuspect     = "cluster is suspect (missed heartbeats or gossip suspicion); it takes no new placements"
	ReasonUnknown     = "cluster health is unknown (it has not reported yet); it takes no new placements"
	ReasonCordoned    = "cluster is cordoned"
	ReasonFailedOver  = "failover is moving workloads off the cluster"
)

// Plugin is the ClusterHealth filter. It holds no state: one Plugin serves
// every placement, concurrently.
type Plugin struct{}

var _ framework.FilterPlugin = (*Plugin)(nil)

// New returns the ClusterHealth filter. It takes no arguments.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Filter answers, in this order:
//   - a health this filter does not know: Unschedulable, naming it;
//   - Unreachable, Suspect, or Unknown (an empty health is Unknown):
//     Unschedulable (ReasonUnreachable, ReasonSuspect, ReasonUnknown) for
//     a new placement, Success for a cluster that runs the workload;
//   - cordoned (Cluster.Unschedulable): Unschedulable (ReasonCordoned) for
//     a new placement, Success for a cluster that runs the workload;
//   - otherwise (Ready, not cordoned): Success.
//
// Every rejection is Unschedulable, never Unresolvable: health and cordons
// change, and the placement is retried when they do. There is no Skip:
// health matters to every workload.
func (*Plugin) Filter(_ context.Context, s *framework.Snapshot, c *framework.Cluster) *framework.Status {
	if c == nil {
		return framework.NewStatus(framework.Unschedulable, ReasonUnknown)
	}
	if s != nil && s.IsFailed(c.Name) {
		return framework.NewStatus(framework.Unschedulable, ReasonFailedOver)
	}
	runs := kept(s, c)
	switch c.Health {
	case framework.HealthReady:
	case framework.HealthUnreachable:
		if !runs {
			return framework.NewStatus(framework.Unschedulable, ReasonUnreachable)
		}
	case framework.HealthSuspect:
		if !runs {
			return framework.NewStatus(framework.Unschedulable, ReasonSuspect)
		}
	case framework.HealthUnknown, "":
		if !runs {
			return framework.NewStatus(framework.Unschedulable, ReasonUnknown)
		}
	default:
		// A health added after this filter (fenced, say) is treated as the
		// worst known one: nothing new goes there, nothing stays.
		return framework.NewStatus(framework.Unschedulable, "cluster health is %q", string(c.Health))
	}
	if c.Unschedulable && !runs {
		return framework.NewStatus(framework.Unschedulable, ReasonCordoned)
	}
	return nil
}

// kept reports whether the placement keeps what c runs now: c is in the
// current placement and the snapshot is not Fresh.
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
