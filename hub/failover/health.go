package failover

import (
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// clusterHealth is a cluster's health (its Ready condition's reason, kept
// by the hub's health controller) and since when its Ready condition has
// had its status: for Unreachable, since when it has been unreachable
// (Suspect is Unknown, Unreachable False); for Ready, since when it has
// been Ready.
type clusterHealth struct {
	health framework.Health
	since  time.Time
	info   *framework.Cluster
}

func healthOf(cl *meridianv1.Cluster) clusterHealth {
	h := clusterHealth{health: framework.HealthUnknown, info: placement.ClusterInfo(cl)}
	for _, cond := range cl.GetStatus().GetConditions() {
		if cond.GetType() == "Ready" {
			h.health = framework.Health(cond.GetReason())
			if t := cond.GetLastTransitionTime(); t != nil {
				h.since = t.AsTime()
			}
		}
	}
	return h
}

// healths is every cluster's health, by name.
func (c *Controller) healths() map[string]clusterHealth {
	out := map[string]clusterHealth{}
	for _, o := range c.clusters.List("", nil) {
		out[o.GetMetadata().GetName()] = healthOf(o.(*meridianv1.Cluster))
	}
	return out
}

// ready reports whether every target of the binding runs its replicas
// ready: the cluster's Work of the workload reports the generation it was
// last given, and (for Deployments and StatefulSets) runs the replicas the
// target asks for, all of them ready. It reads the Works' statuses — what the
// aggregated workload status (status.clusters[]) is folded from — because
// they carry the generation they report on, so a report from before the
// move never counts. It also returns a short reason when not ready.
func (c *Controller) ready(w *workload) (bool, string) {
	md := w.obj.GetMetadata()
	name := federation.WorkName(w.kind, md.GetNamespace(), md.GetName())
	replicated := w.kind.Kind == "Deployment" || w.kind.Kind == "StatefulSet"
	for _, t := range w.binding.GetSpec().GetClusters() {
		o, ok := c.works.Get(federation.ClusterNamespace(t.GetName()), name)
		if !ok {
			return false, t.GetName() + ": no work yet"
		}
		work := o.(*meridianv1.Work)
		st := work.GetStatus().GetWorkload()
		if st == nil || st.GetObservedGeneration() != work.GetMetadata().GetGeneration() || !st.GetApplied() {
			return false, t.GetName() + ": not applied yet"
		}
		if replicated && (st.GetReplicas() != t.GetReplicas() || st.GetReadyReplicas() < t.GetReplicas()) {
			return false, t.GetName() + ": replicas not ready yet"
		}
	}
	return true, ""
}
