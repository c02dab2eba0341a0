package available

import (
	"context"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
)

func TestScore(t *testing.T) {
	const gi = int64(1) << 30
	full := framework.Resources{MilliCPU: 8000, Memory: 32 * gi, Pods: 100}
	tests := []struct {
		name      string
		replicas  int32
		alloc     framework.Resources
		available framework.Resources
		want      int64
		code      framework.Code
	}{
		{name: "no replicas skips", replicas: 0, alloc: full, available: full, code: framework.Skip},
		{name: "empty cluster", replicas: 3, alloc: full, available: full, want: 100},
		{name: "full cluster", replicas: 3, alloc: full, want: 0},
		{name: "half of everything", replicas: 3, alloc: full, available: framework.Resources{MilliCPU: 4000, Memory: 16 * gi, Pods: 50}, want: 50},
		{name: "mean of three", replicas: 3, alloc: full, available: framework.Resources{MilliCPU: 8000, Memory: 16 * gi, Pods: 0}, want: 50},
		{name: "rounded", replicas: 3, alloc: full, available: framework.Resources{MilliCPU: 8000, Memory: 0, Pods: 0}, want: 33},
		{name: "only cpu reported", replicas: 3, alloc: framework.Resources{MilliCPU: 4000}, available: framework.Resources{MilliCPU: 1000}, want: 25},
		{name: "cpu and pods reported", replicas: 1, alloc: framework.Resources{MilliCPU: 1000, Pods: 10}, available: framework.Resources{MilliCPU: 1000, Pods: 0}, want: 50},
		{name: "nothing reported", replicas: 3, want: 0},
		{name: "over-committed clamps to 0", replicas: 3, alloc: full, available: framework.Resources{MilliCPU: -100, Memory: -1, Pods: -5}, want: 0},
		{name: "more free than allocatable clamps to 1", replicas: 3, alloc: full, available: framework.Resources{MilliCPU: 16000, Memory: 64 * gi, Pods: 200}, want: 100},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &framework.Snapshot{Workload: &framework.Workload{Name: "web", Replicas: tt.replicas}}
			c := &framework.Cluster{Name: "a1", Allocatable: tt.alloc, Available: tt.available}
			got, st := p.Score(context.Background(), s, c)
			if got != tt.want || st.CodeOf() != tt.code {
				t.Fatalf("Score() = %d, %v; want %d, %v", got, st.CodeOf(), tt.want, tt.code)
			}
			if got < 0 || got > framework.MaxScore {
				t.Fatalf("Score() = %d out of [0, %d]", got, framework.MaxScore)
			}
		})
	}
}

func TestScoreNilInputs(t *testing.T) {
	p := New()
	if _, st := p.Score(context.Background(), nil, &framework.Cluster{}); !st.IsSkip() {
		t.Errorf("Score(nil snapshot) = %v, want Skip", st.CodeOf())
	}
	if _, st := p.Score(context.Background(), &framework.Snapshot{}, &framework.Cluster{}); !st.IsSkip() {
		t.Errorf("Score(no workload) = %v, want Skip", st.CodeOf())
	}
	s := &framework.Snapshot{Workload: &framework.Workload{Replicas: 1}}
	if got, st := p.Score(context.Background(), s, nil); got != 0 || !st.IsSuccess() {
		t.Errorf("Score(nil cluster) = %d, %v", got, st.CodeOf())
	}
}

func TestName(t *testing.T) {
	if New().Name() != "AvailableCapacity" {
		t.Fatalf("Name() = %q", New().Name())
	}
}
