package spread

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Property tests: the selection is checked against a brute force over
// every subset of the candidates (at most 2^7), which is the definition
// of "a feasible selection exists".

// kinds a random constraint spreads by ("zone" is a label).
var kinds = []string{ByRegion, ByDatacenter, ByCluster, "zone"}

// nestedPairs are two field constraints whose groups nest (every
// datacenter is in one region): the look-ahead is exact for them.
var nestedPairs = [][2]string{{ByRegion, ByCluster}, {ByRegion, ByDatacenter}, {ByDatacenter, ByCluster}}

type problem struct {
	snap  *framework.Snapshot
	cands []framework.Scored
	cons  []*meridianv1.SpreadConstraint
	// exact: the plugin must find a selection whenever one exists.
	exact bool
}

func drawProblem(t *rapid.T) *problem {
	p := &problem{}
	for i := range rapid.IntRange(0, 7).Draw(t, "clusters") {
		region := rapid.SampledFrom([]string{"r0", "r1", "r2", "r0", "r1", ""}).Draw(t, "region")
		dc := ""
		if region != "" {
			dc = region + "-" + rapid.SampledFrom([]string{"a", "b"}).Draw(t, "dc")
		}
		var labels []string
		if rapid.IntRange(0, 2).Draw(t, "hasZone") > 0 {
			labels = append(labels, "zone="+rapid.SampledFrom([]string{"z0", "z1", "z2"}).Draw(t, "zone"))
		}
		c := cl(fmt.Sprintf("c%d", i), region, dc, int64(rapid.IntRange(-1, 8).Draw(t, "pods")), labels...)
		p.cands = append(p.cands, sc(c, int64(rapid.IntRange(0, 100).Draw(t, "score"))))
	}
	constraint := func(kind string) *meridianv1.SpreadConstraint {
		minG := int32(rapid.IntRange(0, 3).Draw(t, "min"))
		maxG := int32(rapid.IntRange(0, 3).Draw(t, "max"))
		if maxG > 0 && maxG < minG {
			maxG = minG
		}
		if kind == "zone" {
			return byLabel(kind, minG, maxG)
		}
		return byField(kind, minG, maxG)
	}
	replicas := int32(0) // duplicated
	switch rapid.SampledFrom([]string{"single", "nested", "any"}).Draw(t, "shape") {
	case "single":
		p.exact = true
		p.cons = append(p.cons, constraint(rapid.SampledFrom(kinds).Draw(t, "kind")))
		if rapid.Bool().Draw(t, "divided") {
			replicas = int32(rapid.IntRange(1, 20).Draw(t, "replicas"))
		}
	case "nested":
		p.exact = true
		pair := rapid.SampledFrom(nestedPairs).Draw(t, "pair")
		p.cons = append(p.cons, constraint(pair[1]), constraint(pair[0]))
	case "any":
		picked := rapid.SliceOfNDistinct(rapid.SampledFrom(kinds), 1, 3, func(s string) string { return s }).Draw(t, "kinds")
		for _, k := range picked {
			p.cons = append(p.cons, constraint(k))
		}
		if rapid.Bool().Draw(t, "divided") {
			replicas = int32(rapid.IntRange(1, 20).Draw(t, "replicas"))
		}
	}
	p.snap = snap(replicas, p.cons...)
	for _, c := range p.cands {
		if rapid.IntRange(0, 3).Draw(t, "previous") == 0 {
			p.snap.Previous = append(p.snap.Previous, framework.Target{Cluster: c.Cluster.Name, Replicas: 1})
		}
	}
	p.snap.Fresh = rapid.Bool().Draw(t, "fresh")
	return p
}

// spans returns the number of groups of constraint c among the clusters,
// false when one of them is in no group.
func spans(c *meridianv1.SpreadConstraint, clusters []*framework.Cluster) (int, bool) {
	seen := map[string]bool{}
	for _, cl := range clusters {
		var v string
		var ok bool
		if c.GetSpreadByLabel() != "" {
			v, ok = cl.Labels[c.GetSpreadByLabel()]
		} else {
			v, _ = cl.Field(c.GetSpreadByField())
			ok = v != ""
		}
		if !ok {
			return 0, false
		}
		seen[v] = true
	}
	return len(seen), true
}

// satisfies reports whether the clusters (at least one) meet every
// constraint.
func satisfies(cons []*meridianv1.SpreadConstraint, clusters []*framework.Cluster) bool {
	if len(clusters) == 0 {
		return false
	}
	for _, c := range cons {
		n, ok := spans(c, clusters)
		if !ok || n < int(max(c.GetMinGroups(), 1)) || (c.GetMaxGroups() > 0 && n > int(c.GetMaxGroups())) {
			return false
		}
	}
	return true
}

// bruteForce reports whether some subset of the candidates satisfies the
// constraints, and whether some such subset also holds the replicas.
func bruteForce(p *problem) (feasible, holds bool) {
	n := len(p.cands)
	for mask := 1; mask < 1<<n; mask++ {
		var sub []*framework.Cluster
		var capacity int64
		for i := range n {
			if mask&(1<<i) != 0 {
				sub = append(sub, p.cands[i].Cluster)
				capacity += int64(p.snap.Capacity(p.cands[i].Cluster))
			}
		}
		if satisfies(p.cons, sub) {
			feasible = true
			holds = holds || capacity >= int64(p.snap.Workload.Replicas)
		}
	}
	return feasible, holds
}

func TestDivideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawProblem(t)
		res, st := New().Divide(context.Background(), p.snap, p.cands)
		if res.Targets != nil {
			t.Fatalf("Targets set")
		}
		if len(p.cands) == 0 {
			if !st.IsSuccess() || len(res.Candidates) != 0 {
				t.Fatalf("no candidates: %+v", st)
			}
			return
		}
		feasible, holds := bruteForce(p)
		switch st.CodeOf() {
		case framework.Unschedulable:
			if p.exact && feasible {
				t.Fatalf("Unschedulable (%s), but a selection exists", st.Reason)
			}
			return
		case framework.Success:
		default:
			t.Fatalf("code %v: %s", st.CodeOf(), st.Reason)
		}

		// The selection: candidates, in their order, meeting every constraint.
		var selected []*framework.Cluster
		var capacity int64
		at := 0
		for _, c := range res.Candidates {
			k := slices.IndexFunc(p.cands[at:], func(x framework.Scored) bool { return x.Cluster == c.Cluster })
			if k < 0 {
				t.Fatalf("%s is not a candidate, or out of order", c.Cluster.Name)
			}
			at += k + 1
			selected = append(selected, c.Cluster)
			capacity += int64(p.snap.Capacity(c.Cluster))
		}
		if !satisfies(p.cons, selected) {
			t.Fatalf("selection %v breaks the constraints", names(res.Candidates))
		}
		if p.exact && len(p.cons) == 1 && p.snap.Workload.Replicas > 0 && holds && capacity < int64(p.snap.Workload.Replicas) {
			t.Fatalf("selection %v holds %d of %d replicas, another selection holds them", names(res.Candidates), capacity, p.snap.Workload.Replicas)
		}
	})
}

func TestDivideDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawProblem(t)
		first, st1 := New().Divide(context.Background(), p.snap, p.cands)
		second, st2 := New().Divide(context.Background(), p.snap, p.cands)
		shuffled := slices.Clone(p.cands)
		for i := len(shuffled) - 1; i > 0; i-- {
			j := rapid.IntRange(0, i).Draw(t, "swap")
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		third, st3 := New().Divide(context.Background(), p.snap, shuffled)
		a, b, c := names(first.Candidates), names(second.Candidates), names(third.Candidates)
		slices.Sort(c)
		sorted := slices.Sorted(slices.Values(a))
		if !slices.Equal(a, b) || !slices.Equal(sorted, c) || st1.CodeOf() != st2.CodeOf() || st1.CodeOf() != st3.CodeOf() {
			t.Fatalf("same snapshot, different results: %v %v, shuffled %v", a, b, c)
		}
	})
}

// TestStabilityOfSteadyPlacement: when the placement in force satisfies
// the constraints and the candidates are unchanged, a steady re-placement
// keeps every group it ran in (up to maxGroups, it does not jump).
func TestStabilityOfSteadyPlacement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawProblem(t)
		if len(p.cons) != 1 || p.snap.Workload.Replicas > 0 || len(p.cands) == 0 {
			t.Skip("one constraint, duplicated")
		}
		first, st := New().Divide(context.Background(), p.snap, p.cands)
		if !st.IsSuccess() {
			return
		}
		s := *p.snap
		s.Fresh, s.Previous = false, nil
		for _, c := range first.Candidates {
			s.Previous = append(s.Previous, framework.Target{Cluster: c.Cluster.Name})
		}
		again, st := New().Divide(context.Background(), &s, p.cands)
		if !st.IsSuccess() || !slices.Equal(names(again.Candidates), names(first.Candidates)) {
			t.Fatalf("steady re-placement moved from %v to %v (%+v)", names(first.Candidates), names(again.Candidates), st)
		}
	})
}
