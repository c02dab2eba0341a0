package placement

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// rejectNamed is a filter that keeps out the clusters it names.
type rejectNamed struct {
	name  string
	out   []string
	calls atomic.Int64
}

func (r *rejectNamed) Name() string { return r.name }
func (r *rejectNamed) Filter(_ context.Context, _ *framework.Snapshot, c *framework.Cluster) *framework.Status {
	r.calls.Add(1)
	if slices.Contains(r.out, c.Name) {
		return framework.NewStatus(framework.Unschedulable, "%s says no", r.name)
	}
	return nil
}

// batchFilter answers for every cluster in one call.
type batchFilter struct {
	rejectNamed
	batches atomic.Int64
}

func (b *batchFilter) FilterAll(ctx context.Context, s *framework.Snapshot, cs []*framework.Cluster) []*framework.Status {
	b.batches.Add(1)
	out := make([]*framework.Status, len(cs))
	for i, c := range cs {
		out[i] = b.Filter(ctx, s, c)
	}
	return out
}

// fixedScore scores from a table.
type fixedScore struct {
	name   string
	scores map[string]int64
}

func (f *fixedScore) Name() string { return f.name }
func (f *fixedScore) Score(_ context.Context, _ *framework.Snapshot, c *framework.Cluster) (int64, *framework.Status) {
	return f.scores[c.Name], nil
}

// firstN places all replicas on the first candidate: it shows the order
// the engine hands candidates in.
type firstN struct{}

func (firstN) Name() string { return "First" }
func (firstN) Divide(_ context.Context, s *framework.Snapshot, cands []framework.Scored) (framework.DivideResult, *framework.Status) {
	if len(cands) == 0 {
		return framework.DivideResult{}, framework.NewStatus(framework.Unschedulable, "nothing left")
	}
	return framework.DivideResult{Targets: []framework.Target{{Cluster: cands[0].Cluster.Name, Replicas: s.Workload.Replicas}}}, nil
}

func clusters(names ...string) []*framework.Cluster {
	out := make([]*framework.Cluster, len(names))
	for i, n := range names {
		out[i] = &framework.Cluster{Name: n, Region: "r-" + n[:1], Health: framework.HealthReady}
	}
	return out
}

func snapshot(cs []*framework.Cluster) framework.Snapshot {
	return framework.Snapshot{Workload: &framework.Workload{Kind: "Deployment", Name: "web", UID: "uid-1", Replicas: 3, Divisible: true}, Clusters: cs}
}

func TestEngineRunsStagesInConfiguredOrder(t *testing.T) {
	f1 := &rejectNamed{name: "F1", out: []string{"a"}}
	f2 := &batchFilter{rejectNamed: rejectNamed{name: "F2", out: []string{"b"}}}
	s1 := &fixedScore{name: "S1", scores: map[string]int64{"c": 10, "d": 90}}
	s2 := &fixedScore{name: "S2", scores: map[string]int64{"c": 100, "d": 0}}
	e, err := New(Config{Filters: []string{"F1", "F2"}, Scorers: []WeightedScorer{{"S1", 1}, {"S2", 3}}, Divide: []string{"First"}},
		[]framework.Plugin{f1, f2, s1, s2, firstN{}})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Place(context.Background(), snapshot(clusters("a", "b", "c", "d")))
	if !res.Status.IsSuccess() {
		t.Fatalf("status %+v", res.Status)
	}
	// c: 10 + 3*100 = 310 beats d: 90.
	if want := []framework.Target{{Cluster: "c", Replicas: 3}}; !slices.Equal(res.Targets, want) {
		t.Fatalf("targets %v, want %v", res.Targets, want)
	}
	if f1.calls.Load() != 4 || f2.calls.Load() != 3 || f2.batches.Load() != 1 {
		t.Fatalf("F1 saw %d clusters, F2 %d in %d batches; want 4, 3 (after F1), 1", f1.calls.Load(), f2.calls.Load(), f2.batches.Load())
	}
	want := map[string]string{"a": "Unschedulable/F1", "b": "Unschedulable/F2", "c": "Success/", "d": "Success/"}
	for _, v := range res.Verdicts {
		if got := v.Code.String() + "/" + v.Plugin; got != want[v.Cluster] {
			t.Errorf("verdict of %s is %s, want %s", v.Cluster, got, want[v.Cluster])
		}
	}
}

func TestEngineNoFeasibleClusterSaysWhy(t *testing.T) {
	f := &rejectNamed{name: "F", out: []string{"a", "b"}}
	e, err := New(Config{Filters: []string{"F"}, Divide: []string{"First"}}, []framework.Plugin{f, firstN{}})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Place(context.Background(), snapshot(clusters("a", "b")))
	if res.Status.CodeOf() != framework.Unschedulable || res.Targets != nil {
		t.Fatalf("got %+v, want Unschedulable without targets", res)
	}
	for _, want := range []string{"0/2 clusters are feasible", "a: F says no (F)", "b: F says no (F)"} {
		if !strings.Contains(res.Status.Reason, want) {
			t.Errorf("reason %q lacks %q", res.Status.Reason, want)
		}
	}
}

func TestEngineFallsBackThroughAffinityTerms(t *testing.T) {
	e := NewDefault()
	cs := clusters("a1", "a2", "b1")
	s := snapshot(cs)
	s.Placement = &meridianv1.Placement{ClusterAffinities: []*meridianv1.ClusterAffinityTerm{
		{AffinityName: "primary", ClusterNames: []string{"zz"}},
		{AffinityName: "backup", ClusterNames: []string{"b1"}},
	}}
	res := e.Place(context.Background(), s)
	if !res.Status.IsSuccess() || res.AffinityName != "backup" {
		t.Fatalf("got %+v, want a placement through the backup term", res)
	}
	if want := []framework.Target{{Cluster: "b1", Replicas: 3}}; !slices.Equal(res.Targets, want) {
		t.Fatalf("targets %v, want %v", res.Targets, want)
	}
	s.Placement.ClusterAffinities[1].ClusterNames = []string{"yy"}
	res = e.Place(context.Background(), s)
	if res.Status.IsSuccess() || !strings.Contains(res.Status.Reason, "primary:") || !strings.Contains(res.Status.Reason, "backup:") {
		t.Fatalf("got %+v, want a failure naming both terms", res.Status)
	}
}

func TestNewRejectsBadPipelines(t *testing.T) {
	f := &rejectNamed{name: "F"}
	s := &fixedScore{name: "S"}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Filters: []string{"nope"}, Divide: []string{"First"}}, `placement.filters[0]: no plugin named "nope"`},
		{Config{Filters: []string{"S"}, Divide: []string{"First"}}, `placement.filters[0]: plugin "S" is not a filter`},
		{Config{Filters: []string{"F", "F"}, Divide: []string{"First"}}, `placement.filters[1]: "F" is listed twice`},
		{Config{Scorers: []WeightedScorer{{"S", 0}}, Divide: []string{"First"}}, `placement.scorers[0].weight: must be positive`},
		{Config{Scorers: []WeightedScorer{{"F", 1}}, Divide: []string{"First"}}, `placement.scorers[0].name: plugin "F" is not a scorer`},
		{Config{Divide: []string{"F"}}, `placement.divide[0]: plugin "F" is not a divider`},
		{Config{}, `placement.divide: at least one divide plugin is required`},
	} {
		_, err := New(tc.cfg, []framework.Plugin{f, s, firstN{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(DefaultConfig(), append(Builtins(), &rejectNamed{name: ClusterAffinity})); err == nil || !strings.Contains(err.Error(), "two plugins are named") {
		t.Errorf("duplicate plugin names: %v", err)
	}
}

// TestDefaultPipelineDeterministic places many workloads twice and with
// the clusters listed in another order: the same result every time.
func TestDefaultPipelineDeterministic(t *testing.T) {
	e := NewDefault()
	cs := clusters("a1", "a2", "b1", "b2", "c1")
	pl := &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Divided", ReplicaDivisionPreference: "Aggregated"}}
	for i := range 50 {
		s := snapshot(cs)
		s.Workload.UID = fmt.Sprintf("uid-%d", i)
		s.Placement = pl
		first := e.Place(context.Background(), s)
		rev := slices.Clone(cs)
		slices.Reverse(rev)
		s.Clusters = rev
		if again := e.Place(context.Background(), s); !slices.Equal(first.Targets, again.Targets) {
			t.Fatalf("workload %d: %v, then %v with the clusters reversed", i, first.Targets, again.Targets)
		}
	}
}
