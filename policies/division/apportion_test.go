package division

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestDivideByWeight(t *testing.T) {
	big := int64(math.MaxInt64 / 2)
	tests := []struct {
		name     string
		total    int32
		weights  []int64
		capacity []int32
		tiebreak []uint64
		want     []int32
		err      error
	}{
		{name: "exact", total: 6, weights: []int64{2, 1}, capacity: []int32{10, 10}, tiebreak: []uint64{0, 0}, want: []int32{4, 2}},
		{name: "largest remainder", total: 10, weights: []int64{1, 1, 1}, capacity: []int32{10, 10, 10}, tiebreak: []uint64{3, 1, 2}, want: []int32{3, 4, 3}},
		{name: "remainder ties go to the higher weight", total: 2, weights: []int64{1, 3}, capacity: []int32{9, 9}, tiebreak: []uint64{0, 1}, want: []int32{0, 2}},
		{name: "leftover to the largest remainder", total: 7, weights: []int64{6, 3, 1}, capacity: []int32{9, 9, 9}, tiebreak: []uint64{0, 1, 2}, want: []int32{4, 2, 1}},
		{name: "Hamilton, not D'Hondt", total: 10, weights: []int64{60, 25, 15}, capacity: []int32{99, 99, 99}, tiebreak: []uint64{0, 1, 2}, want: []int32{6, 3, 1}},
		{name: "weight 0 gets nothing", total: 5, weights: []int64{0, 1}, capacity: []int32{10, 10}, tiebreak: []uint64{0, 1}, want: []int32{0, 5}},
		{name: "overflow cascades", total: 12, weights: []int64{10, 5, 1}, capacity: []int32{2, 3, 100}, tiebreak: []uint64{0, 1, 2}, want: []int32{2, 3, 7}},
		{name: "exactly full", total: 6, weights: []int64{1, 100}, capacity: []int32{3, 3}, tiebreak: []uint64{0, 1}, want: []int32{3, 3}},
		{name: "huge weights do not overflow", total: 3, weights: []int64{big, big}, capacity: []int32{math.MaxInt32, math.MaxInt32}, tiebreak: []uint64{1, 0}, want: []int32{1, 2}},
		{name: "nothing to divide", total: 0, weights: []int64{0, 0}, capacity: []int32{0, 0}, tiebreak: []uint64{0, 1}, want: []int32{0, 0}},
		{name: "no weight", total: 1, weights: []int64{0}, capacity: []int32{1}, tiebreak: []uint64{0}, err: ErrNoWeight},
		{name: "no room", total: 5, weights: []int64{1, 1, 0}, capacity: []int32{1, 2, 100}, tiebreak: []uint64{0, 1, 2}, err: &CapacityError{Requested: 5, Fit: 3}},
		{name: "lengths differ", total: 1, weights: []int64{1}, capacity: []int32{1, 1}, tiebreak: []uint64{0}, err: ErrInvalidInput},
		{name: "negative weight", total: 1, weights: []int64{-1, 1}, capacity: []int32{1, 1}, tiebreak: []uint64{0, 0}, err: ErrInvalidInput},
		{name: "weights beyond 2^64", total: 1, weights: []int64{math.MaxInt64, math.MaxInt64, math.MaxInt64}, capacity: []int32{1, 1, 1}, tiebreak: []uint64{0, 1, 2}, err: ErrInvalidInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DivideByWeight(tc.total, tc.weights, tc.capacity, tc.tiebreak)
			var ce *CapacityError
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("err = %v", err)
			case errors.As(tc.err, &ce):
				var gce *CapacityError
				if !errors.As(err, &gce) || *gce != *ce {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("err = %v, want %v", err, tc.err)
			case !slices.Equal(got, tc.want):
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// hamilton is the largest-remainder method without capacity, in small
// numbers: floors, then one each to the largest remainders.
func hamilton(total int32, weights []int64, tiebreak []uint64) []int32 {
	var sum int64
	for _, w := range weights {
		sum += w
	}
	out := make([]int32, len(weights))
	left := int64(total)
	idx := make([]int, len(weights))
	for i, w := range weights {
		out[i] = int32(int64(total) * w / sum)
		left -= int64(out[i])
		idx[i] = i
	}
	rem := func(i int) int64 { return int64(total) * weights[i] % sum }
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case rem(a) != rem(b):
			return int(sign(rem(b) - rem(a)))
		case weights[a] != weights[b]:
			return int(sign(weights[b] - weights[a]))
		case tiebreak[a] != tiebreak[b]:
			if tiebreak[a] < tiebreak[b] {
				return -1
			}
			return 1
		}
		return 0
	})
	for _, i := range idx[:left] {
		out[i]++
	}
	return out
}

// rebalanceByOne is Rebalance as its doc states it: one replica at a time.
func rebalanceByOne(current, ideal []int32, weights []int64, tiebreak []uint64) []int32 {
	out := slices.Clone(current)
	var have, want int64
	for i := range current {
		have, want = have+int64(current[i]), want+int64(ideal[i])
	}
	for ; have != want; have += sign(want - have) {
		best := -1
		for i := range out {
			d := int64(ideal[i]) - int64(out[i])
			if have > want {
				d = -d
			}
			if d <= 0 {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			bd := int64(ideal[best]) - int64(out[best])
			if have > want {
				bd = -bd
			}
			wcmp := weights[i] > weights[best]
			if have > want {
				wcmp = weights[i] < weights[best]
			}
			if d > bd || (d == bd && (wcmp || (weights[i] == weights[best] && tiebreak[i] < tiebreak[best]))) {
				best = i
			}
		}
		out[best] += int32(sign(want - have))
	}
	return out
}

func sign(x int64) int64 {
	if x < 0 {
		return -1
	}
	return 1
}

func TestRebalanceMatchesOneAtATime(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "n")
		current := rapid.SliceOfN(rapid.Int32Range(0, 12), n, n).Draw(t, "current")
		ideal := rapid.SliceOfN(rapid.Int32Range(0, 12), n, n).Draw(t, "ideal")
		weights := rapid.SliceOfN(rapid.Int64Range(0, 3), n, n).Draw(t, "weights")
		tiebreak := rapid.SliceOfN(rapid.Uint64Range(0, 5), n, n).Draw(t, "tiebreak")
		got, err := Rebalance(current, ideal, weights, tiebreak)
		if err != nil {
			t.Fatal(err)
		}
		if want := rebalanceByOne(current, ideal, weights, tiebreak); !slices.Equal(got, want) {
			t.Fatalf("Rebalance = %v, one at a time = %v", got, want)
		}
	})
}

func TestDivideByWeightProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 10).Draw(t, "n")
		weights := rapid.SliceOfN(rapid.Int64Range(0, 20), n, n).Draw(t, "weights")
		capacity := rapid.SliceOfN(rapid.Int32Range(0, 30), n, n).Draw(t, "capacity")
		tiebreak := rapid.SliceOfN(rapid.Uint64(), n, n).Draw(t, "tiebreak")
		total := rapid.Int32Range(0, 100).Draw(t, "total")
		got, err := DivideByWeight(total, weights, capacity, tiebreak)
		var fit, wsum int64
		for i, w := range weights {
			if w > 0 {
				fit += int64(capacity[i])
				wsum += w
			}
		}
		if total > 0 && (wsum == 0 || fit < int64(total)) {
			if err == nil {
				t.Fatalf("no error with fit %d, weight %d for %d", fit, wsum, total)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		ample := true
		for i, g := range got {
			sum += int64(g)
			if g < 0 || g > capacity[i] || (weights[i] == 0 && g > 0) {
				t.Fatalf("entry %d: %d (weight %d, capacity %d)", i, g, weights[i], capacity[i])
			}
			ample = ample && (weights[i] == 0 || capacity[i] >= total)
		}
		if sum != int64(total) {
			t.Fatalf("sum %d, want %d", sum, total)
		}
		if !ample || total == 0 {
			return
		}
		for i, g := range got { // Hamilton: |g - total*w/wsum| < 1
			if d := int64(g)*wsum - int64(total)*weights[i]; d <= -wsum || d >= wsum {
				t.Fatalf("entry %d: %d is not within 1 of %d*%d/%d", i, g, total, weights[i], wsum)
			}
		}
		if want := hamilton(total, weights, tiebreak); !slices.Equal(got, want) {
			t.Fatalf("got %v, the largest remainders give %v", got, want)
		}
	})
}

// benchCandidates is n clusters over 5 regions of 4 datacenters each.
func benchCandidates(n int) []framework.Scored {
	out := make([]framework.Scored, n)
	for i := range out {
		r, d := i%5, (i/5)%4
		out[i] = framework.Scored{
			Cluster: cl(fmt.Sprintf("c%04d", i), fmt.Sprintf("r%d", r), fmt.Sprintf("r%d-d%d", r, d), int64(20+i%37)),
			Score:   int64(i % 101),
		}
	}
	return out
}

func BenchmarkDivide(b *testing.B) {
	prefs := map[string]*meridianv1.Placement{
		"equal":        divided("", nil),
		"aggregated":   divided(Aggregated, nil),
		"dynamic":      divided(Weighted, &meridianv1.ClusterPreferences{DynamicWeight: AvailableReplicas}),
		"hierarchical": divided(Weighted, &meridianv1.ClusterPreferences{HierarchicalWeights: &meridianv1.HierarchicalWeights{Regions: []*meridianv1.RegionWeight{{Name: "r0", Weight: 3}}}}),
	}
	p := New()
	for _, n := range []int{100, 1000} {
		cands := benchCandidates(n)
		for _, name := range []string{"equal", "aggregated", "dynamic", "hierarchical"} {
			for _, mode := range []string{"fresh", "steady"} {
				b.Run(fmt.Sprintf("%s/%s/n=%d", name, mode, n), func(b *testing.B) {
					s, cands := snap(int32(7*n), prefs[name]), cands
					if mode == "steady" { // the placement in force lost every tenth cluster and is scaled up by 10%
						res, st := p.Divide(context.Background(), fresh(snap(int32(6*n), prefs[name])), cands)
						if !st.IsSuccess() {
							b.Fatal(st.Reason)
						}
						s.Previous = res.Targets
						cands = slices.DeleteFunc(slices.Clone(cands), func(c framework.Scored) bool { return c.Cluster.Name[len(c.Cluster.Name)-1] == '0' })
					}
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
}

func BenchmarkDivideByWeight(b *testing.B) {
	for _, n := range []int{100, 1000} {
		weights, capacity, tiebreak := make([]int64, n), make([]int32, n), make([]uint64, n)
		for i := range n {
			weights[i], capacity[i], tiebreak[i] = int64(1+i%7), int32(5+i%11), framework.TieBreak("bench", fmt.Sprint(i))
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := DivideByWeight(int32(8*n), weights, capacity, tiebreak); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
