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
// why says which part failed, for users.
func Matches(a *meridianv1.ClusterAffinity, c *framework.Cluster) (ok bool, why string, err error) {
	if a == nil {
		return true, "", nil
	}
	if slices.Contains(a.GetExclude(), c.Name) {
		return false, "excluded by name", nil
	}
	if names := a.GetClusterNames(); len(names) > 0 && !slices.Contains(names, c.Name) {
		return false, "not in clusterNames", nil
	}
	if ls := a.GetLabelSelector(); ls != nil {
		sel, err := podutil.Selector(ls)
		if err != nil {
			return false, "", fmt.Errorf("failed to read labelSelector: %w", err)
		}
		if !sel.Matches(labels.Set(c.Labels)) {
			return false, fmt.Sprintf("labels do not match %s", sel), nil
		}
	}
	for i, req := range a.GetFieldSelector().GetMatchExpressions() {
		v, known := c.Field(req.GetKey())
		if !known {
			return false, "", fmt.Errorf("fieldSelector.matchExpressions[%d]: unknown cluster field %q", i, req.GetKey())
		}
		in := slices.Contains(req.GetValues(), v)
		switch req.GetOperator() {
		case "In":
			if !in {
				return false, fmt.Sprintf("%s %q is not in %v", req.GetKey(), v, req.GetValues()), nil
			}
		case "NotIn":
			if in {
				return false, fmt.Sprintf("%s %q is in %v", req.GetKey(), v, req.GetValues()), nil
			}
		default:
			return false, "", fmt.Errorf("fieldSelector.matchExpressions[%d]: operator %q is not In or NotIn", i, req.GetOperator())
		}
	}
	return true, "", nil
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
