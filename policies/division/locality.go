package division

import (
	"slices"
	"strings"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Locality of lost replicas. In steady mode a cluster can lose replicas:
// it left the candidates (failover put it in Snapshot.Failed, a filter
// now rejects it, the policy weighs it 0) or its capacity shrank below
// what it ran. Those replicas move, and they move as close to where they
// ran as the policy allows, in three tiers:
//
//  1. the candidates in the same datacenter as the cluster they left,
//  2. then the candidates in the same region,
//  3. then anywhere: the ordinary steady rule (Rebalance towards the
//     division a fresh placement would make).
//
// Within tiers 1 and 2 the tier's clusters are levelled: what the tier
// will run (what it runs plus the lost replicas it takes) is divided by
// the policy's weights within capacity (DivideByWeight), and the lost
// replicas are added towards that division (Rebalance) — no cluster goes
// past its capacity, a cluster of weight 0 gets nothing, and a cluster
// already above its share in the tier gets nothing more. A tier that
// cannot hold them all (its room: capacity minus what runs) passes the
// rest to the next tier. Only lost replicas are placed this way: replicas added
// by a scale up still follow the weights (Rebalance), and when the
// workload also scaled down, only as many lost replicas as are still
// wanted are re-placed. Sources are handled in cluster-name order, so the
// result does not depend on input order.

// lost is what one cluster of the placement in force loses.
type lost struct {
	cluster  *framework.Cluster // nil when the snapshot does not know it
	name     string
	replicas int32
}

// lostReplicas lists, in name order, the clusters of s.Previous that keep
// fewer replicas than they ran (kept is indexed like cands).
func lostReplicas(s *framework.Snapshot, cands []candidate, kept []int32) []lost {
	at := make(map[string]int, len(cands))
	for i, c := range cands {
		at[c.name] = i
	}
	byName := make(map[string]*framework.Cluster, len(s.Clusters))
	for _, c := range s.Clusters {
		byName[c.Name] = c
	}
	var out []lost
	for _, t := range s.Previous {
		n := max(t.Replicas, 0)
		if i, ok := at[t.Cluster]; ok {
			n -= kept[i]
		}
		if n > 0 {
			out = append(out, lost{cluster: byName[t.Cluster], name: t.Cluster, replicas: n})
		}
	}
	slices.SortFunc(out, func(a, b lost) int { return strings.Compare(a.name, b.name) })
	return out
}

// Proximity of a candidate to a cluster that lost replicas.
const (
	sameDatacenter = iota
	sameRegion
	elsewhere
)

// proximity is how close c is to src: same datacenter (of the same
// region), same region, or elsewhere. Empty topology never matches.
func proximity(c, src *framework.Cluster) int {
	switch {
	case c == nil || src == nil || c.Region == "" || c.Region != src.Region:
		return elsewhere
	case c.Datacenter != "" && c.Datacenter == src.Datacenter:
		return sameDatacenter
	default:
		return sameRegion
	}
}

// placeLocal adds to counts (indexed like cands) the lost replicas that
// fit in tiers 1 and 2, at most wanted of them, and returns the new
// counts. weights are the scheme's (0 keeps a candidate out).
func placeLocal(cands []candidate, counts []int32, weights []int64, losses []lost, wanted int64) []int32 {
	out := slices.Clone(counts)
	for _, l := range losses {
		if wanted <= 0 {
			break
		}
		left := min(int64(l.replicas), wanted)
		for tier := sameDatacenter; tier <= sameRegion && left > 0; tier++ {
			var idx []int
			var room, have int64
			for i, c := range cands {
				if weights[i] > 0 && proximity(c.cluster, l.cluster) == tier {
					idx = append(idx, i)
					room += int64(c.capacity - out[i])
					have += int64(out[i])
				}
			}
			give := min(left, room)
			if give <= 0 {
				continue
			}
			// Level the tier: divide what it will run by weight, then move
			// only the lost replicas towards that division.
			w := make([]int64, len(idx))
			capacity := make([]int32, len(idx))
			tiebreak := make([]uint64, len(idx))
			current := make([]int32, len(idx))
			for k, i := range idx {
				w[k], capacity[k], tiebreak[k], current[k] = weights[i], cands[i].capacity, cands[i].tiebreak, out[i]
			}
			ideal, err := DivideByWeight(int32(have+give), w, capacity, tiebreak)
			if err != nil {
				continue // cannot happen: the tier's capacity holds have+give
			}
			next, err := Rebalance(current, ideal, w, tiebreak)
			if err != nil {
				continue // cannot happen: ideal adds up to have+give
			}
			for k, i := range idx {
				out[i] = next[k]
			}
			left -= give
			wanted -= give
		}
	}
	return out
}

// nearest is, for every candidate, its best proximity to any cluster that
// lost replicas (elsewhere when none did): Aggregated fills the nearest
// clusters first.
func nearest(cands []candidate, losses []lost) []int {
	out := make([]int, len(cands))
	for i, c := range cands {
		out[i] = elsewhere
		for _, l := range losses {
			out[i] = min(out[i], proximity(c.cluster, l.cluster))
		}
	}
	return out
}
