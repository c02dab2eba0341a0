package spread

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const testUID = "5d1f3c2a-uid"

// cl is a cluster with room for pods replicas (pods < 0: no capacity
// reported, unbounded) and the given labels (key=value pairs).
func cl(name, region, dc string, pods int64, labels ...string) *framework.Cluster {
	c := &framework.Cluster{Name: name, Region: region, Datacenter: dc, Labels: map[string]string{}}
	if pods >= 0 {
		c.Allocatable = framework.Resources{Pods: 1000}
		c.Available = framework.Resources{Pods: pods}
	}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		c.Labels[k] = v
	}
	return c
}

func sc(c *framework.Cluster, score int64) framework.Scored {
	return framework.Scored{Cluster: c, Score: score}
}

func byField(field string, minG, maxG int32) *meridianv1.SpreadConstraint {
	return &meridianv1.SpreadConstraint{SpreadByField: field, MinGroups: minG, MaxGroups: maxG}
}

func byLabel(label string, minG, maxG int32) *meridianv1.SpreadConstraint {
	return &meridianv1.SpreadConstraint{SpreadByLabel: label, MinGroups: minG, MaxGroups: maxG}
}

// snap is a snapshot of a divided workload (replicas > 0) or a duplicated
// one (replicas == 0).
func snap(replicas int32, cons ...*meridianv1.SpreadConstraint) *framework.Snapshot {
	p := &meridianv1.Placement{SpreadConstraints: cons}
	if replicas > 0 {
		p.ReplicaScheduling = &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Divided"}
	}
	return &framework.Snapshot{
		Workload:  &framework.Workload{Kind: "Deployment", Name: "web", UID: testUID, Replicas: replicas, Divisible: true},
		Placement: p,
	}
}

func withPrevious(s *framework.Snapshot, fresh bool, clusters ...string) *framework.Snapshot {
	for _, c := range clusters {
		s.Previous = append(s.Previous, framework.Target{Cluster: c, Replicas: 1})
	}
	s.Fresh = fresh
	return s
}

func names(cands []framework.Scored) []string {
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.Cluster.Name
	}
	return out
}

func TestDivide(t *testing.T) {
	// region-a: a1 (dc-a1), a2 (dc-a2); region-b: b1 (dc-b1); region-c:
	// c1, c2 (dc-c1). Region scores: a 90, b 95, c 20.
	fed := func() []framework.Scored {
		return []framework.Scored{
			sc(cl("a1", "region-a", "dc-a1", 6, "zone=z1"), 50),
			sc(cl("a2", "region-a", "dc-a2", 6), 40),
			sc(cl("b1", "region-b", "dc-b1", 5, "zone=z2"), 95),
			sc(cl("c1", "region-c", "dc-c1", 1, "zone=z1"), 10),
			sc(cl("c2", "region-c", "dc-c1", 1), 10),
		}
	}
	// Clusters of region-a score best, region-b worst.
	skewed := func() []framework.Scored {
		return []framework.Scored{
			sc(cl("a1", "region-a", "dc-a1", 6), 90),
			sc(cl("a2", "region-a", "dc-a2", 6), 80),
			sc(cl("b1", "region-b", "dc-b1", 5), 10),
			sc(cl("c1", "region-c", "dc-c1", 1), 11),
			sc(cl("c2", "region-c", "dc-c1", 1), 10),
		}
	}
	tests := []struct {
		name   string
		snap   *framework.Snapshot
		cands  []framework.Scored
		want   []string
		code   framework.Code
		reason string
	}{
		{name: "at least 2 regions, 1 is feasible",
			snap: snap(0, byField(ByRegion, 2, 0)), cands: fed()[:2], code: framework.Unschedulable,
			reason: "spread by region needs at least 2 groups, 1 is feasible (region-a)"},
		{name: "at most 1 region: the best total score",
			snap: snap(0, byField(ByRegion, 1, 1)), cands: fed(), want: []string{"b1"}},
		{name: "at most 2 regions",
			snap: snap(0, byField(ByRegion, 0, 2)), cands: fed(), want: []string{"a1", "a2", "b1"}},
		{name: "steady: the region running the workload stays first",
			snap: withPrevious(snap(0, byField(ByRegion, 1, 1)), false, "c2"), cands: fed(), want: []string{"c1", "c2"}},
		{name: "fresh: the region running the workload is not preferred",
			snap: withPrevious(snap(0, byField(ByRegion, 1, 1)), true, "c2"), cands: fed(), want: []string{"b1"}},
		{name: "previous clusters that are no candidates do not count",
			snap: withPrevious(snap(0, byField(ByRegion, 1, 1)), false, "gone"), cands: fed(), want: []string{"b1"}},
		{name: "unbounded: every region",
			snap: snap(0, byField(ByRegion, 2, 0)), cands: fed(), want: []string{"a1", "a2", "b1", "c1", "c2"}},
		{name: "at most 2 datacenters",
			snap: snap(0, byField(ByDatacenter, 1, 2)), cands: fed(), want: []string{"a1", "b1"}},
		{name: "at least 5 datacenters, 4 are feasible",
			snap: snap(0, byField(ByDatacenter, 5, 0)), cands: fed(), code: framework.Unschedulable,
			reason: "spread by datacenter needs at least 5 groups, 4 are feasible (dc-a1, dc-a2, dc-b1, dc-c1)"},
		{name: "at most 2 clusters",
			snap: snap(0, byField(ByCluster, 0, 2)), cands: fed(), want: []string{"a1", "b1"}},
		{name: "at least 6 clusters",
			snap: snap(0, byField(ByCluster, 6, 6)), cands: fed(), code: framework.Unschedulable,
			reason: "spread by cluster needs at least 6 groups, 5 are feasible (a1, a2, b1, c1, c2)"},
		{name: "by label: clusters without it are dropped",
			snap: snap(0, byLabel("zone", 2, 2)), cands: fed(), want: []string{"a1", "b1", "c1"}},
		{name: "by label: too few values",
			snap: snap(0, byLabel("zone", 3, 0)), cands: fed(), code: framework.Unschedulable,
			reason: `spread by label "zone" needs at least 3 groups, 2 are feasible (z1, z2)`},
		{name: "by label: no cluster has it",
			snap: snap(0, byLabel("rack", 0, 0)), cands: fed(), code: framework.Unschedulable,
			reason: `spread by label "rack" needs at least 1 group, 0 are feasible`},
		{name: "a cluster with no region is in no region group",
			snap:  snap(0, byField(ByRegion, 1, 0)),
			cands: []framework.Scored{sc(cl("x", "", "d", 1), 100), sc(cl("y", "r", "d", 1), 0)}, want: []string{"y"}},

		{name: "divided: a group that can hold the replicas replaces a better one that cannot",
			snap: snap(10, byField(ByRegion, 1, 1)), cands: fed(), want: []string{"a1", "a2"}},
		{name: "divided: when no selection holds them, the ranking stands",
			snap: snap(100, byField(ByRegion, 1, 1)), cands: fed(), want: []string{"b1"}},
		{name: "divided: swap one of two groups",
			snap: snap(12, byField(ByDatacenter, 2, 2)), cands: fed(), want: []string{"a1", "a2"}},

		{name: "regions then clusters: the clusters keep 2 regions",
			snap: snap(0, byField(ByRegion, 2, 2), byField(ByCluster, 0, 2)), cands: skewed(), want: []string{"a1", "c1"}},
		{name: "constraints apply coarse to fine whatever their order",
			snap: snap(0, byField(ByCluster, 0, 2), byField(ByRegion, 2, 2)), cands: skewed(), want: []string{"a1", "c1"}},
		{name: "a region is passed over when it holds too few clusters",
			snap: snap(0, byField(ByRegion, 1, 1), byField(ByCluster, 2, 0)), cands: fed(), want: []string{"a1", "a2"}},
		{name: "a region is passed over when it holds too few datacenters",
			snap: snap(0, byField(ByRegion, 1, 1), byField(ByDatacenter, 2, 0)), cands: fed(), want: []string{"a1", "a2"}},
		{name: "constraints that contradict each other",
			snap: snap(0, byField(ByRegion, 2, 0), byField(ByCluster, 1, 1)), cands: fed(), code: framework.Unschedulable,
			reason: "spread by region needs at least 2 groups, 1 is feasible with the other spread constraints (region-b)"},
		{name: "region and label",
			snap: snap(0, byField(ByRegion, 2, 2), byLabel("zone", 1, 2)), cands: fed(), want: []string{"a1", "b1"}},
		// A known limit of applying constraints coarse to fine: {a1, c1}
		// spans 2 regions and 1 zone, but the regions are chosen first
		// (b, a) and a label narrowing cannot undo that choice.
		{name: "coarse to fine is greedy across unrelated groupings",
			snap: snap(0, byField(ByRegion, 2, 2), byLabel("zone", 1, 1)), cands: fed(), code: framework.Unschedulable,
			reason: "spread by region needs at least 2 groups, 1 is feasible with the other spread constraints (region-b)"},

		{name: "both field and label", snap: snap(0, &meridianv1.SpreadConstraint{SpreadByField: ByRegion, SpreadByLabel: "zone"}),
			cands: fed(), code: framework.UnschedulableAndUnresolvable, reason: "spreadConstraints[0]: sets both"},
		{name: "neither field nor label", snap: snap(0, &meridianv1.SpreadConstraint{MinGroups: 1}),
			cands: fed(), code: framework.UnschedulableAndUnresolvable, reason: "sets neither"},
		{name: "unknown field", snap: snap(0, byField("zone", 1, 0)),
			cands: fed(), code: framework.UnschedulableAndUnresolvable, reason: `spreadByField "zone" is not region, datacenter or cluster`},
		{name: "min above max", snap: snap(0, byField(ByRegion, 3, 2)),
			cands: fed(), code: framework.UnschedulableAndUnresolvable, reason: "minGroups 3 is above maxGroups 2"},
		{name: "negative", snap: snap(0, byField(ByRegion, -1, 0)),
			cands: fed(), code: framework.UnschedulableAndUnresolvable, reason: "must not be negative"},
		{name: "twice by region", snap: snap(0, byField(ByRegion, 1, 0), byField(ByCluster, 1, 0), byField(ByRegion, 2, 0)),
			cands: fed(), code: framework.UnschedulableAndUnresolvable, reason: "spreadConstraints[2]: spreads by region again"},
	}
	p := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, st := p.Divide(context.Background(), tc.snap, tc.cands)
			if got := st.CodeOf(); got != tc.code {
				t.Fatalf("code = %v (%+v), want %v", got, st, tc.code)
			}
			if res.Targets != nil {
				t.Fatalf("Targets = %v: spreading never ends the stage", res.Targets)
			}
			if tc.code != framework.Success {
				if !strings.Contains(st.Reason, tc.reason) {
					t.Fatalf("reason = %q, want it to contain %q", st.Reason, tc.reason)
				}
				return
			}
			if got := names(res.Candidates); !slices.Equal(got, tc.want) {
				t.Fatalf("candidates = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDivideSkipsWithoutConstraints(t *testing.T) {
	cands := []framework.Scored{sc(cl("a", "r", "d", 1), 1)}
	for _, s := range []*framework.Snapshot{snap(3), {Workload: &framework.Workload{UID: "u"}}} {
		res, st := New().Divide(context.Background(), s, cands)
		if !st.IsSkip() || !slices.Equal(res.Candidates, cands) || res.Targets != nil {
			t.Errorf("result %+v, status %+v: want Skip with the candidates unchanged", res, st)
		}
	}
}

func TestDivideKeepsInputOrder(t *testing.T) {
	cands := []framework.Scored{sc(cl("z", "r1", "d", 1), 1), sc(cl("m", "r2", "d", 1), 1), sc(cl("a", "r1", "d", 1), 1)}
	res, st := New().Divide(context.Background(), snap(0, byField(ByRegion, 2, 2)), cands)
	if !st.IsSuccess() || !slices.Equal(names(res.Candidates), []string{"z", "m", "a"}) {
		t.Fatalf("got %v (%+v)", names(res.Candidates), st)
	}
}

func TestDivideBadInput(t *testing.T) {
	p := New()
	if p.Name() != Name {
		t.Errorf("Name() = %q", p.Name())
	}
	if _, st := p.Divide(context.Background(), &framework.Snapshot{}, nil); st.CodeOf() != framework.Error {
		t.Errorf("no workload: %+v", st)
	}
	dup := []framework.Scored{sc(cl("a", "r", "d", 1), 1), sc(cl("a", "r", "d", 1), 1)}
	if _, st := p.Divide(context.Background(), snap(0, byField(ByRegion, 1, 0)), dup); st.CodeOf() != framework.Error {
		t.Errorf("duplicate candidate: %+v", st)
	}
	if res, st := p.Divide(context.Background(), snap(0, byField(ByRegion, 2, 0)), nil); !st.IsSuccess() || len(res.Candidates) != 0 {
		t.Errorf("no candidates: %+v %+v, want Success with none", res, st)
	}
}

// TestConcurrentUse: one Plugin serves many placements at once.
func TestConcurrentUse(t *testing.T) {
	p, cands := New(), benchCandidates(200)
	s := snap(1000, byField(ByRegion, 2, 3), byField(ByCluster, 5, 50))
	want, st := p.Divide(context.Background(), s, cands)
	if !st.IsSuccess() {
		t.Fatal(st.Reason)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, st := p.Divide(context.Background(), s, cands)
			if !st.IsSuccess() || !slices.Equal(names(got.Candidates), names(want.Candidates)) {
				t.Errorf("concurrent result %v (%+v), want %v", names(got.Candidates), st, names(want.Candidates))
			}
		})
	}
	wg.Wait()
}

// benchCandidates is n clusters over 5 regions of 4 datacenters each, half
// of them labelled with one of 3 zones.
func benchCandidates(n int) []framework.Scored {
	out := make([]framework.Scored, n)
	for i := range out {
		r, d := i%5, (i/5)%4
		var labels []string
		if i%2 == 0 {
			labels = append(labels, fmt.Sprintf("zone=z%d", i%3))
		}
		c := cl(fmt.Sprintf("c%04d", i), fmt.Sprintf("r%d", r), fmt.Sprintf("r%d-d%d", r, d), int64(20+i%37), labels...)
		out[i] = sc(c, int64(i%101))
	}
	return out
}

func BenchmarkDivide(b *testing.B) {
	shapes := map[string][]*meridianv1.SpreadConstraint{
		"region":                 {byField(ByRegion, 2, 3)},
		"region+cluster":         {byField(ByRegion, 3, 3), byField(ByCluster, 5, 50)},
		"region+datacenter+zone": {byField(ByRegion, 2, 3), byField(ByDatacenter, 4, 6), byLabel("zone", 2, 2)},
	}
	p := New()
	for _, n := range []int{100, 1000} {
		cands := benchCandidates(n)
		for _, name := range []string{"region", "region+cluster", "region+datacenter+zone"} {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				s := snap(int32(10*n), shapes[name]...)
				for b.Loop() {
					if _, st := p.Divide(context.Background(), s, cands); !st.IsSuccess() {
						b.Fatal(st.Reason)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "placements/s")
			})
		}
	}
}
