package validation

import (
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Taint effects.
const (
	effectNoSchedule       = "NoSchedule"
	effectPreferNoSchedule = "PreferNoSchedule"
	effectNoExecute        = "NoExecute"
)

var taintEffects = []string{effectNoSchedule, effectPreferNoSchedule, effectNoExecute}

// Toleration operators.
const (
	tolerationEqual  = "Equal"
	tolerationExists = "Exists"
)

// validateClusterSpec checks what an operator declares about a member: its
// place in the topology (region and datacenter, both DNS labels, as they
// become label values and parts of names) and its taints.
func validateClusterSpec(spec *meridianv1.ClusterSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct{ name, value string }{
		{"region", spec.GetRegion()},
		{"datacenter", spec.GetDatacenter()},
	} {
		if f.value == "" {
			errs = append(errs, field.Required(fldPath.Child(f.name), ""))
		} else {
			errs = append(errs, checkName(fldPath.Child(f.name), f.value, dns1123Label)...)
		}
	}
	return append(errs, validateTaints(spec.GetTaints(), fldPath.Child("taints"))...)
}

func validateNodeSpec(spec *meridianv1.NodeSpec, fldPath *field.Path) field.ErrorList {
	return validateTaints(spec.GetTaints(), fldPath.Child("taints"))
}

// validateTaints checks each taint (a valid key and value, a known effect)
// and that no key and effect pair appears twice.
func validateTaints(taints []*meridianv1.Taint, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[[2]string]bool{}
	for i, t := range taints {
		p := fldPath.Index(i)
		if t.GetKey() == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		} else {
			errs = append(errs, validateLabelKey(t.GetKey(), p.Child("key"))...)
		}
		if msgs := k8svalidation.IsValidLabelValue(t.GetValue()); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("value"), t.GetValue(), strings.Join(msgs, "; ")))
		}
		errs = append(errs, checkOneOf(p.Child("effect"), t.GetEffect(), true, taintEffects...)...)
		key := [2]string{t.GetKey(), t.GetEffect()}
		if seen[key] {
			errs = append(errs, field.Duplicate(p, t.GetKey()+":"+t.GetEffect()))
		}
		seen[key] = true
	}
	return errs
}

// validateTolerations checks each toleration: a known operator and effect,
// a value only with Equal, an empty key only with Exists (it then tolerates
// everything), and tolerationSeconds only for NoExecute.
func validateTolerations(tolerations []*meridianv1.Toleration, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range tolerations {
		p := fldPath.Index(i)
		if t.GetKey() != "" {
			errs = append(errs, validateLabelKey(t.GetKey(), p.Child("key"))...)
		}
		switch op := t.GetOperator(); op {
		case "", tolerationEqual:
			if t.GetKey() == "" {
				errs = append(errs, field.Invalid(p.Child("operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
			}
			if msgs := k8svalidation.IsValidLabelValue(t.GetValue()); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("value"), t.GetValue(), strings.Join(msgs, "; ")))
			}
		case tolerationExists:
			if t.GetValue() != "" {
				errs = append(errs, field.Invalid(p.Child("value"), t.GetValue(), "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), op, []string{tolerationEqual, tolerationExists}))
		}
		errs = append(errs, checkOneOf(p.Child("effect"), t.GetEffect(), false, taintEffects...)...)
		if t != nil && t.TolerationSeconds != nil && t.GetEffect() != effectNoExecute {
			errs = append(errs, field.Invalid(p.Child("effect"), t.GetEffect(), "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
	}
	return errs
}
