// Package placement is the hub's placement engine and the controller that
// runs it. The engine is a pure function of a framework.Snapshot (the
// workload, its policy, the clusters and their capacity): it runs the
// configured plugins through three ordered extension points —
//
//	Filter (may this cluster run it?) → Score (how good is it?) → Divide (how many replicas each?)
//
// — and returns the targets with a verdict per cluster. The controller
// (on the hub leader) builds snapshots from the hub's store whenever an
// input changes and records each result as a ResourceBinding, from which
// the works controller builds every member's Work.
package placement

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-fed/meridian/policies/clusteraffinity"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Config is the order of the pipeline, by plugin name. Order matters and
// comes from here, never from a map: filters run cheapest and most
// selective first (affinity, taints, health before capacity), so that the
// costly ones (out-of-process plugins) see fewer clusters; the Divide
// plugins narrow before they divide (spread constraints pick the groups,
// then replicas are divided within them).
type Config struct {
	Filters []string
	Scorers []WeightedScorer
	Divide  []string
}

// WeightedScorer is a score plugin and the weight of its score in the
// total.
type WeightedScorer struct {
	Name   string
	Weight int64
}

// Default plugin names, in their default order (see DefaultConfig).
const (
	ClusterAffinity   = "ClusterAffinity"
	TaintToleration   = "TaintToleration"
	ClusterHealth     = "ClusterHealth"
	ResourcesFit      = "ResourcesFit"
	Locality          = "Locality"
	AvailableCapacity = "AvailableCapacity"
	SpreadConstraints = "SpreadConstraints"
	ReplicaDivision   = "ReplicaDivision"
)

// DefaultConfig is the pipeline a hub runs without configuration.
func DefaultConfig() Config {
	return Config{
		Filters: []string{ClusterAffinity, TaintToleration, ClusterHealth, ResourcesFit},
		// Locality keeps placements where they are; free capacity breaks
		// ties towards emptier clusters. Equal weights: neither dominates.
		Scorers: []WeightedScorer{{Name: Locality, Weight: 1}, {Name: AvailableCapacity, Weight: 1}},
		Divide:  []string{SpreadConstraints, ReplicaDivision},
	}
}

type weighted struct {
	framework.ScorePlugin
	weight int64
}

// Engine runs the placement pipeline. Safe for concurrent use.
type Engine struct {
	filters  []framework.FilterPlugin
	scorers  []weighted
	dividers []framework.DividePlugin
	failover []framework.FailoverPlugin
}

// New builds the pipeline cfg names out of plugins (the built-ins and the
// out-of-process ones, by Name). Every name must exist and offer the
// extension point it is listed under; an error names the config key.
// Failover plugins are every plugin that has the capability, in the order
// given.
func New(cfg Config, plugins []framework.Plugin) (*Engine, error) {
	byName := map[string]framework.Plugin{}
	for _, p := range plugins {
		if _, dup := byName[p.Name()]; dup {
			return nil, fmt.Errorf("placement: two plugins are named %q", p.Name())
		}
		byName[p.Name()] = p
	}
	e := &Engine{}
	var errs []error
	seen := map[string]bool{}
	for i, n := range cfg.Filters {
		p, ok := byName[n].(framework.FilterPlugin)
		switch {
		case byName[n] == nil:
			errs = append(errs, fmt.Errorf("placement.filters[%d]: no plugin named %q (known: %s)", i, n, names(plugins)))
		case !ok:
			errs = append(errs, fmt.Errorf("placement.filters[%d]: plugin %q is not a filter", i, n))
		case seen["f/"+n]:
			errs = append(errs, fmt.Errorf("placement.filters[%d]: %q is listed twice", i, n))
		default:
			e.filters = append(e.filters, p)
		}
		seen["f/"+n] = true
	}
	for i, s := range cfg.Scorers {
		p, ok := byName[s.Name].(framework.ScorePlugin)
		switch {
		case byName[s.Name] == nil:
			errs = append(errs, fmt.Errorf("placement.scorers[%d].name: no plugin named %q (known: %s)", i, s.Name, names(plugins)))
		case !ok:
			errs = append(errs, fmt.Errorf("placement.scorers[%d].name: plugin %q is not a scorer", i, s.Name))
		case s.Weight <= 0:
			errs = append(errs, fmt.Errorf("placement.scorers[%d].weight: must be positive, got %d", i, s.Weight))
		case seen["s/"+s.Name]:
			errs = append(errs, fmt.Errorf("placement.scorers[%d].name: %q is listed twice", i, s.Name))
		default:
			e.scorers = append(e.scorers, weighted{p, s.Weight})
		}
		seen["s/"+s.Name] = true
	}
	for i, n := range cfg.Divide {
		p, ok := byName[n].(framework.DividePlugin)
		switch {
		case byName[n] == nil:
			errs = append(errs, fmt.Errorf("placement.divide[%d]: no plugin named %q (known: %s)", i, n, names(plugins)))
		case !ok:
			errs = append(errs, fmt.Errorf("placement.divide[%d]: plugin %q is not a divider", i, n))
		default:
			e.dividers = append(e.dividers, p)
		}
	}
	if len(cfg.Divide) == 0 {
		errs = append(errs, errors.New("placement.divide: at least one divide plugin is required (the default is [SpreadConstraints, ReplicaDivision])"))
	}
	for _, p := range plugins {
		if fp, ok := p.(framework.FailoverPlugin); ok {
			e.failover = append(e.failover, fp)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

func names(plugins []framework.Plugin) string {
	out := make([]string, len(plugins))
	for i, p := range plugins {
		out[i] = p.Name()
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// FailoverPlugins returns the plugins with the failover capability.
func (e *Engine) FailoverPlugins() []framework.FailoverPlugin { return e.failover }

// Verdict is the pipeline's conclusion about one cluster.
type Verdict struct {
	Cluster string
	Code    framework.Code
	Plugin  string
	Reason  string
	Score   int64
}

// Result is one placement.
type Result struct {
	// Targets is the placement, sorted by cluster; nil when it failed.
	Targets []framework.Target
	// AffinityName is the clusterAffinities term used ("" without terms).
	AffinityName string
	// Verdicts has one entry per cluster, sorted by name.
	Verdicts []Verdict
	// Status is nil on success; otherwise why no placement was found
	// (Unschedulable) or what failed (Error).
	Status *framework.Status
}

// Place computes the placement of s.Workload. With ordered
// clusterAffinities, each term is tried in turn and the first that yields
// a placement wins (Karmada's fallback semantics); the result then
// reports the last term's verdicts when none does.
func (e *Engine) Place(ctx context.Context, s framework.Snapshot) Result {
	terms := s.Placement.GetClusterAffinities()
	if len(terms) == 0 {
		s.Affinity = s.Placement.GetClusterAffinity()
		return e.attempt(ctx, &s)
	}
	var res Result
	var reasons []string
	for _, t := range terms {
		s.Affinity = clusteraffinity.FromTerm(t)
		res = e.attempt(ctx, &s)
		res.AffinityName = t.GetAffinityName()
		if res.Status.IsSuccess() {
			return res
		}
		reasons = append(reasons, fmt.Sprintf("%s: %s", t.GetAffinityName(), res.Status.Reason))
	}
	res.Status = &framework.Status{Code: res.Status.Code, Plugin: res.Status.Plugin,
		Reason: "no cluster affinity term fits (" + strings.Join(reasons, "; ") + ")", Err: res.Status.Err}
	return res
}

// attempt runs Filter → Score → Divide once, with s.Affinity set.
func (e *Engine) attempt(ctx context.Context, s *framework.Snapshot) Result {
	verdicts := make([]Verdict, len(s.Clusters))
	for i, c := range s.Clusters {
		verdicts[i] = Verdict{Cluster: c.Name, Code: framework.Success}
	}

	// Filter: each plugin sees the clusters the ones before let through.
	// idx[i] is the position in s.Clusters of feasible[i].
	feasible := slices.Clone(s.Clusters)
	idx := make([]int, len(feasible))
	for i := range idx {
		idx[i] = i
	}
	for _, f := range e.filters {
		if len(feasible) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return failed(verdicts, framework.AsStatus(err))
		}
		statuses := filterAll(ctx, f, s, feasible)
		n := 0
		for i, c := range feasible {
			if st := statuses[i]; st.Rejects() {
				v := &verdicts[idx[i]]
				v.Code, v.Plugin, v.Reason = st.Code, cmp.Or(st.Plugin, f.Name()), st.Reason
				continue
			}
			feasible[n], idx[n] = c, idx[i]
			n++
		}
		feasible, idx = feasible[:n], idx[:n]
	}
	if len(feasible) == 0 {
		return failed(verdicts, &framework.Status{Code: framework.Unschedulable, Reason: noFeasible(verdicts)})
	}

	// Score: weighted sum of the scorers that have something to say.
	type ranked struct {
		framework.Scored
		at  int    // position in s.Clusters
		tie uint64 // framework.TieBreak, computed once
	}
	rs := make([]ranked, len(feasible))
	uid := s.Workload.UID
	for i, c := range feasible {
		rs[i] = ranked{Scored: framework.Scored{Cluster: c}, at: idx[i], tie: framework.TieBreak(uid, c.Name)}
	}
	for _, sp := range e.scorers {
		scores, st := scoreAll(ctx, sp.ScorePlugin, s, feasible)
		if st.IsSkip() || st.Rejects() {
			continue // a failed scorer counts as 0 everywhere
		}
		for i := range rs {
			rs[i].Score += sp.weight * min(max(scores[i], 0), framework.MaxScore)
		}
	}
	slices.SortFunc(rs, func(a, b ranked) int { return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.tie, b.tie)) })
	scored := make([]framework.Scored, len(rs))
	for i, r := range rs {
		scored[i] = r.Scored
		verdicts[r.at].Score = r.Score
	}

	// Divide: narrow, then divide; the first plugin with targets ends it.
	cands := scored
	for _, d := range e.dividers {
		res, st := d.Divide(ctx, s, cands)
		if st.IsSkip() {
			continue
		}
		if st.Rejects() {
			st = &framework.Status{Code: st.Code, Plugin: cmp.Or(st.Plugin, d.Name()), Reason: st.Reason, Err: st.Err}
			return failed(verdicts, st)
		}
		if res.Candidates != nil {
			cands = res.Candidates
		}
		if res.Targets != nil {
			targets := slices.Clone(res.Targets)
			slices.SortFunc(targets, func(a, b framework.Target) int { return strings.Compare(a.Cluster, b.Cluster) })
			return Result{Targets: targets, Verdicts: verdicts}
		}
	}
	return failed(verdicts, &framework.Status{Code: framework.Error, Reason: "no divide plugin produced a placement"})
}

func failed(verdicts []Verdict, st *framework.Status) Result {
	return Result{Verdicts: verdicts, Status: st}
}

// noFeasible summarizes why every cluster was filtered out: "0/3 clusters
// are feasible: dc-a1: ...; dc-a2: ...".
func noFeasible(verdicts []Verdict) string {
	parts := make([]string, 0, len(verdicts))
	for _, v := range verdicts {
		parts = append(parts, fmt.Sprintf("%s: %s (%s)", v.Cluster, v.Reason, v.Plugin))
	}
	if len(parts) > 10 {
		parts = append(parts[:10], fmt.Sprintf("and %d more", len(parts)-10))
	}
	return fmt.Sprintf("0/%d clusters are feasible: %s", len(verdicts), strings.Join(parts, "; "))
}

// filterAll runs one filter over clusters, in one call when it can.
func filterAll(ctx context.Context, f framework.FilterPlugin, s *framework.Snapshot, clusters []*framework.Cluster) []*framework.Status {
	if bf, ok := f.(framework.BatchFilterPlugin); ok {
		out := bf.FilterAll(ctx, s, clusters)
		if len(out) == len(clusters) {
			return out
		}
		st := framework.AsStatus(fmt.Errorf("filter %s answered for %d of %d clusters", f.Name(), len(out), len(clusters)))
		out = make([]*framework.Status, len(clusters))
		for i := range out {
			out[i] = st
		}
		return out
	}
	out := make([]*framework.Status, len(clusters))
	for i, c := range clusters {
		out[i] = f.Filter(ctx, s, c)
	}
	return out
}

// scoreAll runs one scorer over clusters. Skip from any cluster skips the
// plugin for this workload.
func scoreAll(ctx context.Context, sp framework.ScorePlugin, s *framework.Snapshot, clusters []*framework.Cluster) ([]int64, *framework.Status) {
	if bs, ok := sp.(framework.BatchScorePlugin); ok {
		scores, st := bs.ScoreAll(ctx, s, clusters)
		if st.IsSuccess() && len(scores) != len(clusters) {
			return nil, framework.AsStatus(fmt.Errorf("scorer %s answered for %d of %d clusters", sp.Name(), len(scores), len(clusters)))
		}
		return scores, st
	}
	scores := make([]int64, len(clusters))
	for i, c := range clusters {
		v, st := sp.Score(ctx, s, c)
		if st.IsSkip() {
			return nil, st
		}
		if !st.Rejects() {
			scores[i] = v
		}
	}
	return scores, nil
}

// MaxBindingVerdicts bounds the verdicts a ResourceBinding keeps, so that
// a federation of a thousand clusters does not write a thousand reasons
// per object; the condition's message says how many were left out.
const MaxBindingVerdicts = 50

// ToBindingVerdicts converts the verdicts of the clusters that were kept
// out — the ones a user asks "why not?" about — for the ResourceBinding
// status, at most MaxBindingVerdicts of them, and says how many more
// there were.
func ToBindingVerdicts(vs []Verdict) (out []*meridianv1.ClusterVerdict, more int) {
	for _, v := range vs {
		if v.Code == framework.Success {
			continue
		}
		if len(out) == MaxBindingVerdicts {
			more++
			continue
		}
		out = append(out, &meridianv1.ClusterVerdict{Cluster: v.Cluster, Code: v.Code.String(), Plugin: v.Plugin, Reason: v.Reason, Score: v.Score})
	}
	return out, more
}
