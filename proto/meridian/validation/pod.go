package validation

import (
	"path"
	"strings"

	k8sresource "k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Pod restart policies.
const (
	restartAlways    = "Always"
	restartOnFailure = "OnFailure"
	restartNever     = "Never"
)

var (
	// workloadRestartPolicies is what long-running controllers accept: their
	// pods must come back whatever happens.
	workloadRestartPolicies = []string{restartAlways}
	// jobRestartPolicies is what a Job accepts: its pods must be able to end.
	jobRestartPolicies = []string{restartOnFailure, restartNever}
	// podRestartPolicies is what a bare Pod accepts.
	podRestartPolicies = []string{restartAlways, restartOnFailure, restartNever}
)

// podRules says what a pod spec may hold where it is used.
type podRules struct {
	// restartPolicies lists the accepted restart policies.
	restartPolicies []string
	// restartPolicyRequired is true when the default (Always) is not among
	// them, so the manifest must say which one it wants.
	restartPolicyRequired bool
}

var (
	workloadPods = podRules{restartPolicies: workloadRestartPolicies}
	jobPods      = podRules{restartPolicies: jobRestartPolicies, restartPolicyRequired: true}
	barePods     = podRules{restartPolicies: podRestartPolicies}
)

// validatePodTemplate checks a workload's pod template: its labels and its
// pod spec. A missing template is reported as required.
func validatePodTemplate(t *meridianv1.PodTemplateSpec, rules podRules, fldPath *field.Path) field.ErrorList {
	if t == nil {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	errs := validateLabels(t.GetMetadata().GetLabels(), fldPath.Child("metadata", "labels"))
	errs = append(errs, validateAnnotations(t.GetMetadata().GetAnnotations(), fldPath.Child("metadata", "annotations"))...)
	return append(errs, validatePodSpec(t.GetSpec(), rules, fldPath.Child("spec"))...)
}

// validatePodSpec checks a pod spec: containers, volumes, restart policy and
// scheduling constraints.
func validatePodSpec(spec *meridianv1.PodSpec, rules podRules, fldPath *field.Path) field.ErrorList {
	if spec == nil {
		// A template without a spec: report what it lacks, field by field.
		spec = &meridianv1.PodSpec{}
	}
	volumes, errs := validateVolumes(spec.GetVolumes(), fldPath.Child("volumes"))
	errs = append(errs, validateContainers(spec, volumes, fldPath)...)
	errs = append(errs, checkOneOf(fldPath.Child("restartPolicy"), spec.GetRestartPolicy(), rules.restartPolicyRequired, rules.restartPolicies...)...)
	errs = append(errs, validateLabels(spec.GetNodeSelector(), fldPath.Child("nodeSelector"))...)
	errs = append(errs, validateTolerations(spec.GetTolerations(), fldPath.Child("tolerations"))...)
	errs = append(errs, checkOptionalNonNegative(fldPath.Child("terminationGracePeriodSeconds"), spec.TerminationGracePeriodSeconds)...)
	if d := spec.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), *d, "must be greater than 0"))
	}
	for _, f := range []struct {
		name, value string
		rule        nameRule
	}{
		{"nodeName", spec.GetNodeName(), dns1123Subdomain},
		{"hostname", spec.GetHostname(), dns1123Label},
		{"subdomain", spec.GetSubdomain(), dns1123Label},
		{"serviceAccountName", spec.GetServiceAccountName(), dns1123Subdomain},
	} {
		if f.value != "" {
			errs = append(errs, checkName(fldPath.Child(f.name), f.value, f.rule)...)
		}
	}
	return errs
}

// validateVolumes checks the pod's volumes and returns the set of their
// names, which volume mounts must refer to.
func validateVolumes(volumes []*meridianv1.Volume, fldPath *field.Path) (map[string]bool, field.ErrorList) {
	var errs field.ErrorList
	names := map[string]bool{}
	for i, v := range volumes {
		p := fldPath.Index(i)
		switch name := v.GetName(); {
		case name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case names[name]:
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		default:
			names[name] = true
			errs = append(errs, checkName(p.Child("name"), name, dns1123Label)...)
		}
		errs = append(errs, validateVolumeSource(v, p)...)
	}
	return names, errs
}

// validateVolumeSource checks that a volume has exactly one source, and
// that source.
func validateVolumeSource(v *meridianv1.Volume, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	var sources []string
	if cm := v.GetConfigMap(); cm != nil {
		sources = append(sources, "configMap")
		p := fldPath.Child("configMap")
		if cm.GetName() == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else {
			errs = append(errs, checkName(p.Child("name"), cm.GetName(), dns1123Subdomain)...)
		}
		errs = append(errs, validateKeyToPaths(cm.GetItems(), cm.DefaultMode, p)...)
	}
	if s := v.GetSecret(); s != nil {
		sources = append(sources, "secret")
		p := fldPath.Child("secret")
		if s.GetSecretName() == "" {
			errs = append(errs, field.Required(p.Child("secretName"), ""))
		} else {
			errs = append(errs, checkName(p.Child("secretName"), s.GetSecretName(), dns1123Subdomain)...)
		}
		errs = append(errs, validateKeyToPaths(s.GetItems(), s.DefaultMode, p)...)
	}
	if ed := v.GetEmptyDir(); ed != nil {
		sources = append(sources, "emptyDir")
		p := fldPath.Child("emptyDir")
		errs = append(errs, checkOneOf(p.Child("medium"), ed.GetMedium(), false, "Memory")...)
		if sl := ed.GetSizeLimit(); sl != "" {
			errs = append(errs, validateQuantity(p.Child("sizeLimit"), sl)...)
		}
	}
	switch {
	case len(sources) == 0:
		errs = append(errs, field.Required(fldPath, "must specify a volume type (configMap, secret or emptyDir)"))
	case len(sources) > 1:
		errs = append(errs, field.Forbidden(fldPath.Child(sources[1]), "may not specify more than 1 volume type"))
	}
	return errs
}

// maxFileMode bounds the file modes of projected keys (0777).
const maxFileMode = 0o777

// validateKeyToPaths checks the keys a configMap or secret volume projects
// and their file modes.
func validateKeyToPaths(items []*meridianv1.KeyToPath, defaultMode *int32, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if defaultMode != nil && (*defaultMode < 0 || *defaultMode > maxFileMode) {
		errs = append(errs, field.Invalid(fldPath.Child("defaultMode"), *defaultMode, "must be a number between 0 and 0777 (octal), both inclusive"))
	}
	for i, it := range items {
		if it == nil {
			it = &meridianv1.KeyToPath{}
		}
		p := fldPath.Child("items").Index(i)
		if it.GetKey() == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		}
		if it.GetPath() == "" {
			errs = append(errs, field.Required(p.Child("path"), ""))
		} else {
			errs = append(errs, validateLocalPath(p.Child("path"), it.GetPath())...)
		}
		if it.Mode != nil && (*it.Mode < 0 || *it.Mode > maxFileMode) {
			errs = append(errs, field.Invalid(p.Child("mode"), *it.Mode, "must be a number between 0 and 0777 (octal), both inclusive"))
		}
	}
	return errs
}

// validateLocalPath checks a path that must stay inside a directory: it is
// relative and has no ".." element.
func validateLocalPath(fldPath *field.Path, p string) field.ErrorList {
	if path.IsAbs(p) {
		return field.ErrorList{field.Invalid(fldPath, p, "must be a relative path")}
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return field.ErrorList{field.Invalid(fldPath, p, "must not contain '..'")}
		}
	}
	return nil
}

// validateQuantity checks a quantity string ("100m", "64Mi"): it parses and
// is not negative.
func validateQuantity(fldPath *field.Path, s string) field.ErrorList {
	q, err := k8sresource.ParseQuantity(s)
	if err != nil {
		return field.ErrorList{field.Invalid(fldPath, s, err.Error())}
	}
	if q.Sign() < 0 {
		return field.ErrorList{field.Invalid(fldPath, s, "must be greater than or equal to 0")}
	}
	return nil
}
