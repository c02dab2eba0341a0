package clusteraffinity

import (
	"context"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// clusterB is a cluster of region-b, datacenter dc-b1, provider "onprem".
var clusterB = &framework.Cluster{
	Name: "b1", Region: "region-b", Datacenter: "dc-b1", Provider: "onprem",
	Labels: map[string]string{"tier": "gold", "env": "prod"},
}

func fieldIn(key, op string, values ...string) *meridianv1.FieldSelector {
	return &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name     string
		affinity *meridianv1.ClusterAffinity
		want     framework.Code
		reason   string
	}{
		{name: "no affinity skips", affinity: nil, want: framework.Skip, reason: ReasonNoAffinity},
		{name: "empty affinity selects all", affinity: &meridianv1.ClusterAffinity{}, want: framework.Success},
		{name: "by name", affinity: &meridianv1.ClusterAffinity{ClusterNames: []string{"a1", "b1"}}, want: framework.Success},
		{
			name: "not in clusterNames", affinity: &meridianv1.ClusterAffinity{ClusterNames: []string{"a1", "a2"}},
			want: framework.UnschedulableAndUnresolvable, reason: `cluster "b1" is not in clusterNames [a1 a2]`,
		},
		{
			name: "excluded wins over clusterNames", affinity: &meridianv1.ClusterAffinity{ClusterNames: []string{"b1"}, Exclude: []string{"b1"}},
			want: framework.UnschedulableAndUnresolvable, reason: `cluster "b1" is excluded`,
		},
		{name: "region in", affinity: &meridianv1.ClusterAffinity{FieldSelector: fieldIn("region", "In", "region-a", "region-b")}, want: framework.Success},
		{
			name: "region not in", affinity: &meridianv1.ClusterAffinity{FieldSelector: fieldIn("region", "In", "region-a")},
			want: framework.UnschedulableAndUnresolvable, reason: `region "region-b" is not in [region-a]`,
		},
		{
			name: "datacenter NotIn", affinity: &meridianv1.ClusterAffinity{FieldSelector: fieldIn("datacenter", "NotIn", "dc-b1")},
			want: framework.UnschedulableAndUnresolvable, reason: `datacenter "dc-b1" is in [dc-b1]`,
		},
		{name: "provider NotIn other", affinity: &meridianv1.ClusterAffinity{FieldSelector: fieldIn("provider", "NotIn", "aws")}, want: framework.Success},
		{
			name: "labels match",
			affinity: &meridianv1.ClusterAffinity{LabelSelector: &meridianv1.LabelSelector{
				MatchLabels: map[string]string{"tier": "gold"},
			}},
			want: framework.Success,
		},
		{
			name: "labels do not match",
			affinity: &meridianv1.ClusterAffinity{LabelSelector: &meridianv1.LabelSelector{
				MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "env", Operator: "In", Values: []string{"staging"}}},
			}},
			want: framework.UnschedulableAndUnresolvable, reason: "cluster labels do not match env in (staging)",
		},
		{
			name: "all parts must match",
			affinity: &meridianv1.ClusterAffinity{
				ClusterNames:  []string{"b1"},
				LabelSelector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}},
				FieldSelector: fieldIn("datacenter", "In", "dc-a1"),
			},
			want: framework.UnschedulableAndUnresolvable, reason: `datacenter "dc-b1" is not in [dc-a1]`,
		},
		{
			name: "bad label selector operator is an error",
			affinity: &meridianv1.ClusterAffinity{LabelSelector: &meridianv1.LabelSelector{
				MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "env", Operator: "Like"}},
			}},
			want: framework.Error,
		},
		{name: "unknown field is an error", affinity: &meridianv1.ClusterAffinity{FieldSelector: fieldIn("zone", "In", "z")}, want: framework.Error},
		{name: "bad field operator is an error", affinity: &meridianv1.ClusterAffinity{FieldSelector: fieldIn("region", "Exists")}, want: framework.Error},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &framework.Snapshot{Workload: &framework.Workload{Name: "web"}, Affinity: tt.affinity}
			st := p.Filter(context.Background(), s, clusterB)
			if got := st.CodeOf(); got != tt.want {
				t.Fatalf("Filter() = %v (%+v), want %v", got, st, tt.want)
			}
			if tt.reason != "" && st.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", st.Reason, tt.reason)
			}
			if tt.want == framework.Error && st.Err == nil {
				t.Errorf("Error status without Err: %+v", st)
			}
			// The batch path answers the same.
			all := p.FilterAll(context.Background(), s, []*framework.Cluster{clusterB, clusterB})
			for i, bst := range all {
				if bst.CodeOf() != st.CodeOf() || bst.CodeOf() != framework.Error && bst.CodeOf() != framework.Skip && tt.reason != "" && bst.Reason != tt.reason {
					t.Errorf("FilterAll()[%d] = %+v, Filter() = %+v", i, bst, st)
				}
			}
		})
	}
}

func TestFilterNilSnapshotSkips(t *testing.T) {
	if got := New().Filter(context.Background(), nil, clusterB).CodeOf(); got != framework.Skip {
		t.Fatalf("Filter(nil snapshot) = %v, want Skip", got)
	}
}

func TestName(t *testing.T) {
	if got := New().Name(); got != Name || Name != "ClusterAffinity" {
		t.Fatalf("Name() = %q", got)
	}
}

func TestFromTerm(t *testing.T) {
	if FromTerm(nil) != nil {
		t.Fatal("FromTerm(nil) != nil")
	}
	term := &meridianv1.ClusterAffinityTerm{
		AffinityName: "primary", ClusterNames: []string{"a1"}, Exclude: []string{"a2"},
		FieldSelector: fieldIn("region", "In", "region-a"),
		LabelSelector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}},
	}
	a := FromTerm(term)
	if a.GetClusterNames()[0] != "a1" || a.GetExclude()[0] != "a2" || a.GetFieldSelector() != term.GetFieldSelector() || a.GetLabelSelector() != term.GetLabelSelector() {
		t.Fatalf("FromTerm() = %v", a)
	}
	ok, _, err := Matches(a, clusterB)
	if err != nil || ok {
		t.Fatalf("Matches(FromTerm) = %v, %v; want no match", ok, err)
	}
}

func TestMatchesNilAffinity(t *testing.T) {
	ok, why, err := Matches(nil, clusterB)
	if !ok || why != "" || err != nil {
		t.Fatalf("Matches(nil) = %v, %q, %v", ok, why, err)
	}
}
