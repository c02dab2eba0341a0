package placement

import (
	"strings"

	k8sresource "k8s.io/apimachinery/pkg/api/resource"

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
