package division

import (
	"fmt"
	"math"
	"slices"

	"github.com/meridian-fed/meridian/policies/clusteraffinity"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// scheme is how one weighted policy divides replicas over the candidates
// (indexed like them).
type scheme struct {
	// weights are the candidates' weights. 0 keeps a candidate out: it
	// gets nothing and, in steady mode, keeps nothing. Steady mode breaks
	// ties by them.
	weights []int64
	// divide is the fresh division of total replicas.
	divide func(total int32) ([]int32, error)
	// which qualifies "clusters" in reasons when weights keep some out.
	which string
}

// weigh divides replicas by the policy's weightPreference, fresh or
// steady.
func weigh(s *framework.Snapshot, cands []candidate, replicas int32) ([]int32, *framework.Status) {
	sch, st := schemeFor(s, cands)
	if st != nil {
		return nil, st
	}
	eligible := make([]bool, len(cands))
	for i, w := range sch.weights {
		eligible[i] = w > 0
	}
	if st := checkCapacity(cands, eligible, replicas, sch.which); st != nil {
		return nil, st
	}
	ideal, err := sch.divide(replicas)
	if err != nil {
		return nil, framework.AsStatus(fmt.Errorf("failed to divide %d replicas: %w", replicas, err))
	}
	if !steady(s) {
		return ideal, nil
	}
	kept := make([]int32, len(cands))
	tiebreak := make([]uint64, len(cands))
	for i, c := range cands {
		if eligible[i] {
			kept[i] = min(c.previous, c.capacity)
		}
		tiebreak[i] = c.tiebreak
	}
	// Lost replicas go near where they ran first (locality.go); the rest of
	// the difference moves towards the fresh division.
	var have int64
	for _, k := range kept {
		have += int64(k)
	}
	if losses := lostReplicas(s, cands, kept); len(losses) > 0 {
		kept = placeLocal(cands, kept, sch.weights, losses, int64(replicas)-have)
	}
	counts, err := Rebalance(kept, ideal, sch.weights, tiebreak)
	if err != nil {
		return nil, framework.AsStatus(fmt.Errorf("failed to keep the placement in force: %w", err))
	}
	return counts, nil
}

// schemeFor reads the policy's weightPreference: at most one of its three
// ways to weigh clusters may be set.
func schemeFor(s *framework.Snapshot, cands []candidate) (*scheme, *framework.Status) {
	pref := s.Placement.GetReplicaScheduling().GetWeightPreference()
	static, dynamic, hier := pref.GetStaticWeightList(), pref.GetDynamicWeight(), pref.GetHierarchicalWeights()
	set := 0
	for _, on := range []bool{len(static) > 0, dynamic != "", hier != nil} {
		if on {
			set++
		}
	}
	if set > 1 {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable,
			"weightPreference sets more than one of staticWeightList, dynamicWeight and hierarchicalWeights")
	}
	switch {
	case len(static) > 0:
		return staticScheme(static, cands)
	case dynamic != "":
		if dynamic != AvailableReplicas {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable,
				"dynamicWeight %q is not %s", dynamic, AvailableReplicas)
		}
		return flatScheme(cands, dynamicWeights(cands), ""), nil
	case hier != nil:
		return hierarchicalScheme(s.Workload.UID, hier, cands)
	}
	weights := make([]int64, len(cands))
	for i := range weights {
		weights[i] = 1
	}
	return flatScheme(cands, weights, ""), nil
}

// flatScheme divides by one weight per cluster.
func flatScheme(cands []candidate, weights []int64, which string) *scheme {
	capacity := make([]int32, len(cands))
	tiebreak := make([]uint64, len(cands))
	for i, c := range cands {
		capacity[i], tiebreak[i] = c.capacity, c.tiebreak
	}
	return &scheme{
		weights: weights,
		divide: func(total int32) ([]int32, error) {
			return DivideByWeight(total, weights, capacity, tiebreak)
		},
		which: which,
	}
}

// staticScheme weighs each cluster by the highest weight among the
// staticWeightList entries whose targetCluster matches it, 0 when none
// does. The highest, not the first or the sum, because that is what
// Karmada does and because it does not depend on the order of the list:
// a broad entry ("every cluster: 1") next to a narrow one ("cluster a:
// 3") reads the same either way round. Unlike Karmada, which falls back to
// equal weights, a list that weighs every candidate 0 is Unschedulable:
// the user said where replicas may go, and none of those clusters is
// feasible.
func staticScheme(list []*meridianv1.StaticClusterWeight, cands []candidate) (*scheme, *framework.Status) {
	matchers := make([]*clusteraffinity.Matcher, len(list))
	for j, e := range list {
		if e.GetWeight() < 0 {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable,
				"staticWeightList[%d].weight %d is negative", j, e.GetWeight())
		}
		m, err := clusteraffinity.Compile(e.GetTargetCluster())
		if err != nil {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable,
				"staticWeightList[%d].targetCluster: %v", j, err)
		}
		matchers[j] = m
	}
	weights := make([]int64, len(cands))
	positive := false
	for i, c := range cands {
		for j, e := range list {
			if ok, _ := matchers[j].Match(c.cluster); ok {
				weights[i] = max(weights[i], e.GetWeight())
			}
		}
		positive = positive || weights[i] > 0
	}
	if !positive {
		names := make([]string, len(cands))
		for i, c := range cands {
			names[i] = c.name
		}
		return nil, framework.NewStatus(framework.Unschedulable,
			"staticWeightList gives no feasible cluster a positive weight (feasible: %s)", nameList(names))
	}
	return flatScheme(cands, weights, " with a positive weight"), nil
}

// dynamicWeights weighs each cluster by the replicas it can fit. A cluster
// that reports no capacity yet fits without bound; weighing it by
// MaxReplicas would send it every replica, so it weighs as much as the
// largest bounded candidate instead (and when no candidate is bounded,
// all weigh the same).
func dynamicWeights(cands []candidate) []int64 {
	largest := int64(0)
	for _, c := range cands {
		if c.capacity < framework.MaxReplicas {
			largest = max(largest, int64(c.capacity))
		}
	}
	if largest == 0 {
		largest = 1
	}
	weights := make([]int64, len(cands))
	for i, c := range cands {
		if c.capacity >= framework.MaxReplicas {
			weights[i] = largest
		} else {
			weights[i] = int64(c.capacity)
		}
	}
	return weights
}

// node is a region, a datacenter or a cluster of a hierarchical division.
type node struct {
	weight   int64
	tiebreak uint64
	// capacity is what the eligible clusters under the node fit (0 when
	// the node or all under it weigh 0).
	capacity int64
	children []*node
	// index is the candidate a cluster node stands for (-1 for groups).
	index int
}

// hierarchicalScheme divides the replicas over the candidates' regions by
// the regions' weights, each region's share over its datacenters, then
// each datacenter's share over its clusters. Only groups with candidates
// take part; one not listed weighs 1, one of weight 0 is kept out. Each
// level respects capacity with the group's total as its capacity, so a
// cluster's overflow stays in its datacenter when it can, then in its
// region.
func hierarchicalScheme(uid string, h *meridianv1.HierarchicalWeights, cands []candidate) (*scheme, *framework.Status) {
	regions, st := regionWeights(h)
	if st != nil {
		return nil, st
	}
	weights := make([]int64, len(cands))
	root := &node{index: -1}
	byRegion := map[string]*node{}
	byDC := map[[2]string]*node{}
	var regionOrder []string
	// Candidates are in name order, so groups and their children are
	// built in a fixed order too (the map is only an index).
	for i, c := range cands {
		region, dc := c.cluster.Region, c.cluster.Datacenter
		rw := regions[region]
		rn := byRegion[region]
		if rn == nil {
			rn = &node{weight: weightOr(rw != nil, rw.GetWeight()), tiebreak: framework.TieBreak(uid, "region:"+region), index: -1}
			byRegion[region] = rn
			regionOrder = append(regionOrder, region)
		}
		dw := find(rw.GetDatacenters(), dc, (*meridianv1.DatacenterWeight).GetName)
		dn := byDC[[2]string{region, dc}]
		if dn == nil {
			dn = &node{weight: weightOr(dw != nil, dw.GetWeight()), tiebreak: framework.TieBreak(uid, "datacenter:"+region+"/"+dc), index: -1}
			byDC[[2]string{region, dc}] = dn
			rn.children = append(rn.children, dn)
		}
		cw := find(dw.GetClusters(), c.name, (*meridianv1.ClusterWeight).GetName)
		cn := &node{weight: weightOr(cw != nil, cw.GetWeight()), tiebreak: c.tiebreak, index: i}
		dn.children = append(dn.children, cn)
		if cn.weight > 0 && dn.weight > 0 && rn.weight > 0 {
			weights[i] = cn.weight
			cn.capacity = int64(c.capacity)
			dn.capacity += cn.capacity
			rn.capacity += cn.capacity
		}
	}
	slices.Sort(regionOrder)
	for _, r := range regionOrder {
		root.children = append(root.children, byRegion[r])
	}
	if !slices.ContainsFunc(weights, func(w int64) bool { return w > 0 }) {
		return nil, framework.NewStatus(framework.Unschedulable,
			"hierarchicalWeights gives no feasible cluster a positive weight (feasible regions: %s)", nameList(regionOrder))
	}
	return &scheme{
		weights: weights,
		divide: func(total int32) ([]int32, error) {
			out := make([]int32, len(cands))
			return out, divideNode(root, total, out)
		},
		which: " with a positive weight",
	}, nil
}

// divideNode divides total over n's children by weight and capacity, down
// to the clusters, writing the clusters' counts to out.
func divideNode(n *node, total int32, out []int32) error {
	if n.index >= 0 {
		out[n.index] = total
		return nil
	}
	weights := make([]int64, len(n.children))
	capacity := make([]int32, len(n.children))
	tiebreak := make([]uint64, len(n.children))
	for i, c := range n.children {
		weights[i] = c.weight
		capacity[i] = int32(min(c.capacity, math.MaxInt32)) // beyond total, capacity does not matter
		tiebreak[i] = c.tiebreak
	}
	shares, err := DivideByWeight(total, weights, capacity, tiebreak)
	if err != nil {
		return err
	}
	for i, c := range n.children {
		if shares[i] > 0 {
			if err := divideNode(c, shares[i], out); err != nil {
				return err
			}
		}
	}
	return nil
}

// regionWeights indexes the regions of h by name after checking that no
// level names a group twice or gives it a negative weight.
func regionWeights(h *meridianv1.HierarchicalWeights) (map[string]*meridianv1.RegionWeight, *framework.Status) {
	bad := func(format string, args ...any) *framework.Status {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, "hierarchicalWeights: "+format, args...)
	}
	regions := map[string]*meridianv1.RegionWeight{}
	for _, r := range h.GetRegions() {
		if regions[r.GetName()] != nil {
			return nil, bad("region %q is listed twice", r.GetName())
		}
		if r.GetWeight() < 0 {
			return nil, bad("region %q has negative weight %d", r.GetName(), r.GetWeight())
		}
		regions[r.GetName()] = r
		dcs := map[string]bool{}
		for _, d := range r.GetDatacenters() {
			if dcs[d.GetName()] {
				return nil, bad("datacenter %q of region %q is listed twice", d.GetName(), r.GetName())
			}
			if d.GetWeight() < 0 {
				return nil, bad("datacenter %q of region %q has negative weight %d", d.GetName(), r.GetName(), d.GetWeight())
			}
			dcs[d.GetName()] = true
			clusters := map[string]bool{}
			for _, c := range d.GetClusters() {
				if clusters[c.GetName()] {
					return nil, bad("cluster %q of datacenter %q is listed twice", c.GetName(), d.GetName())
				}
				if c.GetWeight() < 0 {
					return nil, bad("cluster %q of datacenter %q has negative weight %d", c.GetName(), d.GetName(), c.GetWeight())
				}
				clusters[c.GetName()] = true
			}
		}
	}
	return regions, nil
}

// weightOr returns w for a listed group and 1 for one not listed.
func weightOr(listed bool, w int64) int64 {
	if listed {
		return w
	}
	return 1
}

// find returns the entry of list with the given name, or nil.
func find[T any](list []T, name string, nameOf func(T) string) T {
	for _, e := range list {
		if nameOf(e) == name {
			return e
		}
	}
	var zero T
	return zero
}
