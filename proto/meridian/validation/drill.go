package validation

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// drillModes are the kinds of drill.
var drillModes = []string{"test", "planned", "unplanned"}

// validateDrillSpec checks a drill: exactly one scope, a known mode, and
// objectives that are not negative.
func validateDrillSpec(spec *meridianv1.DrillSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	sc, sp := spec.GetScope(), fldPath.Child("scope")
	var set []string
	for _, part := range []struct{ name, value string }{{"cluster", sc.GetCluster()}, {"datacenter", sc.GetDatacenter()}, {"region", sc.GetRegion()}} {
		if part.value == "" {
			continue
		}
		set = append(set, part.name+"="+part.value)
		errs = append(errs, checkName(sp.Child(part.name), part.value, dns1123Subdomain)...)
	}
	if len(set) != 1 {
		errs = append(errs, field.Invalid(sp, strings.Join(set, ","), "set exactly one of cluster, datacenter or region"))
	}
	errs = append(errs, checkOneOf(fldPath.Child("mode"), spec.GetMode(), true, drillModes...)...)
	for _, d := range []struct{ name, value string }{{"rto", spec.GetRto()}, {"rpo", spec.GetRpo()}} {
		if d.value == "" {
			continue
		}
		if v, err := time.ParseDuration(d.value); err != nil || v < 0 {
			errs = append(errs, field.Invalid(fldPath.Child(d.name), d.value, "must be a duration that is not negative, such as 30s or 2m"))
		}
	}
	return append(errs, validateLabelSelector(spec.GetWorkloads(), fldPath.Child("workloads"))...)
}
