package host

import (
	"github.com/meridian-fed/meridian/policies/framework"
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// This file converts the engine's framework types to the wire types of
// meridian.plugin.v1 and back; nothing outside this package sees the
// latter. Label and annotation maps are shared, not copied: the snapshot is
// read-only and the messages live only for one call.

func workloadToProto(w *framework.Workload) *pluginv1.Workload {
	if w == nil {
		return nil
	}
	pw := &pluginv1.Workload{
		Kind:        w.Kind,
		Namespace:   w.Namespace,
		Name:        w.Name,
		Uid:         w.UID,
		Generation:  w.Generation,
		Labels:      w.Labels,
		Annotations: w.Annotations,
		Replicas:    w.Replicas,
		Divisible:   w.Divisible,
		PerReplica:  resourcesToProto(w.PerReplica),
	}
	if len(w.Tolerations) > 0 {
		pw.Tolerations = make([]*pluginv1.Toleration, 0, len(w.Tolerations))
		for _, t := range w.Tolerations {
			if t == nil {
				continue
			}
			pw.Tolerations = append(pw.Tolerations, &pluginv1.Toleration{
				Key: t.GetKey(), Operator: t.GetOperator(), Value: t.GetValue(), Effect: t.GetEffect(),
				TolerationSeconds: t.TolerationSeconds,
			})
		}
	}
	return pw
}

// clustersToProto converts a batch, with one allocation for all of its
// messages.
func clustersToProto(cs []*framework.Cluster) []*pluginv1.Cluster {
	all := make([]pluginv1.Cluster, len(cs))
	out := make([]*pluginv1.Cluster, len(cs))
	for i, c := range cs {
		pc := &all[i]
		pc.Name, pc.Region, pc.Datacenter, pc.Provider = c.Name, c.Region, c.Datacenter, c.Provider
		pc.Labels = c.Labels
		pc.Unschedulable = c.Unschedulable
		pc.Health = healthToProto(c.Health)
		pc.Allocatable = resourcesToProto(c.Allocatable)
		pc.Available = resourcesToProto(c.Available)
		if len(c.Taints) > 0 {
			pc.Taints = make([]*pluginv1.Taint, 0, len(c.Taints))
			for _, t := range c.Taints {
				if t != nil {
					pc.Taints = append(pc.Taints, &pluginv1.Taint{Key: t.GetKey(), Value: t.GetValue(), Effect: t.GetEffect()})
				}
			}
		}
		out[i] = pc
	}
	return out
}

func resourcesToProto(r framework.Resources) *pluginv1.Resources {
	return &pluginv1.Resources{MilliCpu: r.MilliCPU, MemoryBytes: r.Memory, Pods: r.Pods}
}

func healthToProto(h framework.Health) pluginv1.Health {
	switch h {
	case framework.HealthReady:
		return pluginv1.Health_HEALTH_READY
	case framework.HealthSuspect:
		return pluginv1.Health_HEALTH_SUSPECT
	case framework.HealthUnreachable:
		return pluginv1.Health_HEALTH_UNREACHABLE
	case framework.HealthUnknown:
		return pluginv1.Health_HEALTH_UNKNOWN
	}
	return pluginv1.Health_HEALTH_UNSPECIFIED
}

func targetsToProto(ts []framework.Target) []*pluginv1.Target {
	out := make([]*pluginv1.Target, len(ts))
	for i, t := range ts {
		out[i] = &pluginv1.Target{Cluster: t.Cluster, Replicas: t.Replicas}
	}
	return out
}

// codeFromProto maps a plugin's verdict to the engine's code; false for
// CODE_UNSPECIFIED, CODE_ERROR and codes this host does not know (the
// caller applies the failure mode to those).
func codeFromProto(c pluginv1.Code) (framework.Code, bool) {
	switch c {
	case pluginv1.Code_CODE_SUCCESS:
		return framework.Success, true
	case pluginv1.Code_CODE_UNSCHEDULABLE:
		return framework.Unschedulable, true
	case pluginv1.Code_CODE_UNSCHEDULABLE_AND_UNRESOLVABLE:
		return framework.UnschedulableAndUnresolvable, true
	case pluginv1.Code_CODE_SKIP:
		return framework.Skip, true
	}
	return framework.Error, false
}
