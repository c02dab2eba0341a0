package placement

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// benchClusters is n clusters over 2 regions and n/10 datacenters (at
// least 3), with capacity, labels and, on every 17th, a NoSchedule taint.
func benchClusters(n int) []*framework.Cluster {
	dcs := max(3, n/10)
	out := make([]*framework.Cluster, n)
	for i := range out {
		dc := i % dcs
		region := "region-a"
		if dc%3 == 2 {
			region = "region-b"
		}
		c := &framework.Cluster{
			Name: fmt.Sprintf("c%04d", i), Region: region, Datacenter: fmt.Sprintf("dc%03d", dc),
			Labels: map[string]string{"tier": []string{"gold", "silver"}[i%2]}, Health: framework.HealthReady,
			Allocatable: framework.Resources{MilliCPU: 64000, Memory: 256 << 30, Pods: 1000},
			Available:   framework.Resources{MilliCPU: int64(8000 + 1000*(i%50)), Memory: 64 << 30, Pods: 500},
		}
		if i%17 == 0 {
			c.Taints = []*meridianv1.Taint{{Key: "maintenance", Effect: "NoSchedule"}}
		}
		out[i] = c
	}
	return out
}

// benchPolicies is a mix of what users write: no policy (duplicated), a
// divided one by static weights with an affinity, one by available
// capacity with a spread over both regions, and a hierarchical one.
func benchPolicies() []*meridianv1.Placement {
	divided := func(pref string, wp *meridianv1.ClusterPreferences) *meridianv1.ReplicaSchedulingStrategy {
		return &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Divided", ReplicaDivisionPreference: pref, WeightPreference: wp}
	}
	return []*meridianv1.Placement{
		nil,
		{
			ClusterAffinity: &meridianv1.ClusterAffinity{LabelSelector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}},
			ReplicaScheduling: divided("Weighted", &meridianv1.ClusterPreferences{StaticWeightList: []*meridianv1.StaticClusterWeight{
				{TargetCluster: &meridianv1.ClusterAffinity{FieldSelector: &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "region", Operator: "In", Values: []string{"region-a"}}}}}, Weight: 2},
				{TargetCluster: &meridianv1.ClusterAffinity{FieldSelector: &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "region", Operator: "In", Values: []string{"region-b"}}}}}, Weight: 1},
			}}),
		},
		{
			SpreadConstraints: []*meridianv1.SpreadConstraint{{SpreadByField: "region", MinGroups: 2, MaxGroups: 2}, {SpreadByField: "cluster", MaxGroups: 6}},
			ReplicaScheduling: divided("Weighted", &meridianv1.ClusterPreferences{DynamicWeight: "AvailableReplicas"}),
		},
		{
			ReplicaScheduling: divided("Weighted", &meridianv1.ClusterPreferences{HierarchicalWeights: &meridianv1.HierarchicalWeights{Regions: []*meridianv1.RegionWeight{
				{Name: "region-a", Weight: 2}, {Name: "region-b", Weight: 1},
			}}}),
		},
		{ReplicaScheduling: divided("Aggregated", nil)},
	}
}

func benchSnapshots(clusters []*framework.Cluster, workloads int) []framework.Snapshot {
	pols := benchPolicies()
	out := make([]framework.Snapshot, workloads)
	for i := range out {
		out[i] = framework.Snapshot{
			Workload: &framework.Workload{Kind: "Deployment", Namespace: "bench", Name: fmt.Sprintf("w%05d", i), UID: fmt.Sprintf("uid-%d", i),
				Replicas: int32(1 + i%20), Divisible: true, PerReplica: framework.Resources{MilliCPU: 250, Memory: 256 << 20}},
			Placement: pols[i%len(pols)],
			Clusters:  clusters,
		}
	}
	return out
}

// BenchmarkPlacement places 10,000 workloads (a mix of policies) over 100
// and 1,000 clusters with the default pipeline: placements/s with one
// worker per CPU (as the controller runs), and the p99 latency of one
// placement.
//
//	go test ./hub/placement -run '^$' -bench Placement -benchtime 3x
func BenchmarkPlacement(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clusters=%d/workloads=10000", n), func(b *testing.B) {
			e := NewDefault()
			snaps := benchSnapshots(benchClusters(n), 10000)
			workers := runtime.GOMAXPROCS(0)
			lat := make([]time.Duration, 0, b.N*len(snaps))
			var mu sync.Mutex
			failed := 0
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				next := make(chan int)
				var wg sync.WaitGroup
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						local := make([]time.Duration, 0, len(snaps)/workers+1)
						bad := 0
						for i := range next {
							t0 := time.Now()
							res := e.Place(context.Background(), snaps[i])
							local = append(local, time.Since(t0))
							if !res.Status.IsSuccess() {
								bad++
							}
						}
						mu.Lock()
						lat = append(lat, local...)
						failed += bad
						mu.Unlock()
					}()
				}
				for i := range snaps {
					next <- i
				}
				close(next)
				wg.Wait()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if failed > 0 {
				b.Fatalf("%d placements failed", failed)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "placements/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
