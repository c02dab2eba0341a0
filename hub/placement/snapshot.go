package placement

import (
	"slices"
	"strings"

	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// LabelProvider is the cluster label a fieldSelector's "provider" reads.
const LabelProvider = "meridian.io/provider"

// ClusterInfo is what placement sees of a Cluster object: its topology,
// labels, taints, cordon, health (the reason of its Ready condition, which
// the health controller keeps) and capacity.
func ClusterInfo(cl *meridianv1.Cluster) *framework.Cluster {
	md, spec, st := cl.GetMetadata(), cl.GetSpec(), cl.GetStatus()
	c := &framework.Cluster{
		Name: md.GetName(), Region: spec.GetRegion(), Datacenter: spec.GetDatacenter(),
		Provider: md.GetLabels()[LabelProvider], Labels: md.GetLabels(), Taints: spec.GetTaints(),
		Unschedulable: spec.GetUnschedulable(), Health: framework.HealthUnknown,
		Allocatable: resources(st.GetAllocatable()), Available: resources(st.GetAvailable()),
	}
	for _, cond := range st.GetConditions() {
		if cond.GetType() != "Ready" {
			continue
		}
		switch h := framework.Health(cond.GetReason()); h {
		case framework.HealthReady, framework.HealthSuspect, framework.HealthUnreachable:
			c.Health = h
		}
	}
	return c
}

// resources reads cpu, memory and pods out of a quantity map; a quantity
// that does not parse counts as 0.
func resources(m map[string]string) framework.Resources {
	var r framework.Resources
	if q, err := k8sresource.ParseQuantity(m["cpu"]); err == nil {
		r.MilliCPU = q.MilliValue()
	}
	if q, err := k8sresource.ParseQuantity(m["memory"]); err == nil {
		r.Memory = q.Value()
	}
	if q, err := k8sresource.ParseQuantity(m["pods"]); err == nil {
		r.Pods = q.Value()
	}
	return r
}

// WorkloadInfo is what placement sees of a propagated object: identity,
// labels, desired replicas, whether they divide, and what one replica
// requests.
func WorkloadInfo(obj resource.Object) *framework.Workload {
	md := obj.GetMetadata()
	w := &framework.Workload{
		Kind: obj.GetKind(), Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid(),
		Generation: md.GetGeneration(), Labels: md.GetLabels(), Annotations: md.GetAnnotations(),
	}
	var tmpl *meridianv1.PodTemplateSpec
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		w.Replicas, w.Divisible, tmpl = replicasOr1(o.GetSpec().Replicas), true, o.GetSpec().GetTemplate()
	case *meridianv1.StatefulSet:
		w.Replicas, w.Divisible, tmpl = replicasOr1(o.GetSpec().Replicas), true, o.GetSpec().GetTemplate()
	case *meridianv1.Job:
		w.Replicas, tmpl = replicasOr1(o.GetSpec().Parallelism), o.GetSpec().GetTemplate()
	case *meridianv1.CronJob:
		js := o.GetSpec().GetJobTemplate().GetSpec()
		w.Replicas, tmpl = replicasOr1(js.Parallelism), js.GetTemplate()
	case *meridianv1.DaemonSet:
		tmpl = o.GetSpec().GetTemplate()
	}
	if tmpl != nil {
		w.Tolerations = tmpl.GetSpec().GetTolerations()
		for _, c := range tmpl.GetSpec().GetContainers() {
			r := resources(c.GetResources().GetRequests())
			w.PerReplica.MilliCPU += r.MilliCPU
			w.PerReplica.Memory += r.Memory
		}
	}
	return w
}

func replicasOr1(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// BindingName is the name of the ResourceBinding of an object of kind
// named name (in the object's namespace): "deployment.web".
func BindingName(kind, name string) string { return strings.ToLower(kind) + "." + name }

// SnapshotFor is the snapshot the placement controller places obj with:
// the workload, the placement of its policy (nil: none selects it), the
// clusters, and — when the object has a binding — the targets in force as
// Previous (Fresh when the policy changed since) and the clusters failover
// moved it off (the binding's failedOver, less those failback has made
// targets again) as Failed, so that a re-placement does not bring
// replicas back before failback does, nor take back what it moved.
// Failover and failback build theirs with it too, then adjust Failed and
// Fresh.
func SnapshotFor(obj resource.Object, policy *Policy, clusters []*framework.Cluster, old *meridianv1.ResourceBinding) framework.Snapshot {
	snap := framework.Snapshot{Workload: WorkloadInfo(obj), Clusters: clusters}
	if policy != nil {
		snap.Placement = policy.Spec.GetPlacement()
	}
	if old != nil {
		prev := old.GetSpec().GetClusters()
		if planned := old.GetSpec().GetPlannedClusters(); len(planned) > 0 {
			prev = planned // a singleton's move under way is the placement to keep
		}
		for _, t := range prev {
			snap.Previous = append(snap.Previous, framework.Target{Cluster: t.GetName(), Replicas: t.GetReplicas()})
		}
		snap.Fresh = !samePolicy(old, policy)
		for _, fo := range old.GetSpec().GetFailedOver() {
			// A failed-over cluster that is a target again is being failed
			// back: it keeps what failback gave it.
			if !slices.ContainsFunc(snap.Previous, func(t framework.Target) bool { return t.Cluster == fo.GetCluster() }) {
				snap.Failed = append(snap.Failed, fo.GetCluster())
			}
		}
	}
	return snap
}

// ClustersOf is every cluster of a Cluster informer as placement sees
// it, sorted by name.
func ClustersOf(clusters *controller.Informer) []*framework.Cluster {
	objs := clusters.List("", nil)
	out := make([]*framework.Cluster, 0, len(objs))
	for _, o := range objs {
		out = append(out, ClusterInfo(o.(*meridianv1.Cluster)))
	}
	slices.SortFunc(out, func(a, b *framework.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out
}
