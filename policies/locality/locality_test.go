package locality

import (
	"context"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
)

func TestScore(t *testing.T) {
	previous := []framework.Target{{Cluster: "a1", Replicas: 2}, {Cluster: "b1"}}
	tests := []struct {
		name     string
		cluster  string
		previous []framework.Target
		fresh    bool
		want     int64
		code     framework.Code
		reason   string
	}{
		{name: "first placement skips", cluster: "a1", code: framework.Skip, reason: ReasonFirstPlacement},
		{name: "fresh skips", cluster: "a1", previous: previous, fresh: true, code: framework.Skip, reason: ReasonFresh},
		{name: "running cluster", cluster: "a1", previous: previous, want: framework.MaxScore},
		{name: "running without replicas", cluster: "b1", previous: previous, want: framework.MaxScore},
		{name: "new cluster", cluster: "a2", previous: previous, want: 0},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &framework.Snapshot{Workload: &framework.Workload{Name: "web", Replicas: 2}, Previous: tt.previous, Fresh: tt.fresh}
			got, st := p.Score(context.Background(), s, &framework.Cluster{Name: tt.cluster})
			if got != tt.want || st.CodeOf() != tt.code {
				t.Fatalf("Score() = %d, %v; want %d, %v", got, st.CodeOf(), tt.want, tt.code)
			}
			if tt.reason != "" && st.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", st.Reason, tt.reason)
			}
		})
	}
}

func TestScoreNilInputs(t *testing.T) {
	p := New()
	if _, st := p.Score(context.Background(), nil, &framework.Cluster{Name: "a1"}); !st.IsSkip() {
		t.Errorf("Score(nil snapshot) = %v, want Skip", st.CodeOf())
	}
	s := &framework.Snapshot{Previous: []framework.Target{{Cluster: "a1"}}}
	if got, st := p.Score(context.Background(), s, nil); got != 0 || !st.IsSuccess() {
		t.Errorf("Score(nil cluster) = %d, %v", got, st.CodeOf())
	}
}

func TestName(t *testing.T) {
	if New().Name() != "Locality" {
		t.Fatalf("Name() = %q", New().Name())
	}
}
