package sdk

import (
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// This file converts the generated wire types to the SDK's plain types and
// back, so authors never see the former. Maps are shared with the request
// rather than copied: the SDK's types are read-only for authors.

func workloadFrom(pw *pluginv1.Workload) *Workload {
	w := &Workload{
		Kind:        pw.GetKind(),
		Namespace:   pw.GetNamespace(),
		Name:        pw.GetName(),
		UID:         pw.GetUid(),
		Generation:  pw.GetGeneration(),
		Labels:      pw.GetLabels(),
		Annotations: pw.GetAnnotations(),
		Replicas:    pw.GetReplicas(),
		Divisible:   pw.GetDivisible(),
		PerReplica:  resourcesFrom(pw.GetPerReplica()),
	}
	if tols := pw.GetTolerations(); len(tols) > 0 {
		w.Tolerations = make([]Toleration, len(tols))
		for i, t := range tols {
			w.Tolerations[i] = Toleration{Key: t.GetKey(), Operator: t.GetOperator(), Value: t.GetValue(), Effect: t.GetEffect()}
			if t.TolerationSeconds != nil {
				secs := t.GetTolerationSeconds()
				w.Tolerations[i].TolerationSeconds = &secs
			}
		}
	}
	return w
}

func clustersFrom(pcs []*pluginv1.Cluster) []Cluster {
	out := make([]Cluster, len(pcs))
	for i, pc := range pcs {
		out[i] = Cluster{
			Name:          pc.GetName(),
			Region:        pc.GetRegion(),
			Datacenter:    pc.GetDatacenter(),
			Provider:      pc.GetProvider(),
			Labels:        pc.GetLabels(),
			Unschedulable: pc.GetUnschedulable(),
			Health:        healthFrom(pc.GetHealth()),
			Allocatable:   resourcesFrom(pc.GetAllocatable()),
			Available:     resourcesFrom(pc.GetAvailable()),
		}
		if taints := pc.GetTaints(); len(taints) > 0 {
			out[i].Taints = make([]Taint, len(taints))
			for j, t := range taints {
				out[i].Taints[j] = Taint{Key: t.GetKey(), Value: t.GetValue(), Effect: t.GetEffect()}
			}
		}
	}
	return out
}

func resourcesFrom(r *pluginv1.Resources) Resources {
	return Resources{MilliCPU: r.GetMilliCpu(), Memory: r.GetMemoryBytes(), Pods: r.GetPods()}
}

func healthFrom(h pluginv1.Health) Health {
	switch h {
	case pluginv1.Health_HEALTH_READY:
		return HealthReady
	case pluginv1.Health_HEALTH_SUSPECT:
		return HealthSuspect
	case pluginv1.Health_HEALTH_UNREACHABLE:
		return HealthUnreachable
	}
	return HealthUnknown
}

func targetsFrom(pts []*pluginv1.Target) []Target {
	out := make([]Target, len(pts))
	for i, t := range pts {
		out[i] = Target{Cluster: t.GetCluster(), Replicas: t.GetReplicas()}
	}
	return out
}

func targetsToProto(ts []Target) []*pluginv1.Target {
	if len(ts) == 0 {
		return nil
	}
	out := make([]*pluginv1.Target, len(ts))
	for i, t := range ts {
		out[i] = &pluginv1.Target{Cluster: t.Cluster, Replicas: t.Replicas}
	}
	return out
}

// codeToProto maps a Filter code to the wire; false for a code the SDK
// does not define.
func codeToProto(c Code) (pluginv1.Code, bool) {
	switch c {
	case Success:
		return pluginv1.Code_CODE_SUCCESS, true
	case Unschedulable:
		return pluginv1.Code_CODE_UNSCHEDULABLE, true
	case UnschedulableAndUnresolvable:
		return pluginv1.Code_CODE_UNSCHEDULABLE_AND_UNRESOLVABLE, true
	case Skip:
		return pluginv1.Code_CODE_SKIP, true
	case Error:
		return pluginv1.Code_CODE_ERROR, true
	}
	return pluginv1.Code_CODE_UNSPECIFIED, false
}
