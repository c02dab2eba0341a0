package podutil

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Label selector operators, as manifests write them.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
)

var operators = map[string]selection.Operator{
	OpIn:           selection.In,
	OpNotIn:        selection.NotIn,
	OpExists:       selection.Exists,
	OpDoesNotExist: selection.DoesNotExist,
}

// ErrEmptySelector is the error of a workload whose selector selects
// nothing in particular: a controller would adopt every pod of its
// namespace, so it refuses to act instead.
var ErrEmptySelector = errors.New("empty selector")

// Selector converts a LabelSelector as Kubernetes' LabelSelectorAsSelector
// does: nil selects nothing, an empty selector everything, matchLabels and
// matchExpressions (In, NotIn, Exists, DoesNotExist) are ANDed.
func Selector(ls *meridianv1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Nothing(), nil
	}
	if len(ls.GetMatchLabels()) == 0 && len(ls.GetMatchExpressions()) == 0 {
		return labels.Everything(), nil
	}
	sel := labels.NewSelector()
	keys := make([]string, 0, len(ls.GetMatchLabels()))
	for k := range ls.GetMatchLabels() {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable String() for logs and tests
	for _, k := range keys {
		r, err := labels.NewRequirement(k, selection.Equals, []string{ls.GetMatchLabels()[k]})
		if err != nil {
			return nil, fmt.Errorf("failed to convert matchLabels %q: %w", k, err)
		}
		sel = sel.Add(*r)
	}
	for i, e := range ls.GetMatchExpressions() {
		op, ok := operators[e.GetOperator()]
		if !ok {
			return nil, fmt.Errorf("failed to convert matchExpressions[%d]: operator %q is not one of In, NotIn, Exists, DoesNotExist", i, e.GetOperator())
		}
		r, err := labels.NewRequirement(e.GetKey(), op, e.GetValues())
		if err != nil {
			return nil, fmt.Errorf("failed to convert matchExpressions[%d]: %w", i, err)
		}
		sel = sel.Add(*r)
	}
	return sel, nil
}

// WorkloadSelector converts a workload's selector and checks what a
// controller needs of it before it creates anything: it is not empty
// (ErrEmptySelector) and it selects the workload's own template, or every
// pod the controller made would be invisible to it and it would make them
// forever.
func WorkloadSelector(ls *meridianv1.LabelSelector, template *meridianv1.PodTemplateSpec) (labels.Selector, error) {
	if len(ls.GetMatchLabels()) == 0 && len(ls.GetMatchExpressions()) == 0 {
		return nil, ErrEmptySelector
	}
	sel, err := Selector(ls)
	if err != nil {
		return nil, err
	}
	if !sel.Matches(labels.Set(template.GetMetadata().GetLabels())) {
		return nil, fmt.Errorf("selector %q does not match the template's labels %v", sel.String(), template.GetMetadata().GetLabels())
	}
	return sel, nil
}

// ScaledValue resolves an IntOrString against total, as Kubernetes'
// GetScaledValueFromIntOrPercent: an integer is itself; "N%" is N percent of
// total, rounded up if roundUp and down otherwise; nil is def.
func ScaledValue(v *meridianv1.IntOrString, def *meridianv1.IntOrString, total int, roundUp bool) (int, error) {
	if v == nil || v.GetValue() == nil {
		v = def
	}
	if v == nil || v.GetValue() == nil {
		return 0, nil
	}
	if _, ok := v.GetValue().(*meridianv1.IntOrString_IntVal); ok {
		return int(v.GetIntVal()), nil
	}
	s := v.GetStrVal()
	pct, ok := strings.CutSuffix(s, "%")
	if !ok {
		// A bare number in a string ("1") is accepted as Kubernetes'
		// decoders accept it.
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("invalid value %q: want an integer or a percentage", s)
		}
		return n, nil
	}
	p, err := strconv.Atoi(pct)
	if err != nil {
		return 0, fmt.Errorf("invalid percentage %q", s)
	}
	f := float64(p) * float64(total) / 100
	if roundUp {
		return int(math.Ceil(f)), nil
	}
	return int(math.Floor(f)), nil
}

// Percent returns the IntOrString "N%".
func Percent(n int) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: strconv.Itoa(n) + "%"}}
}

// Int returns the IntOrString n.
func Int(n int32) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: n}}
}

// Fenceposts resolves a rolling update's bounds for desired replicas as
// Kubernetes' ResolveFenceposts: maxSurge rounds up and maxUnavailable
// down (defaults 25% each), and if both come out 0, maxUnavailable is 1 so
// that the rollout can move at all. maxUnavailable never exceeds desired.
func Fenceposts(maxSurge, maxUnavailable *meridianv1.IntOrString, desired int) (surge, unavailable int, err error) {
	surge, err = ScaledValue(maxSurge, Percent(25), desired, true)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to resolve maxSurge: %w", err)
	}
	unavailable, err = ScaledValue(maxUnavailable, Percent(25), desired, false)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to resolve maxUnavailable: %w", err)
	}
	surge, unavailable = max(surge, 0), max(unavailable, 0)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, min(unavailable, max(desired, 1)), nil
}
