package division

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-fed/meridian/policies/clusteraffinity"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Property tests over random federations, policies and placements in
// force. The oracle for "which clusters may take replicas" is written here
// again, independently of weights.go, from the policy's documented rules.

var (
	propRegions = []string{"r0", "r1", "r2"}
	propModes   = []string{"duplicated", "aggregated", "equal", "static", "dynamic", "hierarchical"}
)

// world is one random placement problem.
type world struct {
	clusters []*framework.Cluster
	cands    []framework.Scored
	snap     *framework.Snapshot
	mode     string
}

func drawWorld(t *rapid.T) *world {
	n := rapid.IntRange(1, 8).Draw(t, "clusters")
	w := &world{}
	for i := range n {
		region := rapid.SampledFrom(propRegions).Draw(t, "region")
		dc := region + "-" + rapid.SampledFrom([]string{"a", "b"}).Draw(t, "dc")
		pods := int64(rapid.IntRange(-1, 12).Draw(t, "pods")) // -1: reports no capacity
		c := cl(fmt.Sprintf("c%d", i), region, dc, pods)
		w.clusters = append(w.clusters, c)
		if rapid.IntRange(0, 4).Draw(t, "candidate") > 0 {
			w.cands = append(w.cands, framework.Scored{Cluster: c, Score: int64(rapid.IntRange(0, 100).Draw(t, "score"))})
		}
	}
	w.mode = rapid.SampledFrom(propModes).Draw(t, "mode")
	var placement *meridianv1.Placement
	switch w.mode {
	case "duplicated":
		placement = &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Duplicated"}}
	case "aggregated":
		placement = divided(Aggregated, nil)
	case "equal":
		placement = divided(rapid.SampledFrom([]string{"", Weighted}).Draw(t, "pref"), nil)
	case "static":
		var list []*meridianv1.StaticClusterWeight
		for range rapid.IntRange(1, 3).Draw(t, "entries") {
			e := &meridianv1.StaticClusterWeight{Weight: int64(rapid.IntRange(0, 5).Draw(t, "weight")), TargetCluster: &meridianv1.ClusterAffinity{}}
			if rapid.Bool().Draw(t, "byRegion") {
				e.TargetCluster.FieldSelector = &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{
					{Key: "region", Operator: "In", Values: []string{rapid.SampledFrom(propRegions).Draw(t, "in")}}}}
			} else {
				for _, c := range w.clusters {
					if rapid.Bool().Draw(t, "named") {
						e.TargetCluster.ClusterNames = append(e.TargetCluster.ClusterNames, c.Name)
					}
				}
			}
			list = append(list, e)
		}
		placement = divided(Weighted, static(list...))
	case "dynamic":
		placement = divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas})
	case "hierarchical":
		h := &meridianv1.HierarchicalWeights{}
		for _, r := range propRegions {
			if !rapid.Bool().Draw(t, "listRegion") {
				continue
			}
			rw := &meridianv1.RegionWeight{Name: r, Weight: int64(rapid.IntRange(0, 3).Draw(t, "regionWeight"))}
			for _, d := range []string{"a", "b"} {
				if !rapid.Bool().Draw(t, "listDC") {
					continue
				}
				dw := &meridianv1.DatacenterWeight{Name: r + "-" + d, Weight: int64(rapid.IntRange(0, 3).Draw(t, "dcWeight"))}
				for _, c := range w.clusters {
					if c.Datacenter == dw.Name && rapid.Bool().Draw(t, "listCluster") {
						dw.Clusters = append(dw.Clusters, &meridianv1.ClusterWeight{Name: c.Name, Weight: int64(rapid.IntRange(0, 3).Draw(t, "clusterWeight"))})
					}
				}
				rw.Datacenters = append(rw.Datacenters, dw)
			}
			h.Regions = append(h.Regions, rw)
		}
		placement = divided(Weighted, &meridianv1.ClusterPreferences{HierarchicalWeights: h})
	}
	w.snap = snap(int32(rapid.IntRange(0, 30).Draw(t, "replicas")), placement)
	for _, c := range w.clusters {
		if rapid.IntRange(0, 2).Draw(t, "previous") == 0 {
			w.snap.Previous = append(w.snap.Previous, t_(c.Name, int32(rapid.IntRange(1, 10).Draw(t, "previousReplicas"))))
		}
	}
	w.snap.Fresh = rapid.IntRange(0, 3).Draw(t, "fresh") == 0
	return w
}

// mayTake reports whether the policy lets c take replicas (weight > 0).
func (w *world) mayTake(t *rapid.T, c *framework.Cluster) bool {
	pref := w.snap.Placement.GetReplicaScheduling().GetWeightPreference()
	switch w.mode {
	case "static":
		for _, e := range pref.GetStaticWeightList() {
			ok, _, err := clusteraffinity.Matches(e.GetTargetCluster(), c)
			if err != nil {
				t.Fatal(err)
			}
			if ok && e.GetWeight() > 0 {
				return true
			}
		}
		return false
	case "hierarchical":
		for _, r := range pref.GetHierarchicalWeights().GetRegions() {
			if r.GetName() != c.Region {
				continue
			}
			if r.GetWeight() == 0 {
				return false
			}
			for _, d := range r.GetDatacenters() {
				if d.GetName() != c.Datacenter {
					continue
				}
				if d.GetWeight() == 0 {
					return false
				}
				for _, cw := range d.GetClusters() {
					if cw.GetName() == c.Name && cw.GetWeight() == 0 {
						return false
					}
				}
			}
		}
	}
	return true
}

func divide(t *rapid.T, s *framework.Snapshot, cands []framework.Scored) ([]framework.Target, *framework.Status) {
	res, st := New().Divide(context.Background(), s, cands)
	if st.IsSuccess() && res.Targets == nil {
		t.Fatalf("Success without targets")
	}
	if !slices.Equal(res.Candidates, cands) {
		t.Fatalf("the candidates changed")
	}
	return res.Targets, st
}

func TestDivideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := drawWorld(t)
		s := w.snap
		targets, st := divide(t, s, w.cands)
		replicas := s.Workload.Replicas

		var fit int64
		mayTake := map[string]bool{}
		candidate := map[string]*framework.Cluster{}
		for _, c := range w.cands {
			candidate[c.Cluster.Name] = c.Cluster
			if w.mayTake(t, c.Cluster) {
				mayTake[c.Cluster.Name] = true
				fit += int64(s.Capacity(c.Cluster))
			}
		}
		if st.Rejects() {
			// Success whenever the clusters that may take replicas fit them.
			if len(w.cands) > 0 && len(mayTake) > 0 && (w.mode == "duplicated" || fit >= int64(replicas)) {
				t.Fatalf("%s: %s, with %d clusters fitting %d of %d replicas", w.mode, st.Reason, len(mayTake), fit, replicas)
			}
			return
		}
		if st.CodeOf() != framework.Success {
			t.Fatalf("code %v", st.CodeOf())
		}

		// Targets: sorted, no duplicates, only candidates.
		if !slices.IsSortedFunc(targets, func(a, b framework.Target) int { return cmpString(a.Cluster, b.Cluster) }) {
			t.Fatalf("targets not sorted: %v", targets)
		}
		got := map[string]int32{}
		var sum int64
		for _, tg := range targets {
			if _, dup := got[tg.Cluster]; dup {
				t.Fatalf("%s twice", tg.Cluster)
			}
			got[tg.Cluster] = tg.Replicas
			sum += int64(tg.Replicas)
			c := candidate[tg.Cluster]
			if c == nil {
				t.Fatalf("target %s is not a candidate", tg.Cluster)
			}
			if w.mode == "duplicated" {
				continue
			}
			if tg.Replicas <= 0 || tg.Replicas > s.Capacity(c) {
				t.Fatalf("%s gets %d of capacity %d", tg.Cluster, tg.Replicas, s.Capacity(c))
			}
			if !mayTake[tg.Cluster] {
				t.Fatalf("%s has weight 0 and gets %d", tg.Cluster, tg.Replicas)
			}
		}
		if w.mode == "duplicated" {
			if len(targets) != len(w.cands) {
				t.Fatalf("duplicated to %d of %d candidates", len(targets), len(w.cands))
			}
			for _, tg := range targets {
				if tg.Replicas != replicas {
					t.Fatalf("duplicated %s gets %d", tg.Cluster, tg.Replicas)
				}
			}
			return
		}
		if sum != int64(replicas) {
			t.Fatalf("%d replicas placed, want %d: %v", sum, replicas, targets)
		}

		if steady(s) {
			checkSteady(t, w, got, candidate, mayTake)
		}
		if w.mode == "static" && !steady(s) {
			checkHamilton(t, w, got)
		}

		// Idempotent: the result as the placement in force stays.
		again := *s
		again.Previous, again.Fresh = targets, false
		if next, st := divide(t, &again, w.cands); !st.IsSuccess() || (len(targets) > 0 && !slices.Equal(next, targets)) {
			t.Fatalf("re-placing %v gives %v (%v)", targets, next, reasonOf(st))
		}
	})
}

// checkSteady: only what must move moves. A previous cluster must lose
// what it cannot keep (not a candidate, weight 0, above capacity); beyond
// that, a scale down removes the surplus and a scale up adds only what is
// missing.
func checkSteady(t *rapid.T, w *world, got map[string]int32, candidate map[string]*framework.Cluster, mayTake map[string]bool) {
	s := w.snap
	var prevSum, keptSum, lost, moved, added int64
	for _, p := range s.Previous {
		prev := int64(p.Replicas)
		kept := int64(0)
		if c := candidate[p.Cluster]; c != nil && mayTake[p.Cluster] {
			kept = min(prev, int64(s.Capacity(c)))
		}
		prevSum += prev
		keptSum += kept
		lost += prev - kept
		moved += max(0, prev-int64(got[p.Cluster]))
	}
	for name, n := range got {
		added += max(0, int64(n)-int64(s.PreviousReplicas(name)))
	}
	replicas := int64(s.Workload.Replicas)
	if want := max(lost, prevSum-replicas); moved != want {
		t.Fatalf("steady: %d replicas left their clusters, want %d (lost %d, previous %d, replicas %d)", moved, want, lost, prevSum, replicas)
	}
	if want := max(0, replicas-keptSum); added != want {
		t.Fatalf("steady: %d replicas added, want %d", added, want)
	}
}

// checkHamilton: with every weighted cluster able to hold all the
// replicas, each count is within one of its exact share.
func checkHamilton(t *rapid.T, w *world, got map[string]int32) {
	s := w.snap
	weights := map[string]int64{}
	var sum int64
	for _, c := range w.cands {
		for _, e := range s.Placement.GetReplicaScheduling().GetWeightPreference().GetStaticWeightList() {
			if ok, _, _ := clusteraffinity.Matches(e.GetTargetCluster(), c.Cluster); ok {
				weights[c.Cluster.Name] = max(weights[c.Cluster.Name], e.GetWeight())
			}
		}
		if weights[c.Cluster.Name] > 0 && s.Capacity(c.Cluster) < s.Workload.Replicas {
			return // not ample
		}
		sum += weights[c.Cluster.Name]
	}
	replicas := int64(s.Workload.Replicas)
	for name, wt := range weights {
		if d := int64(got[name])*sum - replicas*wt; d <= -sum || d >= sum {
			t.Fatalf("%s gets %d, not within 1 of %d*%d/%d", name, got[name], replicas, wt, sum)
		}
	}
}

func TestDivideDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := drawWorld(t)
		first, st1 := divide(t, w.snap, w.cands)
		second, st2 := divide(t, w.snap, w.cands)
		shuffled := slices.Clone(w.cands)
		for i := len(shuffled) - 1; i > 0; i-- {
			j := rapid.IntRange(0, i).Draw(t, "swap")
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		third, st3 := divide(t, w.snap, shuffled)
		if !slices.Equal(first, second) || !slices.Equal(first, third) || reasonOf(st1) != reasonOf(st2) || reasonOf(st1) != reasonOf(st3) {
			t.Fatalf("same snapshot, different results: %v (%s), %v (%s), shuffled %v (%s)",
				first, reasonOf(st1), second, reasonOf(st2), third, reasonOf(st3))
		}
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
