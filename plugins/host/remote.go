package host

import (
	"context"
	"fmt"

	"github.com/meridian-fed/meridian/policies/framework"
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// The engine finds a plugin's capabilities by type assertion, so each
// plugin is a value whose type has exactly the methods of the capabilities
// it advertised: a struct embedding the named base (Name) and one part per
// capability. The parts share the instance; none holds state of its own.

// named is what every plugin has: its configured name.
type named struct{ in *instance }

// Name returns the plugin's configured name.
func (n named) Name() string { return n.in.cfg.Name }

// filterPart is the "filter" capability.
type filterPart struct{ in *instance }

// scorePart is the "score" capability.
type scorePart struct{ in *instance }

// failoverPart is the "failover" capability.
type failoverPart struct{ in *instance }

var (
	_ framework.BatchFilterPlugin = struct {
		named
		filterPart
	}{}
	_ framework.BatchScorePlugin = struct {
		named
		scorePart
	}{}
	_ framework.FailoverPlugin = struct {
		named
		failoverPart
	}{}
)

// newPlugin returns the framework.Plugin for in's capabilities.
func newPlugin(in *instance) framework.Plugin {
	var f, s, o bool
	for _, c := range in.caps {
		switch c {
		case CapabilityFilter:
			f = true
		case CapabilityScore:
			s = true
		case CapabilityFailover:
			o = true
		}
	}
	n, fp, sp, op := named{in}, filterPart{in}, scorePart{in}, failoverPart{in}
	switch {
	case f && s && o:
		return &struct {
			named
			filterPart
			scorePart
			failoverPart
		}{n, fp, sp, op}
	case f && s:
		return &struct {
			named
			filterPart
			scorePart
		}{n, fp, sp}
	case f && o:
		return &struct {
			named
			filterPart
			failoverPart
		}{n, fp, op}
	case s && o:
		return &struct {
			named
			scorePart
			failoverPart
		}{n, sp, op}
	case f:
		return &struct {
			named
			filterPart
		}{n, fp}
	case s:
		return &struct {
			named
			scorePart
		}{n, sp}
	case o:
		return &struct {
			named
			failoverPart
		}{n, op}
	}
	return &n // unreachable: launch refuses a plugin without capabilities
}

// Filter judges one cluster: a batch of one.
func (p filterPart) Filter(ctx context.Context, s *framework.Snapshot, c *framework.Cluster) *framework.Status {
	return p.FilterAll(ctx, s, []*framework.Cluster{c})[0]
}

// FilterAll judges every cluster in one call. When the call gets no valid
// answer, every cluster gets the failure mode's status; a cluster the
// plugin answers CODE_ERROR for gets it alone.
func (p filterPart) FilterAll(ctx context.Context, s *framework.Snapshot, clusters []*framework.Cluster) []*framework.Status {
	out := make([]*framework.Status, len(clusters))
	if len(clusters) == 0 {
		return out
	}
	in := p.in
	var resp *pluginv1.FilterResponse
	err := in.call(ctx, "Filter", func(ctx context.Context, g *generation) error {
		var err error
		resp, err = g.filter.Filter(ctx, &pluginv1.FilterRequest{
			Workload: workloadToProto(s.Workload),
			Clusters: clustersToProto(clusters),
		})
		if err != nil {
			return err
		}
		return checkFilter(resp, clusters)
	})
	if err != nil {
		for i := range out {
			out[i] = in.filterFailure(err)
		}
		return out
	}
	for i, r := range resp.GetResults() {
		code, ok := codeFromProto(r.GetCode())
		switch {
		case !ok: // CODE_ERROR
			out[i] = in.filterFailure(fmt.Errorf("the plugin could not judge cluster %s: %s", clusters[i].Name, r.GetReason()))
		case code == framework.Success:
			// nil: Success
		default:
			reason := r.GetReason()
			if reason == "" {
				reason = fmt.Sprintf("rejected by plugin %s", in.cfg.Name)
			}
			out[i] = &framework.Status{Code: code, Plugin: in.cfg.Name, Reason: reason}
		}
	}
	return out
}

// checkFilter verifies a FilterResponse answers clusters, in order.
func checkFilter(resp *pluginv1.FilterResponse, clusters []*framework.Cluster) error {
	results := resp.GetResults()
	if len(results) != len(clusters) {
		return fmt.Errorf("%w: %d results for %d clusters", ErrInvalidAnswer, len(results), len(clusters))
	}
	for i, r := range results {
		if r.GetCluster() != clusters[i].Name {
			return fmt.Errorf("%w: result %d is for cluster %q, not %q", ErrInvalidAnswer, i, r.GetCluster(), clusters[i].Name)
		}
		if r.GetCode() == pluginv1.Code_CODE_UNSPECIFIED || r.GetCode() > pluginv1.Code_CODE_ERROR {
			return fmt.Errorf("%w: code %v for cluster %s", ErrInvalidAnswer, r.GetCode(), r.GetCluster())
		}
	}
	return nil
}

// filterFailure is the failure mode's verdict on a cluster the plugin gave
// no valid answer for: Success (fail-open) or Unschedulable (fail-closed),
// the reason naming the plugin and the failure either way.
func (in *instance) filterFailure(err error) *framework.Status {
	if in.cfg.FailureMode == FailOpen {
		return &framework.Status{Code: framework.Success, Plugin: in.cfg.Name,
			Reason: fmt.Sprintf("plugin %s unavailable, cluster let through (fail-open): %v", in.cfg.Name, err)}
	}
	return &framework.Status{Code: framework.Unschedulable, Plugin: in.cfg.Name,
		Reason: fmt.Sprintf("plugin %s unavailable: %v", in.cfg.Name, err), Err: err}
}

// Score rates one cluster: a batch of one.
func (p scorePart) Score(ctx context.Context, s *framework.Snapshot, c *framework.Cluster) (int64, *framework.Status) {
	scores, st := p.ScoreAll(ctx, s, []*framework.Cluster{c})
	return scores[0], st
}

// ScoreAll rates every cluster in one call. The scores always have one
// entry per cluster. When the call gets no valid answer every score is 0,
// with a Success status (fail-open) or an Unschedulable one (fail-closed);
// when the plugin skips the workload every score is 0 with Skip.
func (p scorePart) ScoreAll(ctx context.Context, s *framework.Snapshot, clusters []*framework.Cluster) ([]int64, *framework.Status) {
	scores := make([]int64, len(clusters))
	if len(clusters) == 0 {
		return scores, nil
	}
	in := p.in
	var resp *pluginv1.ScoreResponse
	err := in.call(ctx, "Score", func(ctx context.Context, g *generation) error {
		var err error
		resp, err = g.score.Score(ctx, &pluginv1.ScoreRequest{
			Workload: workloadToProto(s.Workload),
			Clusters: clustersToProto(clusters),
		})
		if err != nil {
			return err
		}
		return checkScore(resp, clusters)
	})
	switch {
	case err != nil && in.cfg.FailureMode == FailOpen:
		return scores, &framework.Status{Code: framework.Success, Plugin: in.cfg.Name,
			Reason: fmt.Sprintf("plugin %s unavailable, every cluster scores 0 (fail-open): %v", in.cfg.Name, err)}
	case err != nil:
		return scores, &framework.Status{Code: framework.Unschedulable, Plugin: in.cfg.Name,
			Reason: fmt.Sprintf("plugin %s unavailable: %v", in.cfg.Name, err), Err: err}
	case resp.GetSkip():
		return scores, &framework.Status{Code: framework.Skip, Plugin: in.cfg.Name}
	}
	for i, cs := range resp.GetScores() {
		scores[i] = cs.GetScore()
	}
	return scores, nil
}

// checkScore verifies a ScoreResponse scores clusters, in order, in range.
func checkScore(resp *pluginv1.ScoreResponse, clusters []*framework.Cluster) error {
	if resp.GetSkip() {
		return nil
	}
	scores := resp.GetScores()
	if len(scores) != len(clusters) {
		return fmt.Errorf("%w: %d scores for %d clusters", ErrInvalidAnswer, len(scores), len(clusters))
	}
	for i, s := range scores {
		if s.GetCluster() != clusters[i].Name {
			return fmt.Errorf("%w: score %d is for cluster %q, not %q", ErrInvalidAnswer, i, s.GetCluster(), clusters[i].Name)
		}
		if s.GetScore() < 0 || s.GetScore() > framework.MaxScore {
			return fmt.Errorf("%w: score %d for cluster %s is outside 0..%d", ErrInvalidAnswer, s.GetScore(), s.GetCluster(), framework.MaxScore)
		}
	}
	return nil
}

// Failover asks the plugin about a move. When the call gets no valid
// answer, fail-open accepts the proposal (zero decision, Success) and
// fail-closed vetoes the move (Veto, Unschedulable), the reason naming the
// plugin either way.
func (p failoverPart) Failover(ctx context.Context, s *framework.Snapshot, failed []string, proposed []framework.Target) (framework.FailoverDecision, *framework.Status) {
	in := p.in
	var resp *pluginv1.FailoverResponse
	err := in.call(ctx, "Failover", func(ctx context.Context, g *generation) error {
		var err error
		resp, err = g.failover.Failover(ctx, &pluginv1.FailoverRequest{
			Workload:       workloadToProto(s.Workload),
			FailedClusters: failed,
			Proposed:       targetsToProto(proposed),
			Clusters:       clustersToProto(s.Clusters),
		})
		if err != nil {
			return err
		}
		return checkFailover(resp)
	})
	if err != nil {
		if in.cfg.FailureMode == FailOpen {
			return framework.FailoverDecision{}, &framework.Status{Code: framework.Success, Plugin: in.cfg.Name,
				Reason: fmt.Sprintf("plugin %s unavailable, proposal accepted (fail-open): %v", in.cfg.Name, err)}
		}
		reason := fmt.Sprintf("plugin %s unavailable: %v", in.cfg.Name, err)
		return framework.FailoverDecision{Veto: true, Reason: reason},
			&framework.Status{Code: framework.Unschedulable, Plugin: in.cfg.Name, Reason: reason, Err: err}
	}
	d := framework.FailoverDecision{Veto: resp.GetVeto(), Reason: resp.GetReason()}
	if !d.Veto && len(resp.GetTargets()) > 0 {
		d.Targets = make([]framework.Target, len(resp.GetTargets()))
		for i, t := range resp.GetTargets() {
			d.Targets[i] = framework.Target{Cluster: t.GetCluster(), Replicas: t.GetReplicas()}
		}
	}
	return d, nil
}

// checkFailover verifies the targets a FailoverResponse chooses.
func checkFailover(resp *pluginv1.FailoverResponse) error {
	if resp.GetVeto() {
		return nil
	}
	seen := make(map[string]bool, len(resp.GetTargets()))
	for i, t := range resp.GetTargets() {
		switch {
		case t.GetCluster() == "":
			return fmt.Errorf("%w: target %d has no cluster", ErrInvalidAnswer, i)
		case t.GetReplicas() < 0:
			return fmt.Errorf("%w: target %s has %d replicas", ErrInvalidAnswer, t.GetCluster(), t.GetReplicas())
		case seen[t.GetCluster()]:
			return fmt.Errorf("%w: cluster %s is targeted twice", ErrInvalidAnswer, t.GetCluster())
		}
		seen[t.GetCluster()] = true
	}
	return nil
}
