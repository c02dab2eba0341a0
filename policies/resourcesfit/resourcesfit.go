// Package resourcesfit is the ResourcesFit filter: a cluster must have the
// free capacity (CPU, memory, pods) for what the placement may ask of it.
//
// How much it must fit depends on how the replicas are placed:
//   - Duplicated (a workload that is not divisible, or a policy that does
//     not divide it): every cluster runs all the replicas, so the cluster
//     must fit Workload.Replicas.
//   - Divided: the Divide stage gives each cluster what it fits (it reads
//     Snapshot.Capacity itself), so the cluster only needs room for one
//     replica to be worth considering.
//
// Capacity is Snapshot.Capacity: what the cluster's free resources fit,
// plus the replicas the current placement already runs there (they are
// counted as used in Available). A cluster that reports no capacity yet is
// not limited.
package resourcesfit

import (
	"context"
	"fmt"
	"strings"

	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Name is the plugin's name in configuration (placement.filters) and in
// reasons.
const Name = "ResourcesFit"

// ReasonNoReplicas is the reason of the Skip status: the workload's kind
// has no replicas (ConfigMap, Service, DaemonSet...), so there is nothing
// to fit.
const ReasonNoReplicas = "the workload has no replicas to fit"

// Plugin is the ResourcesFit filter. It holds no state: one Plugin serves
// every placement, concurrently.
type Plugin struct{}

var _ framework.FilterPlugin = (*Plugin)(nil)

// New returns the ResourcesFit filter. It takes no arguments.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Filter answers:
//   - Skip when the workload has no replicas (Workload.Replicas is 0);
//   - Unschedulable when the cluster's capacity is below what it needs
//     (all the replicas when duplicated, one when divided). The reason says
//     how many fit and which resource limits, such as `cluster fits 1 of 3
//     replicas (cpu: 500m free, 1 replica requests 400m)`;
//   - Success otherwise.
func (*Plugin) Filter(_ context.Context, s *framework.Snapshot, c *framework.Cluster) *framework.Status {
	if s == nil || s.Workload == nil || s.Workload.Replicas <= 0 {
		return framework.NewStatus(framework.Skip, ReasonNoReplicas)
	}
	if c == nil {
		return framework.AsStatus(fmt.Errorf("failed to fit resources: no cluster"))
	}
	need := int32(1)
	if s.Duplicated() {
		need = s.Workload.Replicas
	}
	fit := s.Capacity(c)
	if fit >= need {
		return nil
	}
	return framework.NewStatus(framework.Unschedulable, "%s", reason(s, c, fit, need))
}

// reason words a failed fit: how many replicas fit of how many are needed,
// which resource limits, and what already runs there.
func reason(s *framework.Snapshot, c *framework.Cluster, fit, need int32) string {
	var b strings.Builder
	if need == 1 {
		b.WriteString("cluster fits no replica")
	} else {
		fmt.Fprintf(&b, "cluster fits %d of %d replicas", fit, need)
	}
	var details []string
	if l, ok := limiting(s.Workload.PerReplica, c.Available); ok {
		details = append(details, l)
	}
	switch prev := s.PreviousReplicas(c.Name); {
	case prev == 1:
		details = append(details, "1 replica already runs here")
	case prev > 1:
		details = append(details, fmt.Sprintf("%d replicas already run here", prev))
	}
	if len(details) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(details, "; "))
	}
	return b.String()
}

// limiting names the resource that fits the fewest replicas (the first in
// the order cpu, memory, pods on a tie, as Snapshot.Capacity reads them)
// and says what is free and what one replica needs. ok is false when no
// resource limits (the replica requests nothing the cluster is short of).
func limiting(per, free framework.Resources) (string, bool) {
	resources := []struct {
		name       string
		need, have int64
		format     func(int64) string
	}{
		{"cpu", per.MilliCPU, free.MilliCPU, formatMilliCPU},
		{"memory", per.Memory, free.Memory, formatMemory},
		{"pods", 1, free.Pods, nil},
	}
	best, bestFit := -1, int64(0)
	for i, r := range resources {
		if r.need <= 0 {
			continue
		}
		fit := int64(0)
		if r.have > 0 {
			fit = r.have / r.need
		}
		if best < 0 || fit < bestFit {
			best, bestFit = i, fit
		}
	}
	if best < 0 || bestFit >= framework.MaxReplicas {
		return "", false
	}
	r := resources[best]
	if r.format == nil {
		return fmt.Sprintf("%s: %d free", r.name, r.have), true
	}
	return fmt.Sprintf("%s: %s free, 1 replica requests %s", r.name, r.format(max(r.have, 0)), r.format(r.need)), true
}

// formatMilliCPU renders millicores as Kubernetes does: "500m", "2".
func formatMilliCPU(m int64) string {
	return k8sresource.NewMilliQuantity(m, k8sresource.DecimalSI).String()
}

// formatMemory renders bytes as Kubernetes does: "512Mi", "1Gi", or the
// number of bytes when no binary suffix divides it.
func formatMemory(b int64) string {
	return k8sresource.NewQuantity(b, k8sresource.BinarySI).String()
}
