package clusterhealth

import (
	"context"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
)

func TestFilter(t *testing.T) {
	runningHere := []framework.Target{{Cluster: "a1", Replicas: 3}}
	runningElsewhere := []framework.Target{{Cluster: "b1", Replicas: 3}}
	tests := []struct {
		name     string
		health   framework.Health
		cordoned bool
		previous []framework.Target
		fresh    bool
		want     framework.Code
		reason   string
	}{
		{name: "ready", health: framework.HealthReady, want: framework.Success},
		{name: "ready and running", health: framework.HealthReady, previous: runningHere, want: framework.Success},
		{name: "unreachable, new", health: framework.HealthUnreachable, want: framework.Unschedulable, reason: ReasonUnreachable},
		{name: "unreachable, running: failover decides", health: framework.HealthUnreachable, previous: runningHere, want: framework.Success},
		{name: "unreachable, running, fresh", health: framework.HealthUnreachable, previous: runningHere, fresh: true, want: framework.Unschedulable, reason: ReasonUnreachable},
		{name: "suspect, new", health: framework.HealthSuspect, want: framework.Unschedulable, reason: ReasonSuspect},
		{name: "suspect, running elsewhere", health: framework.HealthSuspect, previous: runningElsewhere, want: framework.Unschedulable, reason: ReasonSuspect},
		{name: "suspect, running here", health: framework.HealthSuspect, previous: runningHere, want: framework.Success},
		{name: "suspect, running here, fresh", health: framework.HealthSuspect, previous: runningHere, fresh: true, want: framework.Unschedulable, reason: ReasonSuspect},
		{name: "unknown, new", health: framework.HealthUnknown, want: framework.Unschedulable, reason: ReasonUnknown},
		{name: "unknown, running here", health: framework.HealthUnknown, previous: runningHere, want: framework.Success},
		{name: "empty health is unknown", health: "", want: framework.Unschedulable, reason: ReasonUnknown},
		{name: "unrecognized health, running", health: "Fenced", previous: runningHere, want: framework.Unschedulable, reason: `cluster health is "Fenced"`},
		{name: "cordoned, new", health: framework.HealthReady, cordoned: true, want: framework.Unschedulable, reason: ReasonCordoned},
		{name: "cordoned, running here", health: framework.HealthReady, cordoned: true, previous: runningHere, want: framework.Success},
		{name: "cordoned, running here, fresh", health: framework.HealthReady, cordoned: true, previous: runningHere, fresh: true, want: framework.Unschedulable, reason: ReasonCordoned},
		{name: "cordoned and suspect: health first", health: framework.HealthSuspect, cordoned: true, want: framework.Unschedulable, reason: ReasonSuspect},
		{name: "cordoned and unreachable, new", health: framework.HealthUnreachable, cordoned: true, want: framework.Unschedulable, reason: ReasonUnreachable},
		{name: "zero-replica target still runs here", health: framework.HealthSuspect, previous: []framework.Target{{Cluster: "a1"}}, want: framework.Success},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &framework.Snapshot{Workload: &framework.Workload{Name: "web", Replicas: 3}, Previous: tt.previous, Fresh: tt.fresh}
			c := &framework.Cluster{Name: "a1", Health: tt.health, Unschedulable: tt.cordoned}
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
	if got := p.Filter(context.Background(), nil, &framework.Cluster{Name: "a1", Health: framework.HealthReady}).CodeOf(); got != framework.Success {
		t.Errorf("Filter(nil snapshot, ready) = %v, want Success", got)
	}
	if got := p.Filter(context.Background(), &framework.Snapshot{}, nil).CodeOf(); got != framework.Unschedulable {
		t.Errorf("Filter(nil cluster) = %v, want Unschedulable", got)
	}
}

func TestName(t *testing.T) {
	if New().Name() != "ClusterHealth" {
		t.Fatalf("Name() = %q", New().Name())
	}
}

func reasonOf(st *framework.Status) string {
	if st == nil {
		return ""
	}
	return st.Reason
}
