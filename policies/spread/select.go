package spread

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-fed/meridian/policies/framework"
)

// candidate is one candidate cluster with what spreading reads of it.
type candidate struct {
	name     string
	score    int64
	capacity int64
	// previous is whether the placement in force has the cluster.
	previous bool
	// values[j] is the cluster's group under constraint j, when has[j];
	// ids[j] is its number (0, 1, ... per constraint; -1 when none), so
	// that sets of groups are slices, not maps.
	values []string
	has    []bool
	ids    []int32
}

// spreader narrows the candidates of one placement. It lives for one
// Divide call.
type spreader struct {
	cons  []constraint
	cands []candidate // sorted by name
	uid   string
	// steady ranks the groups that run the workload first.
	steady bool
	// replicas is what the selection should be able to hold: 0 when
	// capacity is no concern (a duplicated workload).
	replicas int64
	// numValues[j] is how many distinct values constraint j has.
	numValues []int
	// scratch sets for reachable.
	inG, inRest marks
}

// newSpreader reads the candidates, in name order.
func newSpreader(s *framework.Snapshot, cons []constraint, scored []framework.Scored) (*spreader, error) {
	sp := &spreader{cons: cons, uid: s.Workload.UID, steady: len(s.Previous) > 0 && !s.Fresh}
	if !s.Duplicated() {
		sp.replicas = int64(s.Workload.Replicas)
	}
	// Snapshot.Capacity scans Previous for every cluster: ask it of a
	// copy without Previous and add what runs from an index instead
	// (same value, linear rather than quadratic). A duplicated workload
	// without replicas runs 0 on its clusters: they are in the index all
	// the same.
	bare := *s
	bare.Previous = nil
	running := make(map[string]int64, len(s.Previous))
	for _, t := range s.Previous {
		running[t.Cluster] = int64(max(t.Replicas, 0))
	}
	sp.cands = make([]candidate, 0, len(scored))
	k := len(cons)
	values, has, ids := make([]string, len(scored)*k), make([]bool, len(scored)*k), make([]int32, len(scored)*k)
	for i, sc := range scored {
		if sc.Cluster == nil {
			return nil, fmt.Errorf("%s: candidate %d has no cluster", Name, i)
		}
		ran, inPrevious := running[sc.Cluster.Name]
		c := candidate{
			name:     sc.Cluster.Name,
			score:    sc.Score,
			capacity: min(int64(max(bare.Capacity(sc.Cluster), 0))+ran, framework.MaxReplicas),
			previous: inPrevious,
			values:   values[i*k : (i+1)*k : (i+1)*k],
			has:      has[i*k : (i+1)*k : (i+1)*k],
			ids:      ids[i*k : (i+1)*k : (i+1)*k],
		}
		for j := range cons {
			c.values[j], c.has[j] = cons[j].value(sc.Cluster)
			c.ids[j] = -1
		}
		sp.cands = append(sp.cands, c)
	}
	slices.SortFunc(sp.cands, func(a, b candidate) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(sp.cands); i++ {
		if sp.cands[i].name == sp.cands[i-1].name {
			return nil, fmt.Errorf("%s: cluster %s is a candidate twice", Name, sp.cands[i].name)
		}
	}
	sp.numValues = make([]int, len(cons))
	for j := range cons {
		ids := map[string]int32{}
		for i := range sp.cands {
			c := &sp.cands[i]
			if !c.has[j] {
				continue
			}
			id, ok := ids[c.values[j]]
			if !ok {
				id = int32(len(ids))
				ids[c.values[j]] = id
			}
			c.ids[j] = id
		}
		sp.numValues[j] = len(ids)
	}
	return sp, nil
}

// group is the selected candidates that share a value of one constraint.
type group struct {
	value    string
	members  []int // indices into spreader.cands
	score    int64
	capacity int64
	previous bool
	tiebreak uint64
	// covers[j] lists the distinct value ids of constraint j among the
	// members, for the constraints whose minimum the selection watches.
	covers [][]int32
}

// groups groups the selection by constraint li, ranked best first.
// Candidates with no value for li are in no group. covered lists the
// constraints whose values each group must list.
func (sp *spreader) groups(li int, sel []int, covered []int) []*group {
	byID := make([]*group, sp.numValues[li])
	var groups []*group
	for _, i := range sel {
		c := &sp.cands[i]
		if !c.has[li] {
			continue
		}
		g := byID[c.ids[li]]
		if g == nil {
			g = &group{value: c.values[li], tiebreak: framework.TieBreak(sp.uid, c.values[li]), covers: make([][]int32, len(sp.cons))}
			byID[c.ids[li]] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, i)
		g.score += c.score
		g.capacity += c.capacity
		g.previous = g.previous || (sp.steady && c.previous)
		for _, j := range covered {
			g.covers[j] = append(g.covers[j], c.ids[j])
		}
	}
	for _, g := range groups {
		for _, j := range covered {
			slices.Sort(g.covers[j])
			g.covers[j] = slices.Compact(g.covers[j])
		}
	}
	slices.SortFunc(groups, func(a, b *group) int {
		return cmp.Or(
			cmp.Compare(boolRank(b.previous), boolRank(a.previous)),
			cmp.Compare(b.score, a.score),
			cmp.Compare(b.capacity, a.capacity),
			cmp.Compare(a.tiebreak, b.tiebreak),
			strings.Compare(a.value, b.value))
	})
	return groups
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// needs is what a selection of groups under one constraint must reach.
type needs struct {
	count    int
	capacity int64
	// cover lists the other constraints whose minimum the selection must
	// keep within reach.
	cover []int
}

// narrow applies constraint li to the selection sel.
func (sp *spreader) narrow(li int, sel []int) ([]int, *framework.Status) {
	c := &sp.cons[li]
	// A minimum of 1 is met by any selection; only larger ones need
	// watching.
	var watch []int
	for j := range sp.cons {
		if j != li && sp.cons[j].min > 1 {
			watch = append(watch, j)
		}
	}
	groups := sp.groups(li, sel, watch)
	if len(groups) < c.min {
		return nil, tooFew(c, sortedValues(groups), "")
	}
	slots := len(groups)
	if c.max > 0 {
		slots = min(slots, c.max)
	}
	var byCapacity []int // positions, largest capacity first
	if sp.replicas > 0 {
		byCapacity = make([]int, len(groups))
		for p := range byCapacity {
			byCapacity[p] = p
		}
		slices.SortStableFunc(byCapacity, func(a, b int) int { return cmp.Compare(groups[b].capacity, groups[a].capacity) })
	}
	lk := lookahead{groups: groups, byCapacity: byCapacity, slots: slots}

	// Needs that no selection meets are dropped, not failed: capacity
	// is then the division's to report, and another constraint's
	// minimum is reported by verify with the whole picture.
	nd := needs{count: c.min}
	if sp.replicas > 0 && sp.reachable(sp.newSelection(), nil, -1, lk, needs{capacity: sp.replicas}) {
		nd.capacity = sp.replicas
	}
	for _, j := range watch {
		if sp.reachable(sp.newSelection(), nil, -1, lk, needs{cover: []int{j}}) {
			nd.cover = append(nd.cover, j)
		}
	}

	chosen := sp.newSelection()
	for p, g := range groups {
		if chosen.count == slots {
			break
		}
		if sp.met(chosen, nd) || sp.reachable(chosen, g, p, lk, nd) {
			chosen.add(g)
		}
	}
	var out []int
	for _, g := range chosen.groups {
		out = append(out, g.members...)
	}
	slices.Sort(out)
	return out, nil
}

// lookahead is the ranked groups of one constraint, for reachable.
type lookahead struct {
	groups []*group
	// byCapacity is the positions in groups, largest capacity first.
	byCapacity []int
	// slots is the most groups the selection may have.
	slots int
}

// selection is the groups chosen so far under one constraint.
type selection struct {
	groups   []*group
	count    int
	capacity int64
	// covered[j][id] is whether the groups hold value id of constraint j;
	// ncovered[j] counts them.
	covered  [][]bool
	ncovered []int
}

func (sp *spreader) newSelection() *selection {
	s := &selection{covered: make([][]bool, len(sp.cons)), ncovered: make([]int, len(sp.cons))}
	for j := range s.covered {
		s.covered[j] = make([]bool, sp.numValues[j])
	}
	return s
}

func (s *selection) add(g *group) {
	s.groups = append(s.groups, g)
	s.count++
	s.capacity += g.capacity
	for j, ids := range g.covers {
		for _, id := range ids {
			if !s.covered[j][id] {
				s.covered[j][id] = true
				s.ncovered[j]++
			}
		}
	}
}

// met reports whether s already reaches nd.
func (sp *spreader) met(s *selection, nd needs) bool {
	if s.count < nd.count || s.capacity < nd.capacity {
		return false
	}
	for _, j := range nd.cover {
		if s.ncovered[j] < sp.cons[j].min {
			return false
		}
	}
	return true
}

// reachable reports whether s, plus g (when not nil), plus at most the
// slots left of the groups ranked after position p, may reach nd. Each
// need is bounded on its own (the best groups for capacity may not be the
// best for a cover), so with several needs this is necessary, not
// sufficient; with one need it is exact.
func (sp *spreader) reachable(s *selection, g *group, p int, lk lookahead, nd needs) bool {
	count, capacity := s.count, s.capacity
	if g != nil {
		count++
		capacity += g.capacity
	}
	left := lk.slots - count
	if left < 0 {
		return false
	}
	rest := lk.groups[p+1:]
	if count+min(left, len(rest)) < nd.count {
		return false
	}
	if nd.capacity > 0 && capacity < nd.capacity {
		for k, taken := 0, 0; k < len(lk.byCapacity) && taken < left; k++ {
			if q := lk.byCapacity[k]; q > p {
				capacity += lk.groups[q].capacity
				taken++
			}
		}
		if capacity < nd.capacity {
			return false
		}
	}
	for _, j := range nd.cover {
		covered := s.covered[j]
		have := s.ncovered[j]
		sp.inG.reset(sp.numValues[j])
		if g != nil {
			for _, id := range g.covers[j] {
				if !covered[id] && sp.inG.add(id) {
					have++
				}
			}
		}
		missing := sp.cons[j].min - have
		if missing <= 0 {
			continue
		}
		// At most: every value the rest adds, and what the best left
		// groups add counted apart.
		sp.inRest.reset(sp.numValues[j])
		union := 0
		fresh := make([]int64, len(rest))
		for k, r := range rest {
			for _, id := range r.covers[j] {
				if !covered[id] && !sp.inG.has(id) {
					fresh[k]++
					if sp.inRest.add(id) {
						union++
					}
				}
			}
		}
		if min(int64(union), topSum(fresh, left)) < int64(missing) {
			return false
		}
	}
	return true
}

// topSum is the sum of the n largest values (it reorders values).
func topSum(values []int64, n int) int64 {
	slices.SortFunc(values, func(a, b int64) int { return cmp.Compare(b, a) })
	var s int64
	for _, v := range values[:min(n, len(values))] {
		s += v
	}
	return s
}

// marks is a set of value ids that empties in O(1): an id is in it when
// its stamp is the current generation.
type marks struct {
	stamp []uint32
	gen   uint32
}

// reset empties the set, for ids below n.
func (m *marks) reset(n int) {
	if len(m.stamp) < n {
		m.stamp = make([]uint32, n)
		m.gen = 0
	}
	m.gen++
	if m.gen == 0 { // wrapped: old stamps could match again
		clear(m.stamp)
		m.gen = 1
	}
}

// add puts id in the set and reports whether it was not there.
func (m *marks) add(id int32) bool {
	if m.stamp[id] == m.gen {
		return false
	}
	m.stamp[id] = m.gen
	return true
}

// has reports whether id is in the set.
func (m *marks) has(id int32) bool { return m.stamp[id] == m.gen }

// verify checks the final selection against every constraint: narrowing
// by a finer constraint can lose groups of a coarser one.
func (sp *spreader) verify(sel []int) *framework.Status {
	for j := range sp.cons {
		c := &sp.cons[j]
		seen := map[string]bool{}
		for _, i := range sel {
			seen[sp.cands[i].values[j]] = true
		}
		values := make([]string, 0, len(seen))
		for v := range seen {
			values = append(values, v)
		}
		slices.Sort(values)
		if len(values) < c.min {
			return tooFew(c, values, " with the other spread constraints")
		}
		if c.max > 0 && len(values) > c.max { // narrowing never adds groups; kept as a guard
			return framework.NewStatus(framework.Unschedulable, "spread by %s allows at most %d groups, the selection spans %d (%s)",
				c, c.max, len(values), groupNames(values))
		}
	}
	return nil
}

// sortedValues returns the groups' values in order.
func sortedValues(groups []*group) []string {
	values := make([]string, len(groups))
	for i, g := range groups {
		values[i] = g.value
	}
	slices.Sort(values)
	return values
}
