package division

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// The pure arithmetic of division (apportionment): no snapshot, no
// policy, only numbers in the order the caller gives them. The plugin
// calls these with its candidates in name order; they are exported so
// that other policies (and benchmarks) can reuse them.

// ErrInvalidInput is wrapped by the errors the division helpers return for
// arguments they cannot work with (lengths that differ, negative counts,
// weights whose sum does not fit 64 bits).
var ErrInvalidInput = errors.New("invalid division input")

// ErrNoWeight is returned when replicas are to be divided but no cluster
// has a positive weight.
var ErrNoWeight = errors.New("no cluster has a positive weight")

// CapacityError is returned when the clusters that may take replicas (those
// of positive weight) cannot hold all of them together.
type CapacityError struct {
	// Requested is the number of replicas to divide.
	Requested int64
	// Fit is how many the clusters of positive weight hold together.
	Fit int64
}

// Error says how many replicas were asked for and how many fit.
func (e *CapacityError) Error() string {
	return fmt.Sprintf("%d replicas requested, the clusters fit %d", e.Requested, e.Fit)
}

// DivideByWeight divides total replicas over clusters in proportion to
// their weights, by the largest-remainder (Hamilton) method, without giving
// any cluster more than its capacity. weights, capacity and tiebreak are
// indexed alike; the result is too.
//
// Every cluster first gets the floor of its exact share; the replicas left
// (fewer than the clusters) go one each to the largest remainders, ties to
// the higher weight, then to the lower tiebreak. Hamilton is used rather
// than a divisor method (D'Hondt, Webster) because it keeps every count
// within one of its exact share, which is what a user who writes 2:1
// expects to see.
//
// A cluster whose exact share exceeds its capacity is filled to capacity
// and the others share what is left, again by weight; this repeats until
// every share fits (water-filling). Taking a capped cluster out can only
// raise the others' shares, so the loop ends after at most one round per
// cluster. Clusters of weight 0 get nothing.
//
// It returns ErrNoWeight when total > 0 and no weight is positive, and a
// *CapacityError when the clusters of positive weight fit fewer than total.
func DivideByWeight(total int32, weights []int64, capacity []int32, tiebreak []uint64) ([]int32, error) {
	n := len(weights)
	if len(capacity) != n || len(tiebreak) != n {
		return nil, fmt.Errorf("%w: %d weights, %d capacities and %d tie-breaks", ErrInvalidInput, n, len(capacity), len(tiebreak))
	}
	if total < 0 {
		return nil, fmt.Errorf("%w: negative total %d", ErrInvalidInput, total)
	}
	var fit int64
	positive := false
	for i, w := range weights {
		if w < 0 || capacity[i] < 0 {
			return nil, fmt.Errorf("%w: entry %d has weight %d and capacity %d", ErrInvalidInput, i, w, capacity[i])
		}
		if w > 0 {
			positive = true
			fit += int64(capacity[i])
		}
	}
	out := make([]int32, n)
	if total == 0 {
		return out, nil
	}
	if !positive {
		return nil, ErrNoWeight
	}
	if fit < int64(total) {
		return nil, &CapacityError{Requested: int64(total), Fit: fit}
	}

	free := make([]int, 0, n) // clusters whose share is not settled yet
	for i, w := range weights {
		if w > 0 && capacity[i] > 0 {
			free = append(free, i)
		}
	}
	rem := uint64(total) // replicas not settled yet
	for {
		sum, err := weightSum(weights, free)
		if err != nil {
			return nil, err
		}
		// Compare every share with the same rem: cap all clusters that
		// overflow in this round at once.
		round := rem
		kept := free[:0]
		for _, i := range free {
			c := uint64(capacity[i])
			if mulCmp(round, uint64(weights[i]), c, sum) > 0 { // exact share round*w/sum > c
				out[i] = capacity[i]
				rem -= c
			} else {
				kept = append(kept, i)
			}
		}
		if len(kept) == len(free) {
			break
		}
		free = kept
	}
	if rem == 0 {
		return out, nil
	}
	if len(free) == 0 { // cannot happen: fit >= total was checked
		return nil, fmt.Errorf("%w: %d replicas left and no cluster to take them", ErrInvalidInput, rem)
	}

	sum, err := weightSum(weights, free)
	if err != nil {
		return nil, err
	}
	type share struct {
		i    int
		frac uint64 // remainder of rem*w/sum, over sum: comparable as is
	}
	shares := make([]share, 0, len(free))
	var given uint64
	for _, i := range free {
		hi, lo := bits.Mul64(rem, uint64(weights[i]))
		// hi < sum holds because w <= sum, so the quotient fits 64 bits
		// and Div64 cannot panic.
		q, r := bits.Div64(hi, lo, sum)
		out[i] = int32(q) // q <= rem <= total
		given += q
		if r > 0 { // the replicas left are fewer than the positive remainders
			shares = append(shares, share{i: i, frac: r})
		}
	}
	if given == rem {
		return out, nil
	}
	slices.SortFunc(shares, func(a, b share) int {
		return cmp.Or(
			cmp.Compare(b.frac, a.frac),
			cmp.Compare(weights[b.i], weights[a.i]),
			cmp.Compare(tiebreak[a.i], tiebreak[b.i]),
			cmp.Compare(a.i, b.i),
		)
	})
	// Fewer left than free clusters; a cluster that gets one had a positive
	// remainder, so its exact share is above its floor, and as the share
	// is at most its capacity the ceiling is too.
	for k := uint64(0); k < rem-given; k++ {
		out[shares[k].i]++
	}
	return out, nil
}

// weightSum adds the weights of the clusters at idx, failing if the sum
// does not fit 64 bits.
func weightSum(weights []int64, idx []int) (uint64, error) {
	var sum, carry uint64
	for _, i := range idx {
		sum, carry = bits.Add64(sum, uint64(weights[i]), 0)
		if carry != 0 {
			return 0, fmt.Errorf("%w: the weights add up to more than 2^64", ErrInvalidInput)
		}
	}
	return sum, nil
}

// mulCmp compares a*b with c*d without overflow.
func mulCmp(a, b, c, d uint64) int {
	h1, l1 := bits.Mul64(a, b)
	h2, l2 := bits.Mul64(c, d)
	return cmp.Or(cmp.Compare(h1, h2), cmp.Compare(l1, l2))
}

// Rebalance is the steady-mode move: it changes current (what clusters keep
// of the placement in force) into a division of sum(ideal) replicas that
// moves only the difference between the two sums. ideal is the division a
// fresh placement would make; every index is shared with weights and
// tiebreak.
//
// When replicas are missing, they are added one at a time to the cluster
// furthest below its ideal count (ties: higher weight, then lower
// tiebreak). When there are too many, they are removed one at a time from
// the cluster furthest above its ideal count (ties: lower weight, then
// lower tiebreak). Clusters never go past their ideal count in the
// direction they move, so a result stays within capacity when current and
// ideal do. The one-at-a-time rule is computed in closed form (see
// levelOut), in O(n log n).
func Rebalance(current, ideal []int32, weights []int64, tiebreak []uint64) ([]int32, error) {
	n := len(current)
	if len(ideal) != n || len(weights) != n || len(tiebreak) != n {
		return nil, fmt.Errorf("%w: %d current, %d ideal, %d weights and %d tie-breaks", ErrInvalidInput, n, len(ideal), len(weights), len(tiebreak))
	}
	var have, want int64
	for i := range n {
		if current[i] < 0 || ideal[i] < 0 {
			return nil, fmt.Errorf("%w: entry %d has current %d and ideal %d", ErrInvalidInput, i, current[i], ideal[i])
		}
		have += int64(current[i])
		want += int64(ideal[i])
	}
	out := slices.Clone(current)
	if have == want {
		return out, nil
	}
	need := make([]int64, n)
	order := make([]int, n)
	for i := range n {
		order[i] = i
		if have < want {
			need[i] = int64(ideal[i]) - int64(current[i])
		} else {
			need[i] = int64(current[i]) - int64(ideal[i])
		}
	}
	up := have < want
	slices.SortFunc(order, func(a, b int) int {
		w := cmp.Compare(weights[b], weights[a]) // adding: heavier first
		if !up {
			w = -w // removing: lighter first
		}
		return cmp.Or(w, cmp.Compare(tiebreak[a], tiebreak[b]), cmp.Compare(a, b))
	})
	give, err := levelOut(need, max(want-have, have-want), order)
	if err != nil {
		return nil, err
	}
	for i, g := range give {
		if up {
			out[i] += int32(g)
		} else {
			out[i] -= int32(g)
		}
	}
	return out, nil
}

// levelOut hands out amount units one at a time, each to the index with the
// largest need left (ties: first in order), and returns how many each got.
// Rather than loop amount times it finds the level L the needs are cut down
// to: the smallest L >= 0 with sum(max(0, need-L)) <= amount. Every index
// gets need-L (when positive), and the few units still left go one each,
// in order, to the indices whose need was at least L: exactly the indices
// the one-at-a-time rule would have picked last. Needs must add up to at
// least amount among the positive ones.
func levelOut(need []int64, amount int64, order []int) ([]int64, error) {
	var top, positive int64
	for _, d := range need {
		if d > 0 {
			positive += d
			top = max(top, d)
		}
	}
	if positive < amount {
		return nil, fmt.Errorf("%w: %d to hand out over needs of %d", ErrInvalidInput, amount, positive)
	}
	above := func(l int64) int64 {
		var s int64
		for _, d := range need {
			if d > l {
				s += d - l
			}
		}
		return s
	}
	lo, hi := int64(0), top // above(top) == 0 <= amount
	for lo < hi {
		mid := lo + (hi-lo)/2
		if above(mid) <= amount {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	level := lo
	give := make([]int64, len(need))
	left := amount
	for i, d := range need {
		if d > level {
			give[i] = d - level
			left -= give[i]
		}
	}
	// left > 0 only when level > 0: then above(level-1) > amount, and
	// above(level-1) - above(level) is the number of needs >= level.
	for _, i := range order {
		if left == 0 {
			break
		}
		if need[i] >= level && level > 0 {
			give[i]++
			left--
		}
	}
	if left != 0 {
		return nil, fmt.Errorf("%w: %d units could not be handed out", ErrInvalidInput, left)
	}
	return give, nil
}
