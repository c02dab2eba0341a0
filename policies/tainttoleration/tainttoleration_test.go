package tainttoleration

import (
	"context"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var (
	maintenance = &meridianv1.Taint{Key: "maintenance", Value: "true", Effect: EffectNoSchedule}
	drained     = &meridianv1.Taint{Key: "drained", Effect: EffectNoExecute}
	preferNot   = &meridianv1.Taint{Key: "costly", Value: "yes", Effect: EffectPreferNoSchedule}
)

func TestTolerated(t *testing.T) {
	tests := []struct {
		name string
		tol  *meridianv1.Toleration
		want bool
	}{
		{"equal same value", &meridianv1.Toleration{Key: "maintenance", Value: "true"}, true},
		{"explicit Equal same value and effect", &meridianv1.Toleration{Key: "maintenance", Operator: OperatorEqual, Value: "true", Effect: EffectNoSchedule}, true},
		{"equal other value", &meridianv1.Toleration{Key: "maintenance", Value: "false"}, false},
		{"equal other key", &meridianv1.Toleration{Key: "other", Value: "true"}, false},
		{"exists key", &meridianv1.Toleration{Key: "maintenance", Operator: OperatorExists}, true},
		{"exists key other effect", &meridianv1.Toleration{Key: "maintenance", Operator: OperatorExists, Effect: EffectNoExecute}, false},
		{"exists empty key tolerates all", &meridianv1.Toleration{Operator: OperatorExists}, true},
		{"exists empty key with effect", &meridianv1.Toleration{Operator: OperatorExists, Effect: EffectNoSchedule}, true},
		{"exists empty key other effect", &meridianv1.Toleration{Operator: OperatorExists, Effect: EffectNoExecute}, false},
		{"empty key Equal matches nothing", &meridianv1.Toleration{Value: "true"}, false},
		{"unknown operator", &meridianv1.Toleration{Key: "maintenance", Operator: "Like", Value: "true"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Tolerated([]*meridianv1.Toleration{tt.tol}, maintenance); got != tt.want {
				t.Fatalf("Tolerated(%v, %v) = %v, want %v", tt.tol, maintenance, got, tt.want)
			}
		})
	}
	if Tolerated(nil, maintenance) {
		t.Error("no tolerations tolerate a taint")
	}
	two := []*meridianv1.Toleration{{Key: "x", Operator: OperatorExists}, {Key: "maintenance", Value: "true"}}
	if !Tolerated(two, maintenance) {
		t.Error("the second toleration should match")
	}
}

func TestTaintString(t *testing.T) {
	for taint, want := range map[*meridianv1.Taint]string{
		maintenance: "maintenance=true:NoSchedule",
		drained:     "drained:NoExecute",
	} {
		if got := TaintString(taint); got != want {
			t.Errorf("TaintString() = %q, want %q", got, want)
		}
	}
}

func TestFilter(t *testing.T) {
	running := []framework.Target{{Cluster: "c1", Replicas: 2}}
	tests := []struct {
		name     string
		taints   []*meridianv1.Taint
		tols     []*meridianv1.Toleration
		previous []framework.Target
		fresh    bool
		want     framework.Code
		reason   string
	}{
		{name: "no taints", want: framework.Success},
		{name: "PreferNoSchedule is no bar", taints: []*meridianv1.Taint{preferNot}, want: framework.Success},
		{
			name: "untolerated NoSchedule, new placement", taints: []*meridianv1.Taint{maintenance},
			want: framework.Unschedulable, reason: "cluster has taint maintenance=true:NoSchedule that the policy does not tolerate",
		},
		{name: "untolerated NoSchedule, already running", taints: []*meridianv1.Taint{maintenance}, previous: running, want: framework.Success},
		{
			name: "untolerated NoSchedule, running but fresh", taints: []*meridianv1.Taint{maintenance}, previous: running, fresh: true,
			want: framework.Unschedulable,
		},
		{
			name: "untolerated NoSchedule, running elsewhere", taints: []*meridianv1.Taint{maintenance},
			previous: []framework.Target{{Cluster: "c2", Replicas: 1}}, want: framework.Unschedulable,
		},
		{
			name: "tolerated NoSchedule", taints: []*meridianv1.Taint{maintenance},
			tols: []*meridianv1.Toleration{{Key: "maintenance", Operator: OperatorExists}}, want: framework.Success,
		},
		{
			name: "untolerated NoExecute, new placement", taints: []*meridianv1.Taint{drained},
			want: framework.Unschedulable, reason: "cluster has taint drained:NoExecute that the policy does not tolerate",
		},
		{
			name: "untolerated NoExecute evicts a running workload", taints: []*meridianv1.Taint{drained}, previous: running,
			want: framework.Unschedulable, reason: "cluster has taint drained:NoExecute that the policy does not tolerate",
		},
		{
			name: "tolerated NoExecute, tolerationSeconds ignored", taints: []*meridianv1.Taint{drained},
			tols: []*meridianv1.Toleration{{Key: "drained", Operator: OperatorExists, Effect: EffectNoExecute, TolerationSeconds: ptr(int64(30))}},
			want: framework.Success,
		},
		{
			name: "tolerate-all toleration", taints: []*meridianv1.Taint{maintenance, drained, preferNot},
			tols: []*meridianv1.Toleration{{Operator: OperatorExists}}, want: framework.Success,
		},
		{
			name: "first untolerated taint is named", taints: []*meridianv1.Taint{preferNot, maintenance, drained},
			want: framework.Unschedulable, reason: "cluster has taint maintenance=true:NoSchedule that the policy does not tolerate",
		},
		{
			name: "running: NoSchedule skipped, NoExecute named", taints: []*meridianv1.Taint{maintenance, drained}, previous: running,
			want: framework.Unschedulable, reason: "cluster has taint drained:NoExecute that the policy does not tolerate",
		},
		{
			name: "one tolerated, the other not", taints: []*meridianv1.Taint{maintenance, drained},
			tols: []*meridianv1.Toleration{{Key: "drained", Operator: OperatorExists}},
			want: framework.Unschedulable, reason: "cluster has taint maintenance=true:NoSchedule that the policy does not tolerate",
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &framework.Snapshot{
				Workload:  &framework.Workload{Name: "web", Replicas: 2},
				Placement: &meridianv1.Placement{ClusterTolerations: tt.tols},
				Previous:  tt.previous, Fresh: tt.fresh,
			}
			c := &framework.Cluster{Name: "c1", Taints: tt.taints, Health: framework.HealthReady}
			st := p.Filter(context.Background(), s, c)
			if got := st.CodeOf(); got != tt.want {
				t.Fatalf("Filter() = %v (%+v), want %v", got, st, tt.want)
			}
			if tt.reason != "" && st.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", st.Reason, tt.reason)
			}
		})
	}
}

// TestFilterPodTolerationsIgnored checks that the pod template's
// tolerations do not let a workload onto a tainted cluster.
func TestFilterPodTolerationsIgnored(t *testing.T) {
	s := &framework.Snapshot{Workload: &framework.Workload{
		Name: "web", Tolerations: []*meridianv1.Toleration{{Operator: OperatorExists}},
	}}
	c := &framework.Cluster{Name: "c1", Taints: []*meridianv1.Taint{maintenance}}
	if got := New().Filter(context.Background(), s, c).CodeOf(); got != framework.Unschedulable {
		t.Fatalf("Filter() = %v, want Unschedulable", got)
	}
}

func TestName(t *testing.T) {
	if New().Name() != "TaintToleration" {
		t.Fatalf("Name() = %q", New().Name())
	}
}

func ptr[T any](v T) *T { return &v }
