package clusteraffinity

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Matches reports whether cluster c is one the affinity selects, as
// Karmada's ClusterAffinity does: c is not excluded, and it is in
// clusterNames (when set), matches labelSelector (when set) and matches
// every fieldSelector requirement (region, datacenter or provider, In or
// NotIn). A nil affinity selects every cluster. When it does not match,
// why says which part failed, for users. To match many clusters, Compile
// once.
func Matches(a *meridianv1.ClusterAffinity, c *framework.Cluster) (ok bool, why string, err error) {
	m, err := Compile(a)
	if err != nil {
		return false, "", err
	}
	ok, why = m.Match(c)
	return ok, why, nil
}

// Matcher is a compiled ClusterAffinity: its label selector converted
// once. Safe for concurrent use.
type Matcher struct {
	a   *meridianv1.ClusterAffinity
	sel labels.Selector // nil without a labelSelector
}

// Compile checks and converts an affinity for Match (nil selects every
// cluster).
func Compile(a *meridianv1.ClusterAffinity) (*Matcher, error) {
	m := &Matcher{a: a}
	if a == nil {
		return m, nil
	}
	if ls := a.GetLabelSelector(); ls != nil {
		sel, err := podutil.Selector(ls)
		if err != nil {
			return nil, fmt.Errorf("failed to read labelSelector: %w", err)
		}
		m.sel = sel
	}
	for i, req := range a.GetFieldSelector().GetMatchExpressions() {
		if _, known := (&framework.Cluster{}).Field(req.GetKey()); !known {
			return nil, fmt.Errorf("fieldSelector.matchExpressions[%d]: unknown cluster field %q", i, req.GetKey())
		}
		if op := req.GetOperator(); op != "In" && op != "NotIn" {
			return nil, fmt.Errorf("fieldSelector.matchExpressions[%d]: operator %q is not In or NotIn", i, op)
		}
	}
	return m, nil
}

// Match is Matches with the affinity compiled.
func (m *Matcher) Match(c *framework.Cluster) (ok bool, why string) {
	a := m.a
	if a == nil {
		return true, ""
	}
	if slices.Contains(a.GetExclude(), c.Name) {
		return false, fmt.Sprintf("cluster %q is excluded", c.Name)
	}
	if names := a.GetClusterNames(); len(names) > 0 && !slices.Contains(names, c.Name) {
		return false, fmt.Sprintf("cluster %q is not in clusterNames %v", c.Name, names)
	}
	if m.sel != nil && !m.sel.Matches(labels.Set(c.Labels)) {
		return false, fmt.Sprintf("cluster labels do not match %s", m.sel)
	}
	for _, req := range a.GetFieldSelector().GetMatchExpressions() {
		v, _ := c.Field(req.GetKey())
		in := slices.Contains(req.GetValues(), v)
		if req.GetOperator() == "In" && !in {
			return false, fmt.Sprintf("%s %q is not in %v", req.GetKey(), v, req.GetValues())
		}
		if req.GetOperator() == "NotIn" && in {
			return false, fmt.Sprintf("%s %q is in %v", req.GetKey(), v, req.GetValues())
		}
	}
	return true, ""
}

// FromTerm returns a clusterAffinities term as a ClusterAffinity.
func FromTerm(t *meridianv1.ClusterAffinityTerm) *meridianv1.ClusterAffinity {
	if t == nil {
		return nil
	}
	return &meridianv1.ClusterAffinity{
		LabelSelector: t.GetLabelSelector(), FieldSelector: t.GetFieldSelector(),
		ClusterNames: t.GetClusterNames(), Exclude: t.GetExclude(),
	}
}
