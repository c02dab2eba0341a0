// Package spread is the built-in Divide plugin that narrows the candidate
// clusters to satisfy the policy's spread constraints, before another
// Divide plugin (division) places the replicas on what is left.
//
// A spread constraint groups clusters by a field (region, datacenter or
// cluster) or by the value of a label, and bounds how many groups the
// placement spans: at least minGroups (0 counts as 1: a placement needs a
// cluster), at most maxGroups (0: no bound). A cluster with no value for
// the field or label (an empty region, a missing label) is in no group,
// so it is dropped, before any constraint is applied. As in Karmada, the
// plugin selects whole groups: every candidate of a selected group stays.
//
// Constraints are applied from coarse to fine — region, datacenter,
// cluster, then labels in the order the policy lists them — each within
// the selection the ones before left, because a coarse choice (which
// regions) frames the finer ones (which datacenters of those regions).
// At each constraint the groups are ranked:
//
//  1. groups running the workload now first, unless the placement is
//     fresh: a steady re-placement does not jump groups;
//  2. total score, highest first;
//  3. total capacity for the workload, largest first;
//  4. framework.TieBreak of the workload and the group's value.
//
// and taken in that order up to maxGroups (all when unbounded). A group is
// passed over only when taking it would leave no way to meet what the
// selection still needs with the slots left: minGroups of this constraint,
// the other constraints' minGroups (a selection of regions must still hold
// enough datacenters, a selection of clusters must still cover enough
// regions) and, for a divided workload, the capacity for all its replicas
// when some selection has it (adding or swapping a group beats failing).
// The look-ahead is exact for one constraint and for two nested field
// constraints (region and cluster, say); in general it checks each need
// on its own, and a coarse choice is never revisited, so a mix such as
// regions and a label may miss a selection that exists. The result is
// verified at the end: a selection that misses a minimum is Unschedulable
// rather than wrong.
package spread

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Name is the plugin's name in configuration and reasons.
const Name = "SpreadConstraints"

// Fields a constraint may spread by, coarse to fine.
const (
	// ByRegion groups clusters by region.
	ByRegion = "region"
	// ByDatacenter groups clusters by datacenter.
	ByDatacenter = "datacenter"
	// ByCluster makes every cluster its own group.
	ByCluster = "cluster"
)

// ReasonNoConstraints is the reason of the Skip status: the policy has no
// spread constraints, so every candidate stays.
const ReasonNoConstraints = "no spread constraints"

// fieldOrder is the coarseness of each field; labels come after them.
var fieldOrder = map[string]int{ByRegion: 0, ByDatacenter: 1, ByCluster: 2}

// coarsenessLabel is the coarseness of every label constraint.
const coarsenessLabel = 3

// reasonListMax bounds how many groups a reason names.
const reasonListMax = 10

// Plugin applies spread constraints. It has no state, so one Plugin is
// safe for concurrent use.
type Plugin struct{}

var _ framework.DividePlugin = (*Plugin)(nil)

// New returns the plugin. It takes no arguments: the constraints are in
// the policy of each snapshot.
func New() *Plugin { return &Plugin{} }

// Name returns Name.
func (*Plugin) Name() string { return Name }

// Divide returns the candidates that satisfy the policy's spread
// constraints, in the order they came; it never returns Targets. It skips
// a workload whose policy has no spread constraints, answers
// UnschedulableAndUnresolvable for an invalid constraint and
// Unschedulable when too few groups are feasible.
func (p *Plugin) Divide(_ context.Context, s *framework.Snapshot, candidates []framework.Scored) (framework.DivideResult, *framework.Status) {
	res := framework.DivideResult{Candidates: candidates}
	if s == nil || s.Workload == nil {
		return res, framework.AsStatus(fmt.Errorf("%s: the snapshot has no workload", Name))
	}
	list := s.Placement.GetSpreadConstraints()
	if len(list) == 0 {
		return res, framework.NewStatus(framework.Skip, ReasonNoConstraints)
	}
	cons, st := parseConstraints(list)
	if st != nil {
		return res, st
	}
	if len(candidates) == 0 {
		return res, nil // nothing to narrow; the next plugin says why
	}
	sp, err := newSpreader(s, cons, candidates)
	if err != nil {
		return res, framework.AsStatus(err)
	}
	// A cluster in no group of some constraint can be in no selection:
	// drop it before any constraint, so that a coarse choice is not made
	// for clusters a finer constraint will drop.
	var sel []int
	for i, c := range sp.cands {
		if !slices.Contains(c.has, false) {
			sel = append(sel, i)
		}
	}
	for li := range cons {
		if sel, st = sp.narrow(li, sel); st != nil {
			return res, st
		}
	}
	if st := sp.verify(sel); st != nil {
		return res, st
	}
	keep := make(map[string]bool, len(sel))
	for _, i := range sel {
		keep[sp.cands[i].name] = true
	}
	narrowed := make([]framework.Scored, 0, len(sel))
	for _, c := range candidates {
		if keep[c.Cluster.Name] {
			narrowed = append(narrowed, c)
		}
	}
	res.Candidates = narrowed
	return res, nil
}

// constraint is one checked spread constraint.
type constraint struct {
	field string // set for a field constraint
	label string // set for a label constraint
	// min is the least number of groups; at least 1, since a placement
	// needs a cluster.
	min int
	// max is the most number of groups; 0 is no bound.
	max int
	// coarseness orders the constraints: lower is applied first.
	coarseness int
}

// String names the constraint for reasons: "region", "label \"zone\"".
func (c *constraint) String() string {
	if c.label != "" {
		return fmt.Sprintf("label %q", c.label)
	}
	return c.field
}

// value returns the group cl is in, false when it is in none (no such
// label, or an empty field).
func (c *constraint) value(cl *framework.Cluster) (string, bool) {
	if c.label != "" {
		v, ok := cl.Labels[c.label]
		return v, ok
	}
	v, _ := cl.Field(c.field)
	return v, v != ""
}

// parseConstraints checks the policy's constraints and orders them coarse
// to fine (labels keep the policy's order).
func parseConstraints(list []*meridianv1.SpreadConstraint) ([]constraint, *framework.Status) {
	bad := func(i int, format string, args ...any) *framework.Status {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable,
			"spreadConstraints[%d]: %s", i, fmt.Sprintf(format, args...))
	}
	cons := make([]constraint, 0, len(list))
	seen := map[string]bool{}
	for i, sc := range list {
		field, label := sc.GetSpreadByField(), sc.GetSpreadByLabel()
		minG, maxG := sc.GetMinGroups(), sc.GetMaxGroups()
		c := constraint{field: field, label: label, min: max(int(minG), 1), max: int(maxG)}
		switch {
		case field != "" && label != "":
			return nil, bad(i, "sets both spreadByField and spreadByLabel")
		case field == "" && label == "":
			return nil, bad(i, "sets neither spreadByField nor spreadByLabel")
		case label != "":
			c.coarseness = coarsenessLabel
		default:
			o, ok := fieldOrder[field]
			if !ok {
				return nil, bad(i, "spreadByField %q is not %s, %s or %s", field, ByRegion, ByDatacenter, ByCluster)
			}
			c.coarseness = o
		}
		if minG < 0 || maxG < 0 {
			return nil, bad(i, "minGroups %d and maxGroups %d must not be negative", minG, maxG)
		}
		if maxG > 0 && minG > maxG {
			return nil, bad(i, "minGroups %d is above maxGroups %d", minG, maxG)
		}
		if seen[c.String()] {
			return nil, bad(i, "spreads by %s again", c.String())
		}
		seen[c.String()] = true
		cons = append(cons, c)
	}
	slices.SortStableFunc(cons, func(a, b constraint) int { return cmp.Compare(a.coarseness, b.coarseness) })
	return cons, nil
}

// groupNames lists values for a reason.
func groupNames(values []string) string {
	if len(values) <= reasonListMax {
		return strings.Join(values, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(values[:reasonListMax], ", "), len(values)-reasonListMax)
}

// tooFew is the reason for a constraint that cannot get its minimum.
func tooFew(c *constraint, feasible []string, suffix string) *framework.Status {
	noun := "groups"
	if c.min == 1 {
		noun = "group"
	}
	verb := "are"
	if len(feasible) == 1 {
		verb = "is"
	}
	reason := fmt.Sprintf("spread by %s needs at least %d %s, %d %s feasible%s", c, c.min, noun, len(feasible), verb, suffix)
	if len(feasible) > 0 {
		reason += " (" + groupNames(feasible) + ")"
	}
	return framework.NewStatus(framework.Unschedulable, "%s", reason)
}
