package resourcesfit

import (
	"context"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

var (
	divided    = &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Divided"}}
	duplicated = &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Duplicated"}}
	bigCluster = framework.Resources{MilliCPU: 16000, Memory: 64 * gi, Pods: 110}
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name      string
		replicas  int32
		divisible bool
		placement *meridianv1.Placement
		per       framework.Resources
		available framework.Resources
		alloc     framework.Resources
		previous  []framework.Target
		want      framework.Code
		reason    string
	}{
		{name: "no replicas skips", replicas: 0, want: framework.Skip, reason: ReasonNoReplicas},
		{
			name: "duplicated fits all", replicas: 3, per: framework.Resources{MilliCPU: 400, Memory: 256 * mi},
			available: framework.Resources{MilliCPU: 1200, Memory: gi, Pods: 10}, alloc: bigCluster, want: framework.Success,
		},
		{
			name: "duplicated, cpu limits", replicas: 3, per: framework.Resources{MilliCPU: 400, Memory: 256 * mi},
			available: framework.Resources{MilliCPU: 500, Memory: gi, Pods: 10}, alloc: bigCluster,
			want: framework.Unschedulable, reason: "cluster fits 1 of 3 replicas (cpu: 500m free, 1 replica requests 400m)",
		},
		{
			name: "duplicated by policy, memory limits", replicas: 4, divisible: true, placement: duplicated,
			per:       framework.Resources{MilliCPU: 100, Memory: 512 * mi},
			available: framework.Resources{MilliCPU: 8000, Memory: gi, Pods: 10}, alloc: bigCluster,
			want: framework.Unschedulable, reason: "cluster fits 2 of 4 replicas (memory: 1Gi free, 1 replica requests 512Mi)",
		},
		{
			name: "divisible without policy is duplicated", replicas: 2, divisible: true,
			per:       framework.Resources{MilliCPU: 1000},
			available: framework.Resources{MilliCPU: 1500, Memory: gi, Pods: 10}, alloc: bigCluster,
			want: framework.Unschedulable, reason: "cluster fits 1 of 2 replicas (cpu: 1500m free, 1 replica requests 1)",
		},
		{
			name: "duplicated, pods limit", replicas: 5,
			available: framework.Resources{MilliCPU: 8000, Memory: gi, Pods: 3}, alloc: bigCluster,
			want: framework.Unschedulable, reason: "cluster fits 3 of 5 replicas (pods: 3 free)",
		},
		{
			name: "divided needs one", replicas: 10, divisible: true, placement: divided,
			per:       framework.Resources{MilliCPU: 400},
			available: framework.Resources{MilliCPU: 500, Memory: gi, Pods: 10}, alloc: bigCluster, want: framework.Success,
		},
		{
			name: "divided, not even one", replicas: 10, divisible: true, placement: divided,
			per:       framework.Resources{MilliCPU: 400, Memory: 2 * gi},
			available: framework.Resources{MilliCPU: 500, Memory: gi, Pods: 10}, alloc: bigCluster,
			want: framework.Unschedulable, reason: "cluster fits no replica (memory: 1Gi free, 1 replica requests 2Gi)",
		},
		{
			name: "over-committed cluster shows 0 free", replicas: 1,
			per:       framework.Resources{MilliCPU: 100},
			available: framework.Resources{MilliCPU: -300, Memory: gi, Pods: 10}, alloc: bigCluster,
			want: framework.Unschedulable, reason: "cluster fits no replica (cpu: 0 free, 1 replica requests 100m)",
		},
		{
			name: "replicas already running count as capacity", replicas: 3,
			per:       framework.Resources{MilliCPU: 400},
			available: framework.Resources{MilliCPU: 500, Memory: gi, Pods: 10}, alloc: bigCluster,
			previous: []framework.Target{{Cluster: "a1", Replicas: 2}}, want: framework.Success,
		},
		{
			name: "reason mentions what already runs", replicas: 4,
			per:       framework.Resources{MilliCPU: 400},
			available: framework.Resources{MilliCPU: 500, Memory: gi, Pods: 10}, alloc: bigCluster,
			previous: []framework.Target{{Cluster: "a1", Replicas: 2}},
			want:     framework.Unschedulable, reason: "cluster fits 3 of 4 replicas (cpu: 500m free, 1 replica requests 400m; 2 replicas already run here)",
		},
		{
			name: "cluster reporting no capacity is not limited", replicas: 50,
			per: framework.Resources{MilliCPU: 4000, Memory: 8 * gi}, want: framework.Success,
		},
		{
			name: "workload requesting nothing fits within pods", replicas: 100,
			available: framework.Resources{MilliCPU: 1, Memory: 1, Pods: 100}, alloc: bigCluster, want: framework.Success,
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &framework.Snapshot{
				Workload: &framework.Workload{
					Kind: "Deployment", Name: "web", Replicas: tt.replicas, Divisible: tt.divisible, PerReplica: tt.per,
				},
				Placement: tt.placement, Previous: tt.previous,
			}
			c := &framework.Cluster{Name: "a1", Health: framework.HealthReady, Allocatable: tt.alloc, Available: tt.available}
			st := p.Filter(context.Background(), s, c)
			if got := st.CodeOf(); got != tt.want {
				t.Fatalf("Filter() = %v (%+v), want %v", got, st, tt.want)
			}
			if got := reasonOf(st); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestFilterNilInputs(t *testing.T) {
	p := New()
	if got := p.Filter(context.Background(), nil, &framework.Cluster{}).CodeOf(); got != framework.Skip {
		t.Errorf("Filter(nil snapshot) = %v, want Skip", got)
	}
	if got := p.Filter(context.Background(), &framework.Snapshot{}, &framework.Cluster{}).CodeOf(); got != framework.Skip {
		t.Errorf("Filter(no workload) = %v, want Skip", got)
	}
	s := &framework.Snapshot{Workload: &framework.Workload{Replicas: 1}}
	if got := p.Filter(context.Background(), s, nil).CodeOf(); got != framework.Error {
		t.Errorf("Filter(nil cluster) = %v, want Error", got)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{formatMilliCPU(500), "500m"},
		{formatMilliCPU(2000), "2"},
		{formatMemory(512 * mi), "512Mi"},
		{formatMemory(1500), "1500"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestName(t *testing.T) {
	if New().Name() != "ResourcesFit" {
		t.Fatalf("Name() = %q", New().Name())
	}
}

func reasonOf(st *framework.Status) string {
	if st == nil {
		return ""
	}
	return st.Reason
}
