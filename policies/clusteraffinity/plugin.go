// Package clusteraffinity is the ClusterAffinity filter: it keeps a
// workload on the clusters its policy's cluster affinity selects, by name,
// labels and fields (region, datacenter, provider), minus the excluded
// ones — Karmada's ClusterAffinity, and Kubernetes' NodeAffinity one level
// up. Matches, the selection itself, is shared by every policy part that
// targets clusters (static weights, OverridePolicy rules).
//
// A policy with clusterAffinities (an ordered list of fallback terms) is
// tried one term at a time by the engine: it puts the term in
// Snapshot.Affinity, so this plugin only ever reads Snapshot.Affinity.
package clusteraffinity

import (
	"context"
	"fmt"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Name is the plugin's name in configuration (placement.filters) and in
// reasons.
const Name = "ClusterAffinity"

// ReasonNoAffinity is the reason of the Skip status: the snapshot carries
// no cluster affinity, so every cluster is selected.
const ReasonNoAffinity = "no cluster affinity: every cluster is selected"

// Plugin is the ClusterAffinity filter. It holds no state: one Plugin
// serves every placement, concurrently.
type Plugin struct{}

var _ framework.BatchFilterPlugin = (*Plugin)(nil)

// New returns the ClusterAffinity filter. It takes no arguments: the
// affinity comes with each snapshot.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Filter lets c through when Snapshot.Affinity selects it (see Matches).
// It answers:
//   - Skip when the snapshot has no affinity (nil selects every cluster);
//   - UnschedulableAndUnresolvable when the affinity does not select c: no
//     change of the cluster's state makes it eligible, only a change of the
//     policy or of the cluster's labels and topology (which re-places
//     anyway). The reason says which part of the affinity failed, such as
//     `region "region-b" is not in [region-a]`;
//   - Error when the affinity cannot be evaluated (a selector that does not
//     convert; validation keeps those out of the store, so this is a bug).
func (*Plugin) Filter(_ context.Context, s *framework.Snapshot, c *framework.Cluster) *framework.Status {
	if s == nil || s.Affinity == nil {
		return framework.NewStatus(framework.Skip, ReasonNoAffinity)
	}
	if c == nil {
		return framework.AsStatus(fmt.Errorf("failed to match cluster affinity: no cluster"))
	}
	ok, why, err := Matches(s.Affinity, c)
	switch {
	case err != nil:
		return framework.AsStatus(fmt.Errorf("failed to match cluster affinity: %w", err))
	case !ok:
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, "%s", why)
	}
	return nil
}

// FilterAll is Filter for every cluster, with the affinity compiled once.
func (*Plugin) FilterAll(_ context.Context, s *framework.Snapshot, clusters []*framework.Cluster) []*framework.Status {
	out := make([]*framework.Status, len(clusters))
	if s == nil || s.Affinity == nil {
		skip := framework.NewStatus(framework.Skip, ReasonNoAffinity)
		for i := range out {
			out[i] = skip
		}
		return out
	}
	m, err := Compile(s.Affinity)
	if err != nil {
		st := framework.AsStatus(fmt.Errorf("failed to match cluster affinity: %w", err))
		for i := range out {
			out[i] = st
		}
		return out
	}
	for i, c := range clusters {
		if c == nil {
			out[i] = framework.AsStatus(fmt.Errorf("failed to match cluster affinity: no cluster"))
			continue
		}
		if ok, why := m.Match(c); !ok {
			out[i] = &framework.Status{Code: framework.UnschedulableAndUnresolvable, Reason: why}
		}
	}
	return out
}
