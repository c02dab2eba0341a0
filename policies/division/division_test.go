package division

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const testUID = "0b5c6a8e-uid"

// cl is a cluster with room for pods replicas of a workload that requests
// nothing but a pod; pods < 0 makes a cluster that reports no capacity
// (unbounded).
func cl(name, region, dc string, pods int64) *framework.Cluster {
	c := &framework.Cluster{Name: name, Region: region, Datacenter: dc}
	if pods >= 0 {
		c.Allocatable = framework.Resources{Pods: 1000}
		c.Available = framework.Resources{Pods: pods}
	}
	return c
}

func scored(clusters ...*framework.Cluster) []framework.Scored {
	out := make([]framework.Scored, len(clusters))
	for i, c := range clusters {
		out[i] = framework.Scored{Cluster: c}
	}
	return out
}

func withScores(cands []framework.Scored, scores ...int64) []framework.Scored {
	for i := range cands {
		cands[i].Score = scores[i]
	}
	return cands
}

func divided(pref string, wp *meridianv1.ClusterPreferences) *meridianv1.Placement {
	return &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{
		ReplicaSchedulingType: Divided, ReplicaDivisionPreference: pref, WeightPreference: wp,
	}}
}

func static(entries ...*meridianv1.StaticClusterWeight) *meridianv1.ClusterPreferences {
	return &meridianv1.ClusterPreferences{StaticWeightList: entries}
}

func named(w int64, names ...string) *meridianv1.StaticClusterWeight {
	return &meridianv1.StaticClusterWeight{TargetCluster: &meridianv1.ClusterAffinity{ClusterNames: names}, Weight: w}
}

func snap(replicas int32, p *meridianv1.Placement, prev ...framework.Target) *framework.Snapshot {
	return &framework.Snapshot{
		Workload:  &framework.Workload{Kind: "Deployment", Name: "web", UID: testUID, Replicas: replicas, Divisible: true},
		Placement: p,
		Previous:  prev,
	}
}

func fresh(s *framework.Snapshot) *framework.Snapshot { s.Fresh = true; return s }

func t_(c string, n int32) framework.Target { return framework.Target{Cluster: c, Replicas: n} }

// byTieBreak returns the names in tie-break order for testUID.
func byTieBreak(names ...string) []string {
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int {
		ta, tb := framework.TieBreak(testUID, a), framework.TieBreak(testUID, b)
		if ta < tb {
			return -1
		}
		if ta > tb {
			return 1
		}
		return 0
	})
	return out
}

func TestDivide(t *testing.T) {
	abc := func(pods ...int64) []framework.Scored {
		return scored(cl("a", "r1", "d1", pods[0]), cl("b", "r1", "d2", pods[1]), cl("c", "r2", "d3", pods[2]))
	}
	first := byTieBreak("a", "b", "c")[0]
	equal7 := []framework.Target{t_("a", 2), t_("b", 2), t_("c", 2)}
	for i := range equal7 {
		if equal7[i].Cluster == first {
			equal7[i].Replicas = 3
		}
	}
	hier := func(regions ...*meridianv1.RegionWeight) *meridianv1.Placement {
		return divided(Weighted, &meridianv1.ClusterPreferences{HierarchicalWeights: &meridianv1.HierarchicalWeights{Regions: regions}})
	}

	tests := []struct {
		name   string
		snap   *framework.Snapshot
		cands  []framework.Scored
		want   []framework.Target
		code   framework.Code
		reason string // substring of the reason when code is not Success
	}{
		{name: "duplicated: every candidate runs all replicas",
			snap:  snap(3, &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Duplicated"}}),
			cands: abc(1, 1, 1), want: []framework.Target{t_("a", 3), t_("b", 3), t_("c", 3)}},
		{name: "no policy duplicates",
			snap: snap(2, nil), cands: abc(0, 0, 0), want: []framework.Target{t_("a", 2), t_("b", 2), t_("c", 2)}},
		{name: "kind without replicas: the targets are the set of clusters",
			snap: func() *framework.Snapshot {
				s := snap(0, divided("", nil))
				s.Workload.Kind, s.Workload.Divisible = "ConfigMap", false
				return s
			}(),
			cands: abc(0, 0, 0), want: []framework.Target{t_("a", 0), t_("b", 0), t_("c", 0)}},
		{name: "duplicated without candidates",
			snap: snap(3, nil), code: framework.Unschedulable, reason: "no cluster is feasible"},
		{name: "divided without candidates",
			snap: snap(3, divided("", nil)), code: framework.Unschedulable, reason: "no cluster is feasible"},
		{name: "divided, no preference: equal weights, the remainder by tie-break",
			snap: snap(7, divided("", nil)), cands: abc(10, 10, 10), want: equal7},
		{name: "weighted without weightPreference: equal weights",
			snap: snap(7, divided(Weighted, nil)), cands: abc(10, 10, 10), want: equal7},
		{name: "divided 0 replicas: no targets, stage ended",
			snap: snap(0, divided("", nil)), cands: abc(10, 10, 10), want: []framework.Target{}},
		{name: "equal weights with capacity overflow",
			snap: snap(9, divided("", nil)), cands: abc(1, 10, 10), want: []framework.Target{t_("a", 1), t_("b", 4), t_("c", 4)}},
		{name: "not enough capacity",
			snap: snap(6, divided("", nil)), cands: scored(cl("dc-a1", "r1", "d1", 2), cl("dc-b1", "r2", "d2", 2)),
			code: framework.Unschedulable, reason: "6 replicas requested, the feasible clusters fit 4 (dc-a1: 2, dc-b1: 2)"},

		{name: "aggregated: fewest clusters, by score then capacity",
			snap: snap(6, divided(Aggregated, nil)), cands: withScores(abc(10, 5, 4), 50, 90, 90),
			want: []framework.Target{t_("b", 5), t_("c", 1)}},
		{name: "aggregated steady: the cluster running it is filled first",
			snap: snap(6, divided(Aggregated, nil), t_("a", 3)), cands: withScores(abc(10, 5, 4), 50, 90, 90),
			want: []framework.Target{t_("a", 6)}},
		{name: "aggregated fresh ignores the placement in force",
			snap: fresh(snap(6, divided(Aggregated, nil), t_("a", 3))), cands: withScores(abc(10, 5, 4), 50, 90, 90),
			want: []framework.Target{t_("b", 5), t_("c", 1)}},
		{name: "aggregated steady scale down empties the least preferred cluster",
			snap: snap(3, divided(Aggregated, nil), t_("a", 4), t_("b", 2)), cands: withScores(abc(10, 5, 4), 50, 90, 90),
			want: []framework.Target{t_("a", 1), t_("b", 2)}},
		{name: "aggregated not enough capacity",
			snap: snap(20, divided(Aggregated, nil)), cands: abc(1, 2, 3),
			code: framework.Unschedulable, reason: "20 replicas requested, the feasible clusters fit 6 (a: 1, b: 2, c: 3)"},

		{name: "static weights 2:1, unmatched cluster gets nothing",
			snap: snap(6, divided(Weighted, static(named(2, "a"), named(1, "b")))), cands: abc(10, 10, 10),
			want: []framework.Target{t_("a", 4), t_("b", 2)}},
		{name: "static weights: the highest matching entry wins",
			snap:  snap(10, divided(Weighted, static(&meridianv1.StaticClusterWeight{TargetCluster: &meridianv1.ClusterAffinity{}, Weight: 1}, named(3, "a")))),
			cands: abc(10, 10, 10), want: []framework.Target{t_("a", 6), t_("b", 2), t_("c", 2)}},
		{name: "static weights by region field",
			snap: snap(4, divided(Weighted, static(&meridianv1.StaticClusterWeight{Weight: 1, TargetCluster: &meridianv1.ClusterAffinity{
				FieldSelector: &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "region", Operator: "In", Values: []string{"r1"}}}},
			}}))),
			cands: abc(10, 10, 10), want: []framework.Target{t_("a", 2), t_("b", 2)}},
		{name: "static weights overflow to the others by weight",
			snap: snap(9, divided(Weighted, static(named(4, "a"), named(2, "b"), named(1, "c")))), cands: abc(2, 10, 10),
			want: []framework.Target{t_("a", 2), t_("b", 5), t_("c", 2)}},
		{name: "static weights: every candidate weighs 0",
			snap: snap(3, divided(Weighted, static(named(2, "z")))), cands: abc(10, 10, 10),
			code: framework.Unschedulable, reason: "staticWeightList gives no feasible cluster a positive weight (feasible: a, b, c)"},
		{name: "static weights: capacity of the weighted clusters only",
			snap: snap(6, divided(Weighted, static(named(1, "a", "b")))), cands: abc(2, 2, 10),
			code: framework.Unschedulable, reason: "6 replicas requested, the feasible clusters with a positive weight fit 4 (a: 2, b: 2)"},
		{name: "static weights: negative weight",
			snap: snap(3, divided(Weighted, static(named(-1, "a")))), cands: abc(10, 10, 10),
			code: framework.UnschedulableAndUnresolvable, reason: "negative"},
		{name: "static weights: unknown field",
			snap: snap(3, divided(Weighted, static(&meridianv1.StaticClusterWeight{Weight: 1, TargetCluster: &meridianv1.ClusterAffinity{
				FieldSelector: &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "zone", Operator: "In", Values: []string{"z"}}}},
			}}))),
			cands: abc(10, 10, 10), code: framework.UnschedulableAndUnresolvable, reason: "unknown cluster field"},

		{name: "dynamic weights by capacity",
			snap: snap(8, divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas})), cands: abc(8, 4, 4),
			want: []framework.Target{t_("a", 4), t_("b", 2), t_("c", 2)}},
		{name: "dynamic weights, every candidate unbounded: equal",
			snap: snap(6, divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas})), cands: abc(-1, -1, -1),
			want: []framework.Target{t_("a", 2), t_("b", 2), t_("c", 2)}},
		{name: "dynamic weights, an unbounded cluster weighs as the largest bounded one",
			snap: snap(9, divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas})), cands: abc(-1, 4, 4),
			want: []framework.Target{t_("a", 3), t_("b", 3), t_("c", 3)}},
		{name: "dynamic weight unknown",
			snap: snap(3, divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: "Free"})), cands: abc(1, 1, 1),
			code: framework.UnschedulableAndUnresolvable, reason: `dynamicWeight "Free"`},
		{name: "two weight preferences",
			snap:  snap(3, divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas, StaticWeightList: []*meridianv1.StaticClusterWeight{named(1, "a")}})),
			cands: abc(1, 1, 1), code: framework.UnschedulableAndUnresolvable, reason: "more than one"},
		{name: "unknown division preference",
			snap: snap(3, divided("Packed", nil)), cands: abc(1, 1, 1),
			code: framework.UnschedulableAndUnresolvable, reason: `replicaDivisionPreference "Packed"`},

		{name: "hierarchical: regions 2:1, then datacenters, then clusters",
			snap:  snap(6, hier(&meridianv1.RegionWeight{Name: "region-a", Weight: 2}, &meridianv1.RegionWeight{Name: "region-b", Weight: 1})),
			cands: scored(cl("a1", "region-a", "dc-a1", 10), cl("a2", "region-a", "dc-a2", 10), cl("b1", "region-b", "dc-b1", 10)),
			want:  []framework.Target{t_("a1", 2), t_("a2", 2), t_("b1", 2)}},
		{name: "hierarchical: unlisted region weighs 1, weight 0 keeps out, datacenter and cluster weights",
			snap: snap(12, hier(
				&meridianv1.RegionWeight{Name: "r1", Weight: 2, Datacenters: []*meridianv1.DatacenterWeight{
					{Name: "d1", Weight: 3, Clusters: []*meridianv1.ClusterWeight{{Name: "a", Weight: 1}, {Name: "b", Weight: 2}}},
					{Name: "d2", Weight: 1}}},
				&meridianv1.RegionWeight{Name: "r3", Weight: 0})),
			cands: scored(cl("a", "r1", "d1", 50), cl("b", "r1", "d1", 50), cl("c", "r1", "d2", 50), cl("d", "r2", "d4", 50), cl("e", "r3", "d5", 50)),
			want:  []framework.Target{t_("a", 2), t_("b", 4), t_("c", 2), t_("d", 4)}},
		{name: "hierarchical: an overflow stays in its datacenter",
			snap:  snap(8, hier()),
			cands: scored(cl("x", "r1", "d1", 1), cl("y", "r1", "d1", 10), cl("z", "r1", "d2", 10)),
			want:  []framework.Target{t_("x", 1), t_("y", 3), t_("z", 4)}},
		{name: "hierarchical: every region weighs 0",
			snap:  snap(2, hier(&meridianv1.RegionWeight{Name: "r1", Weight: 0})),
			cands: scored(cl("a", "r1", "d1", 50)),
			code:  framework.Unschedulable, reason: "hierarchicalWeights gives no feasible cluster a positive weight (feasible regions: r1)"},
		{name: "hierarchical: region listed twice",
			snap:  snap(2, hier(&meridianv1.RegionWeight{Name: "r1", Weight: 1}, &meridianv1.RegionWeight{Name: "r1", Weight: 2})),
			cands: scored(cl("a", "r1", "d1", 50)),
			code:  framework.UnschedulableAndUnresolvable, reason: `region "r1" is listed twice`},

		{name: "steady scale up: only the new replicas move, to the largest deficit",
			snap: snap(8, divided("", nil), t_("a", 3), t_("b", 3)), cands: abc(10, 10, 10),
			want: []framework.Target{t_("a", 3), t_("b", 3), t_("c", 2)}},
		{name: "steady scale down: from the largest surplus",
			snap: snap(9, divided("", nil), t_("a", 5), t_("b", 4), t_("c", 3)), cands: abc(10, 10, 10),
			want: []framework.Target{t_("a", 3), t_("b", 3), t_("c", 3)}},
		{name: "steady: a lost cluster's replicas alone move",
			snap:  snap(9, divided("", nil), t_("a", 3), t_("b", 3), t_("gone", 3)),
			cands: scored(cl("a", "r1", "d1", 10), cl("b", "r1", "d1", 10), cl("d", "r1", "d1", 10)),
			want:  []framework.Target{t_("a", 3), t_("b", 3), t_("d", 3)}},
		{name: "steady: a new cluster gets nothing unless replicas are missing",
			snap: snap(6, divided("", nil), t_("a", 4), t_("b", 2)), cands: abc(10, 10, 10),
			want: []framework.Target{t_("a", 4), t_("b", 2)}},
		{name: "steady: a cluster now weighted 0 loses its replicas",
			snap: snap(6, divided(Weighted, static(named(1, "a", "b"))), t_("a", 2), t_("b", 2), t_("c", 2)), cands: abc(10, 10, 10),
			want: []framework.Target{t_("a", 3), t_("b", 3)}},
		{name: "steady: an unhealthy cluster keeps what it runs but does not grow",
			snap: snap(9, divided("", nil), t_("a", 2), t_("b", 2), t_("c", 2)),
			cands: scored(func() *framework.Cluster { c := cl("a", "r1", "d1", 10); c.Health = framework.HealthSuspect; return c }(),
				cl("b", "r1", "d1", 10), func() *framework.Cluster { c := cl("c", "r1", "d1", 10); c.Unschedulable = true; return c }()),
			want: []framework.Target{t_("a", 2), t_("b", 5), t_("c", 2)}},
		{name: "fresh: replicas go where the policy prefers",
			snap: fresh(snap(6, divided("", nil), t_("a", 6))), cands: abc(10, 10, 10),
			want: []framework.Target{t_("a", 2), t_("b", 2), t_("c", 2)}},
	}
	p := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, st := p.Divide(context.Background(), tc.snap, tc.cands)
			if got := st.CodeOf(); got != tc.code {
				t.Fatalf("code = %v (%q), want %v", got, reasonOf(st), tc.code)
			}
			if tc.code != framework.Success {
				if !strings.Contains(st.Reason, tc.reason) {
					t.Fatalf("reason = %q, want it to contain %q", st.Reason, tc.reason)
				}
				return
			}
			if res.Targets == nil {
				t.Fatalf("Targets is nil: the stage would not end")
			}
			if !slices.Equal(res.Targets, tc.want) {
				t.Fatalf("targets = %v, want %v", res.Targets, tc.want)
			}
		})
	}
}

func reasonOf(st *framework.Status) string {
	if st == nil {
		return ""
	}
	return st.Reason
}

func TestDivideBadInput(t *testing.T) {
	p := New()
	if _, st := p.Divide(context.Background(), &framework.Snapshot{}, nil); st.CodeOf() != framework.Error {
		t.Errorf("no workload: code = %v, want Error", st.CodeOf())
	}
	dup := scored(cl("a", "r", "d", 1), cl("a", "r", "d", 1))
	if _, st := p.Divide(context.Background(), snap(1, nil), dup); st.CodeOf() != framework.Error || !strings.Contains(st.Reason, "twice") {
		t.Errorf("duplicate candidate: status = %+v, want Error naming it", st)
	}
	if _, st := p.Divide(context.Background(), snap(1, nil), []framework.Scored{{}}); st.CodeOf() != framework.Error {
		t.Errorf("candidate without cluster: code = %v, want Error", st.CodeOf())
	}
	if got := p.Name(); got != Name {
		t.Errorf("Name() = %q", got)
	}
}

func TestCapacityReasonIsBounded(t *testing.T) {
	var clusters []*framework.Cluster
	for _, n := range []string{"c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10", "c11"} {
		clusters = append(clusters, cl(n, "r", "d", 1))
	}
	_, st := New().Divide(context.Background(), snap(20, divided("", nil)), scored(clusters...))
	want := "20 replicas requested, the feasible clusters fit 12 (c00: 1, c01: 1, c02: 1, c03: 1, c04: 1, c05: 1, c06: 1, c07: 1, c08: 1, c09: 1 and 2 more)"
	if st.CodeOf() != framework.Unschedulable || st.Reason != want {
		t.Fatalf("status = %+v, want reason %q", st, want)
	}
}

// TestConcurrentUse: one Plugin serves many placements at once.
func TestConcurrentUse(t *testing.T) {
	p, cands := New(), benchCandidates(300)
	s := snap(2000, divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas}), t_("c0001", 40), t_("c0002", 7))
	want, st := p.Divide(context.Background(), s, cands)
	if !st.IsSuccess() {
		t.Fatal(st.Reason)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, st := p.Divide(context.Background(), s, cands)
			if !st.IsSuccess() || !slices.Equal(got.Targets, want.Targets) {
				t.Errorf("concurrent result differs (%+v)", st)
			}
		})
	}
	wg.Wait()
}
