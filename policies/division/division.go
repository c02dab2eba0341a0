// Package division is the built-in Divide plugin that ends the Divide
// stage: it turns the candidate clusters left by the plugins before it
// (spread constraints, say) into the placement, the replicas each cluster
// runs.
//
// The policy's replicaScheduling picks the strategy:
//
//	Duplicated (or not divisible)  every candidate runs all the replicas
//	Divided, Aggregated            as few clusters as possible, best first
//	Divided, Weighted or no pref.  replicas in proportion to weights:
//	  staticWeightList             the highest weight among the entries
//	                               whose targetCluster matches, else 0
//	  dynamicWeight                what the cluster can fit (Capacity)
//	  hierarchicalWeights          regions, then datacenters, then clusters
//	  no weightPreference          equal weights (Karmada's default)
//
// A cluster of weight 0 gets nothing; when every candidate weighs 0 the
// placement is Unschedulable (Karmada would fall back to equal weights,
// sending replicas where the user gave them no weight).
//
// Weighted division is the largest-remainder (Hamilton) method with
// capacity (DivideByWeight): every count is within one of its exact share,
// and a cluster never gets more than it fits — its overflow goes to the
// others by their weights. Hierarchical weights divide level by level, so
// an overflow stays as close as it can: in the datacenter first, then the
// region.
//
// A re-placement is steady (Snapshot.Previous set, Snapshot.Fresh not):
// each candidate keeps what it runs, up to its capacity (a cluster that
// left the candidates, or that the policy now weighs 0, keeps nothing);
// the replicas a cluster lost (failover's Snapshot.Failed, or any other
// drop) go first to the candidates of its datacenter, then of its region
// (see locality.go); then only the difference between what is kept and
// what is wanted moves, towards the division a fresh placement would make
// (Rebalance). A scale
// up or down moves just the replicas added or removed, a lost cluster's
// replicas alone move, and a new cluster gets nothing unless replicas are
// missing. Fresh placements ignore Previous: the policy changed, so
// replicas go where it now prefers.
//
// Everything is a pure function of the snapshot and the candidates; ties
// are broken by framework.TieBreak, never by input or map order, so the
// same inputs give the same placement in any order and on any hub.
package division

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Name is the plugin's name in configuration and reasons.
const Name = "ReplicaDivision"

// Values of the policy's replicaScheduling fields.
const (
	// Divided asks to divide the replicas over the clusters.
	Divided = "Divided"
	// Aggregated packs the replicas into as few clusters as possible.
	Aggregated = "Aggregated"
	// Weighted divides the replicas in proportion to weights.
	Weighted = "Weighted"
	// AvailableReplicas weighs clusters by the replicas they can still fit.
	AvailableReplicas = "AvailableReplicas"
)

// ReasonNoCluster is the reason of the Unschedulable status for a
// placement without candidates: the filters (or spread constraints) left
// no cluster.
const ReasonNoCluster = "no cluster is feasible"

// reasonListMax bounds how many clusters a reason names.
const reasonListMax = 10

// Plugin divides replicas over the candidates. It has no state, so one
// Plugin is safe for concurrent use.
type Plugin struct{}

var _ framework.DividePlugin = (*Plugin)(nil)

// New returns the plugin. It takes no arguments: everything it needs is in
// the policy of each snapshot.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// candidate is one candidate cluster with what division reads of it. The
// plugin works on candidates sorted by name.
type candidate struct {
	name     string
	cluster  *framework.Cluster
	score    int64
	capacity int32
	// previous is what the placement in force runs on the cluster.
	previous int32
	tiebreak uint64
}

// Divide returns the placement: one target per cluster that runs replicas,
// sorted by cluster name. It never skips: every workload needs targets, and
// this plugin is the one that makes them. It answers Unschedulable when
// there is no candidate or the candidates cannot hold the replicas, and
// UnschedulableAndUnresolvable when the policy is invalid.
func (p *Plugin) Divide(_ context.Context, s *framework.Snapshot, candidates []framework.Scored) (framework.DivideResult, *framework.Status) {
	res := framework.DivideResult{Candidates: candidates}
	if s == nil || s.Workload == nil {
		return res, framework.AsStatus(fmt.Errorf("%s: the snapshot has no workload", Name))
	}
	cands, err := sortCandidates(s, candidates)
	if err != nil {
		return res, framework.AsStatus(err)
	}
	if len(cands) == 0 {
		return res, framework.NewStatus(framework.Unschedulable, ReasonNoCluster)
	}
	replicas := s.Workload.Replicas
	if replicas < 0 {
		return res, framework.NewStatus(framework.UnschedulableAndUnresolvable, "the workload asks for %d replicas", replicas)
	}

	if s.Duplicated() {
		// Every candidate runs the whole workload, even with 0 replicas
		// (ConfigMaps, Services): then the targets are the set of clusters.
		targets := make([]framework.Target, len(cands))
		for i, c := range cands {
			targets[i] = framework.Target{Cluster: c.name, Replicas: replicas}
		}
		res.Targets = targets
		return res, nil
	}

	var counts []int32
	var st *framework.Status
	strategy := s.Placement.GetReplicaScheduling()
	switch pref := strategy.GetReplicaDivisionPreference(); pref {
	case Aggregated:
		counts, st = aggregate(s, cands, replicas)
	case Weighted, "":
		// An empty preference is read as Weighted: with no
		// weightPreference that is equal weights, Karmada's default.
		counts, st = weigh(s, cands, replicas)
	default:
		return res, framework.NewStatus(framework.UnschedulableAndUnresolvable,
			"replicaDivisionPreference %q is not %s or %s", pref, Aggregated, Weighted)
	}
	if st != nil {
		return res, st
	}
	res.Targets = targetsOf(cands, counts)
	return res, nil
}

// sortCandidates returns the candidates in name order with what division
// reads of them.
func sortCandidates(s *framework.Snapshot, scored []framework.Scored) ([]candidate, error) {
	// Snapshot.Capacity and PreviousReplicas scan Previous for every
	// cluster, quadratic for a workload on a thousand clusters. Index it
	// once and ask Capacity of a copy without it: Capacity is what the
	// free resources fit plus what runs there, bounded by MaxReplicas.
	previous := make(map[string]int32, len(s.Previous))
	for _, t := range s.Previous {
		previous[t.Cluster] = max(t.Replicas, 0)
	}
	bare := *s
	bare.Previous = nil
	cands := make([]candidate, 0, len(scored))
	for i, sc := range scored {
		if sc.Cluster == nil {
			return nil, fmt.Errorf("%s: candidate %d has no cluster", Name, i)
		}
		prev := previous[sc.Cluster.Name]
		capacity := int32(min(int64(max(bare.Capacity(sc.Cluster), 0))+int64(prev), framework.MaxReplicas))
		if !takesNew(sc.Cluster) {
			// The filters let a cluster that is unhealthy or cordoned keep
			// what it runs (moving it off is failover's call); it must not
			// grow.
			capacity = min(capacity, prev)
		}
		cands = append(cands, candidate{
			name:     sc.Cluster.Name,
			cluster:  sc.Cluster,
			score:    sc.Score,
			capacity: capacity,
			previous: prev,
			tiebreak: framework.TieBreak(s.Workload.UID, sc.Cluster.Name),
		})
	}
	slices.SortFunc(cands, func(a, b candidate) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(cands); i++ {
		if cands[i].name == cands[i-1].name {
			return nil, fmt.Errorf("%s: cluster %s is a candidate twice", Name, cands[i].name)
		}
	}
	return cands, nil
}

// takesNew reports whether c takes new replicas: it is not cordoned, and
// Ready (or reports no health at all, as in a snapshot built by hand).
func takesNew(c *framework.Cluster) bool {
	return (c.Health == "" || c.Health == framework.HealthReady) && !c.Unschedulable
}

// steady reports whether the placement keeps what runs: there is a
// placement in force and the policy did not change.
func steady(s *framework.Snapshot) bool { return len(s.Previous) > 0 && !s.Fresh }

// targetsOf returns the clusters that get replicas, in name order. The
// slice is never nil: an empty placement (0 replicas divided) still ends
// the stage.
func targetsOf(cands []candidate, counts []int32) []framework.Target {
	targets := make([]framework.Target, 0, len(cands))
	for i, n := range counts {
		if n > 0 {
			targets = append(targets, framework.Target{Cluster: cands[i].name, Replicas: n})
		}
	}
	return targets
}

// aggregate packs replicas into as few clusters as possible: clusters
// ordered by (running the workload first in steady mode, score, capacity,
// tie-break) are filled to capacity in turn. In steady mode the clusters
// keep what they run (up to capacity), a scale up fills them in that same
// order and a scale down empties the last ones first, so the number of
// clusters only grows when it must.
func aggregate(s *framework.Snapshot, cands []candidate, replicas int32) ([]int32, *framework.Status) {
	keep := steady(s)
	near := make([]int, len(cands))
	if keep {
		kept := make([]int32, len(cands))
		for i, c := range cands {
			kept[i] = min(c.previous, c.capacity)
		}
		near = nearest(cands, lostReplicas(s, cands, kept))
	}
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ca, cb := &cands[a], &cands[b]
		var ran int
		if keep {
			ran = cmp.Compare(min(cb.previous, 1), min(ca.previous, 1))
		}
		return cmp.Or(ran,
			cmp.Compare(near[a], near[b]), // lost replicas stay near where they ran
			cmp.Compare(cb.score, ca.score),
			cmp.Compare(cb.capacity, ca.capacity),
			cmp.Compare(ca.tiebreak, cb.tiebreak),
			strings.Compare(ca.name, cb.name))
	})
	all := make([]bool, len(cands))
	for i := range all {
		all[i] = true
	}
	if st := checkCapacity(cands, all, replicas, ""); st != nil {
		return nil, st
	}

	counts := make([]int32, len(cands))
	left := int64(replicas) // to add (> 0) or remove (< 0)
	if keep {
		for i, c := range cands {
			counts[i] = min(c.previous, c.capacity)
			left -= int64(counts[i])
		}
	}
	for _, i := range order {
		if left <= 0 {
			break
		}
		add := min(int64(cands[i].capacity-counts[i]), left)
		counts[i] += int32(add)
		left -= add
	}
	for k := len(order) - 1; k >= 0 && left < 0; k-- {
		i := order[k]
		drop := min(int64(counts[i]), -left)
		counts[i] -= int32(drop)
		left += drop
	}
	return counts, nil
}

// checkCapacity answers Unschedulable when the eligible candidates cannot
// hold replicas together. which qualifies "clusters" in the reason when
// some candidates are not eligible (such as "with a positive weight").
func checkCapacity(cands []candidate, eligible []bool, replicas int32, which string) *framework.Status {
	var fit int64
	for i, c := range cands {
		if eligible[i] {
			fit += int64(c.capacity)
		}
	}
	if fit >= int64(replicas) {
		return nil
	}
	var parts []string
	for i, c := range cands {
		if eligible[i] {
			parts = append(parts, fmt.Sprintf("%s: %d", c.name, c.capacity))
		}
	}
	return framework.NewStatus(framework.Unschedulable, "%d replicas requested, the feasible clusters%s fit %d (%s)",
		replicas, which, fit, nameList(parts))
}

// nameList joins parts for a reason, naming at most reasonListMax.
func nameList(parts []string) string {
	if len(parts) == 0 {
		return "none"
	}
	if len(parts) <= reasonListMax {
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(parts[:reasonListMax], ", "), len(parts)-reasonListMax)
}
