package division

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// failedSnap is a steady snapshot whose failover moves the workload off
// failed; clusters is the whole federation (the failed clusters included,
// as the engine passes them).
func failedSnap(replicas int32, p *meridianv1.Placement, clusters []*framework.Cluster, failed []string, prev ...framework.Target) *framework.Snapshot {
	s := snap(replicas, p, prev...)
	s.Clusters, s.Failed = clusters, failed
	return s
}

// without returns the clusters not named, as candidates.
func without(clusters []*framework.Cluster, names ...string) []framework.Scored {
	var out []*framework.Cluster
	for _, c := range clusters {
		if !slices.Contains(names, c.Name) {
			out = append(out, c)
		}
	}
	return scored(out...)
}

func TestLostReplicasStayNear(t *testing.T) {
	// Two datacenters in r1 (d1 with a1 and a2, d2 with b1), one in r2.
	fed := []*framework.Cluster{
		cl("a1", "r1", "d1", 10), cl("a2", "r1", "d1", 10), cl("b1", "r1", "d2", 10),
		cl("c1", "r2", "d3", 10), cl("c2", "r2", "d3", 10),
	}
	small := []*framework.Cluster{
		cl("a1", "r1", "d1", 10), cl("a2", "r1", "d1", 1), cl("b1", "r1", "d2", 1),
		cl("c1", "r2", "d3", 10), cl("c2", "r2", "d3", 10),
	}
	threeDC := []*framework.Cluster{cl("dc-a1", "region-a", "dc-a1", -1), cl("dc-a2", "region-a", "dc-a2", -1), cl("dc-b1", "region-b", "dc-b1", -1)}
	tests := []struct {
		name  string
		snap  *framework.Snapshot
		cands []framework.Scored
		want  []framework.Target
	}{
		{name: "same datacenter first",
			snap:  failedSnap(8, divided("", nil), fed, []string{"a1"}, t_("a1", 2), t_("a2", 2), t_("b1", 2), t_("c1", 1), t_("c2", 1)),
			cands: without(fed, "a1"),
			want:  []framework.Target{t_("a2", 4), t_("b1", 2), t_("c1", 1), t_("c2", 1)}},
		{name: "then the same region",
			snap:  failedSnap(6, divided("", nil), fed, []string{"b1"}, t_("a1", 1), t_("b1", 3), t_("c1", 1), t_("c2", 1)),
			cands: without(fed, "b1"),
			want:  []framework.Target{t_("a1", 2), t_("a2", 2), t_("c1", 1), t_("c2", 1)}},
		{name: "the issue's federation: dc-a1's replicas go to dc-a2",
			snap:  failedSnap(9, divided("", nil), threeDC, []string{"dc-a1"}, t_("dc-a1", 3), t_("dc-a2", 3), t_("dc-b1", 3)),
			cands: without(threeDC, "dc-a1"),
			want:  []framework.Target{t_("dc-a2", 6), t_("dc-b1", 3)}},
		{name: "what the region cannot hold goes anywhere",
			// a2 fits 1 more, b1 1 more: the other 3 go to region r2.
			snap:  failedSnap(7, divided("", nil), small, []string{"a1"}, t_("a1", 5), t_("c1", 1), t_("c2", 1)),
			cands: without(small, "a1"),
			want:  []framework.Target{t_("a2", 1), t_("b1", 1), t_("c1", 2), t_("c2", 3)}}, // c2 wins the tie-break
		{name: "weight 0 keeps a near cluster out",
			snap: failedSnap(4, divided(Weighted, static(named(1, "a1", "b1", "c1"))), fed, []string{"a1"},
				t_("a1", 2), t_("b1", 1), t_("c1", 1)),
			cands: without(fed, "a1"),
			want:  []framework.Target{t_("b1", 3), t_("c1", 1)}},
		{name: "static weights divide within the tier",
			snap: failedSnap(7, divided(Weighted, static(named(2, "a2"), named(1, "a1", "b1", "c1", "c2"))), fed, []string{"a1"},
				t_("a1", 3), t_("a2", 4)),
			cands: without(fed, "a1"),
			want:  []framework.Target{t_("a2", 7)}},
		{name: "a cluster dropped without failover is treated alike",
			snap:  snap(6, divided("", nil), t_("a1", 2), t_("b1", 2), t_("c1", 2)),
			cands: without(fed, "a1"),
			// The snapshot does not know a1's topology: anywhere (Rebalance).
			want: []framework.Target{t_("b1", 2), t_("c1", 2), t_("c2", 2)}},
		{name: "scale down at the same time re-places only what is still wanted",
			snap:  failedSnap(5, divided("", nil), fed, []string{"a1"}, t_("a1", 3), t_("c1", 2), t_("c2", 2)),
			cands: without(fed, "a1"),
			want:  []framework.Target{t_("a2", 1), t_("c1", 2), t_("c2", 2)}},
		{name: "aggregated: the nearest cluster is filled first",
			snap:  failedSnap(4, divided(Aggregated, nil), fed, []string{"b1"}, t_("b1", 4)),
			cands: withScores(without(fed, "b1"), 0, 0, 100, 100),
			want:  []framework.Target{t_("a1", 4)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, st := New().Divide(context.Background(), tc.snap, tc.cands)
			if !st.IsSuccess() {
				t.Fatalf("status %+v", st)
			}
			if !slices.Equal(res.Targets, tc.want) {
				t.Fatalf("targets = %v, want %v", res.Targets, tc.want)
			}
		})
	}
}

// TestLostReplicasProperties: over random federations with one failed
// cluster, a steady equal-weight division (1) keeps every survivor's
// replicas, (2) places all the lost replicas, and (3) never sends a lost
// replica further than it must: a candidate farther from the failed
// cluster than some other candidate with room left gets lost replicas only
// when every nearer candidate is full.
func TestLostReplicasProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 8).Draw(t, "clusters")
		var fed []*framework.Cluster
		for i := range n {
			region := rapid.SampledFrom([]string{"r0", "r1"}).Draw(t, "region")
			dc := region + "-" + rapid.SampledFrom([]string{"a", "b"}).Draw(t, "dc")
			fed = append(fed, cl(fmt.Sprintf("c%d", i), region, dc, int64(rapid.IntRange(0, 8).Draw(t, "free"))))
		}
		failed := fed[rapid.IntRange(0, n-1).Draw(t, "failed")]
		var prev []framework.Target
		var total int32
		for _, c := range fed {
			if r := int32(rapid.IntRange(0, 4).Draw(t, "prev")); r > 0 || c == failed {
				r = max(r, 1)
				prev = append(prev, t_(c.Name, r))
				total += r
			}
		}
		s := failedSnap(total, divided("", nil), fed, []string{failed.Name}, prev...)
		cands := without(fed, failed.Name)
		res, st := New().Divide(context.Background(), s, cands)
		if !st.IsSuccess() {
			return // the survivors cannot hold them: nothing to check
		}
		got := map[string]int32{}
		var sum int32
		for _, tg := range res.Targets {
			got[tg.Cluster] = tg.Replicas
			sum += tg.Replicas
		}
		if sum != total {
			t.Fatalf("placed %d of %d replicas: %v", sum, total, res.Targets)
		}
		added := map[int]bool{} // proximities that got lost replicas
		for _, sc := range cands {
			c := sc.Cluster
			before := s.PreviousReplicas(c.Name)
			if got[c.Name] < before {
				t.Fatalf("%s lost replicas (%d → %d): %v", c.Name, before, got[c.Name], res.Targets)
			}
			if got[c.Name] > s.Capacity(c) {
				t.Fatalf("%s over capacity: %d > %d", c.Name, got[c.Name], s.Capacity(c))
			}
			if got[c.Name] > before {
				added[proximity(c, failed)] = true
			}
		}
		for _, sc := range cands {
			c := sc.Cluster
			p := proximity(c, failed)
			for q := range added {
				if q > p && got[c.Name] < s.Capacity(c) {
					t.Fatalf("lost replicas went to proximity %d while %s (proximity %d) had room: %v", q, c.Name, p, res.Targets)
				}
			}
		}
	})
}
