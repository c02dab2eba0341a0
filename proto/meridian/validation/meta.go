package validation

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// nameRule checks a name; it returns the reasons it is invalid.
type nameRule func(string) []string

// Name rules, as Kubernetes applies them.
var (
	dns1123Label     nameRule = k8svalidation.IsDNS1123Label
	dns1123Subdomain nameRule = k8svalidation.IsDNS1123Subdomain
)

// validateObjectMeta checks the metadata every object carries: a valid name
// (rule decides which form), a namespace only on namespaced kinds, and valid
// labels and annotations.
func validateObjectMeta(md *meridianv1.ObjectMeta, kind *resource.Kind, rule nameRule, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	name := md.GetName()
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	} else {
		errs = append(errs, checkName(fldPath.Child("name"), name, rule)...)
	}
	if ns := md.GetNamespace(); ns != "" {
		if !kind.Namespaced {
			errs = append(errs, field.Forbidden(fldPath.Child("namespace"), "not allowed on "+kind.Kind+", which is cluster-scoped"))
		} else {
			errs = append(errs, checkName(fldPath.Child("namespace"), ns, dns1123Label)...)
		}
	}
	if md.GetGeneration() < 0 {
		errs = append(errs, field.Invalid(fldPath.Child("generation"), md.GetGeneration(), "must be greater than or equal to 0"))
	}
	errs = append(errs, validateLabels(md.GetLabels(), fldPath.Child("labels"))...)
	errs = append(errs, validateAnnotations(md.GetAnnotations(), fldPath.Child("annotations"))...)
	return errs
}

// checkName applies a name rule and reports each reason as one error.
func checkName(fldPath *field.Path, name string, rule nameRule) field.ErrorList {
	if msgs := rule(name); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(fldPath, name, strings.Join(msgs, "; "))}
	}
	return nil
}

// validateLabels checks label keys (qualified names, with an optional DNS
// prefix) and values (at most 63 characters of [A-Za-z0-9_.-]).
func validateLabels(lbls map[string]string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range sortedKeys(lbls) {
		errs = append(errs, validateLabelKey(k, fldPath)...)
		if msgs := k8svalidation.IsValidLabelValue(lbls[k]); len(msgs) > 0 {
			errs = append(errs, field.Invalid(fldPath.Key(k), lbls[k], strings.Join(msgs, "; ")))
		}
	}
	return errs
}

func validateLabelKey(k string, fldPath *field.Path) field.ErrorList {
	if msgs := k8svalidation.IsQualifiedName(k); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(fldPath, k, strings.Join(msgs, "; "))}
	}
	return nil
}

// totalAnnotationSizeLimit is Kubernetes' bound on all annotations of an
// object together.
const totalAnnotationSizeLimit = 256 * 1024

// validateAnnotations checks annotation keys (qualified names) and their
// total size.
func validateAnnotations(annotations map[string]string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for _, k := range sortedKeys(annotations) {
		size += len(k) + len(annotations[k])
		if msgs := k8svalidation.IsQualifiedName(strings.ToLower(k)); len(msgs) > 0 {
			errs = append(errs, field.Invalid(fldPath, k, strings.Join(msgs, "; ")))
		}
	}
	if size > totalAnnotationSizeLimit {
		errs = append(errs, field.TooLong(fldPath, "", totalAnnotationSizeLimit))
	}
	return errs
}

// Label selector operators.
const (
	opIn           = "In"
	opNotIn        = "NotIn"
	opExists       = "Exists"
	opDoesNotExist = "DoesNotExist"
)

var selectorOperators = []string{opIn, opNotIn, opExists, opDoesNotExist}

// validateLabelSelector checks matchLabels like labels and each
// matchExpressions requirement: a valid key, a known operator, values for In
// and NotIn and none for Exists and DoesNotExist.
func validateLabelSelector(sel *meridianv1.LabelSelector, fldPath *field.Path) field.ErrorList {
	if sel == nil {
		return nil
	}
	errs := validateLabels(sel.GetMatchLabels(), fldPath.Child("matchLabels"))
	for i, req := range sel.GetMatchExpressions() {
		errs = append(errs, validateRequirement(req, selectorOperators, true, fldPath.Child("matchExpressions").Index(i))...)
	}
	return errs
}

// validateRequirement checks one selector requirement against the operators
// allowed where it is used; labelValues says whether the values must be
// valid label values.
func validateRequirement(req *meridianv1.LabelSelectorRequirement, operators []string, labelValues bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if req.GetKey() == "" {
		errs = append(errs, field.Required(fldPath.Child("key"), ""))
	} else {
		errs = append(errs, validateLabelKey(req.GetKey(), fldPath.Child("key"))...)
	}
	op, values := req.GetOperator(), req.GetValues()
	switch {
	case op == "":
		errs = append(errs, field.Required(fldPath.Child("operator"), "supported values: "+quoteAll(operators)))
	case !slices.Contains(operators, op):
		errs = append(errs, field.NotSupported(fldPath.Child("operator"), op, operators))
	case (op == opIn || op == opNotIn) && len(values) == 0:
		errs = append(errs, field.Required(fldPath.Child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
	case (op == opExists || op == opDoesNotExist) && len(values) > 0:
		errs = append(errs, field.Forbidden(fldPath.Child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
	}
	if labelValues {
		for j, v := range values {
			if msgs := k8svalidation.IsValidLabelValue(v); len(msgs) > 0 {
				errs = append(errs, field.Invalid(fldPath.Child("values").Index(j), v, strings.Join(msgs, "; ")))
			}
		}
	}
	return errs
}

// selectorEmpty reports whether a selector selects nothing in particular
// (it is missing or has neither matchLabels nor matchExpressions).
func selectorEmpty(sel *meridianv1.LabelSelector) bool {
	return len(sel.GetMatchLabels()) == 0 && len(sel.GetMatchExpressions()) == 0
}

// asSelector converts a LabelSelector to the Kubernetes labels.Selector
// that evaluates it; it fails on selectors that validateLabelSelector
// reports.
func asSelector(sel *meridianv1.LabelSelector) (labels.Selector, error) {
	s := labels.NewSelector()
	for _, k := range sortedKeys(sel.GetMatchLabels()) {
		r, err := labels.NewRequirement(k, selection.Equals, []string{sel.GetMatchLabels()[k]})
		if err != nil {
			return nil, err
		}
		s = s.Add(*r)
	}
	ops := map[string]selection.Operator{
		opIn: selection.In, opNotIn: selection.NotIn,
		opExists: selection.Exists, opDoesNotExist: selection.DoesNotExist,
	}
	for _, e := range sel.GetMatchExpressions() {
		r, err := labels.NewRequirement(e.GetKey(), ops[e.GetOperator()], e.GetValues())
		if err != nil {
			return nil, err
		}
		s = s.Add(*r)
	}
	return s, nil
}

// validateWorkloadSelector checks a workload's selector: it is required
// (unless optional), valid, and must select the pods of the workload's own
// template, or the controller would never see the pods it creates.
func validateWorkloadSelector(sel *meridianv1.LabelSelector, optional bool, tmpl *meridianv1.PodTemplateSpec, selPath, tmplPath *field.Path) field.ErrorList {
	if selectorEmpty(sel) {
		if optional {
			return nil
		}
		return field.ErrorList{field.Required(selPath, "a selector matching the pod template's labels is required")}
	}
	errs := validateLabelSelector(sel, selPath)
	if len(errs) > 0 || tmpl == nil {
		return errs
	}
	s, err := asSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(selPath, sel.String(), err.Error()))
	}
	tmplLabels := tmpl.GetMetadata().GetLabels()
	if !s.Matches(labels.Set(tmplLabels)) {
		if tmplLabels == nil {
			tmplLabels = map[string]string{}
		}
		errs = append(errs, field.Invalid(tmplPath.Child("metadata", "labels"), tmplLabels, "`selector` does not match template `labels`"))
	}
	return errs
}

// checkOneOf reports a value that is not one of the supported ones; empty
// means the default and is accepted unless required.
func checkOneOf(fldPath *field.Path, value string, required bool, supported ...string) field.ErrorList {
	switch {
	case value == "" && required:
		return field.ErrorList{field.Required(fldPath, "supported values: "+quoteAll(supported))}
	case value == "":
		return nil
	case !slices.Contains(supported, value):
		return field.ErrorList{field.NotSupported(fldPath, value, supported)}
	}
	return nil
}

// checkNonNegative reports a negative count.
func checkNonNegative[T int32 | int64](fldPath *field.Path, v T) field.ErrorList {
	if v < 0 {
		return field.ErrorList{field.Invalid(fldPath, int64(v), "must be greater than or equal to 0")}
	}
	return nil
}

// checkOptionalNonNegative is checkNonNegative for an optional field.
func checkOptionalNonNegative[T int32 | int64](fldPath *field.Path, v *T) field.ErrorList {
	if v == nil {
		return nil
	}
	return checkNonNegative(fldPath, *v)
}

func quoteAll(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = `"` + v + `"`
	}
	return strings.Join(q, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
