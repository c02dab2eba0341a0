// Package available is the AvailableCapacity scorer: it prefers clusters
// with more of their capacity free, so that new replicas go where there is
// headroom (for bursts, rolling updates and failover from another
// datacenter) rather than filling one cluster to the brim.
//
// The score is relative (free / allocatable), not absolute: a small
// cluster that is half empty scores as high as a big one that is half
// empty. Division by absolute free capacity is a Divide matter (a Divided
// policy's dynamicWeight: AvailableReplicas).
package available

import (
	"context"
	"math"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Name is the plugin's name in configuration (placement.scorers) and in
// reasons.
const Name = "AvailableCapacity"

// ReasonNoReplicas is the reason of the Skip status: the workload's kind
// has no replicas (ConfigMap, Service, DaemonSet...), so free capacity does
// not decide where it goes.
const ReasonNoReplicas = "the workload has no replicas: free capacity does not matter"

// Plugin is the AvailableCapacity scorer. It holds no state: one Plugin
// serves every placement, concurrently.
type Plugin struct{}

var _ framework.ScorePlugin = (*Plugin)(nil)

// New returns the AvailableCapacity scorer. It takes no arguments.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Score is framework.MaxScore times the mean, over the resources the
// cluster reports (CPU, memory and pods with a positive allocatable), of
// available / allocatable, each clamped to [0, 1] and the result rounded
// to the nearest integer. A cluster that reports no capacity scores 0: it
// is not known to have room. It answers Skip (score 0) for a workload
// without replicas.
func (*Plugin) Score(_ context.Context, s *framework.Snapshot, c *framework.Cluster) (int64, *framework.Status) {
	if s == nil || s.Workload == nil || s.Workload.Replicas <= 0 {
		return 0, framework.NewStatus(framework.Skip, ReasonNoReplicas)
	}
	if c == nil {
		return 0, nil
	}
	return FreeScore(c.Allocatable, c.Available), nil
}

// FreeScore is the score of a cluster with these allocatable and available
// resources (see Plugin.Score).
func FreeScore(allocatable, available framework.Resources) int64 {
	var sum float64
	n := 0
	for _, r := range []struct{ alloc, free int64 }{
		{allocatable.MilliCPU, available.MilliCPU},
		{allocatable.Memory, available.Memory},
		{allocatable.Pods, available.Pods},
	} {
		if r.alloc <= 0 {
			continue // not reported
		}
		n++
		sum += math.Min(1, math.Max(0, float64(r.free)/float64(r.alloc)))
	}
	if n == 0 {
		return 0
	}
	return int64(math.Round(framework.MaxScore * sum / float64(n)))
}
