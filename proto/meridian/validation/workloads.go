package validation

import (
	"strconv"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var specPath = field.NewPath("spec")

// Update strategy types.
const (
	strategyRollingUpdate = "RollingUpdate"
	strategyRecreate      = "Recreate"
	strategyOnDelete      = "OnDelete"
)

// maxCronJobNameLength leaves room in a Job's name for the 11 characters a
// CronJob appends (a dash and the scheduled time).
const maxCronJobNameLength = 52

func validateDeploymentSpec(spec *meridianv1.DeploymentSpec, fldPath *field.Path) field.ErrorList {
	if spec == nil {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	errs := checkOptionalNonNegative(fldPath.Child("replicas"), spec.Replicas)
	errs = append(errs, checkOptionalNonNegative(fldPath.Child("revisionHistoryLimit"), spec.RevisionHistoryLimit)...)
	errs = append(errs, checkNonNegative(fldPath.Child("minReadySeconds"), spec.GetMinReadySeconds())...)
	if pd := spec.ProgressDeadlineSeconds; pd != nil && *pd <= spec.GetMinReadySeconds() {
		errs = append(errs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *pd, "must be greater than minReadySeconds"))
	}
	errs = append(errs, validateWorkloadSelector(spec.GetSelector(), false, spec.GetTemplate(), fldPath.Child("selector"), fldPath.Child("template"))...)
	errs = append(errs, validatePodTemplate(spec.GetTemplate(), workloadPods, fldPath.Child("template"))...)
	if s := spec.GetStrategy(); s != nil {
		p := fldPath.Child("strategy")
		errs = append(errs, checkOneOf(p.Child("type"), s.GetType(), false, strategyRollingUpdate, strategyRecreate)...)
		if ru := s.GetRollingUpdate(); ru != nil {
			if s.GetType() == strategyRecreate {
				errs = append(errs, field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
			} else {
				errs = append(errs, validateRollingBounds(ru.GetMaxSurge(), ru.GetMaxUnavailable(), p.Child("rollingUpdate"))...)
			}
		}
	}
	return errs
}

// validateReplicaSetSpec checks the ReplicaSets a member's Deployment
// controller makes: the same rules as a Deployment's pods.
func validateReplicaSetSpec(spec *meridianv1.ReplicaSetSpec, fldPath *field.Path) field.ErrorList {
	if spec == nil {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	errs := checkOptionalNonNegative(fldPath.Child("replicas"), spec.Replicas)
	errs = append(errs, checkNonNegative(fldPath.Child("minReadySeconds"), spec.GetMinReadySeconds())...)
	errs = append(errs, validateWorkloadSelector(spec.GetSelector(), false, spec.GetTemplate(), fldPath.Child("selector"), fldPath.Child("template"))...)
	return append(errs, validatePodTemplate(spec.GetTemplate(), workloadPods, fldPath.Child("template"))...)
}

func validateStatefulSetSpec(spec *meridianv1.StatefulSetSpec, fldPath *field.Path) field.ErrorList {
	if spec == nil {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	errs := checkOptionalNonNegative(fldPath.Child("replicas"), spec.Replicas)
	errs = append(errs, checkOptionalNonNegative(fldPath.Child("revisionHistoryLimit"), spec.RevisionHistoryLimit)...)
	errs = append(errs, checkNonNegative(fldPath.Child("minReadySeconds"), spec.GetMinReadySeconds())...)
	if sn := spec.GetServiceName(); sn != "" {
		errs = append(errs, checkName(fldPath.Child("serviceName"), sn, dns1123Label)...)
	}
	errs = append(errs, checkOneOf(fldPath.Child("podManagementPolicy"), spec.GetPodManagementPolicy(), false, "OrderedReady", "Parallel")...)
	errs = append(errs, validateWorkloadSelector(spec.GetSelector(), false, spec.GetTemplate(), fldPath.Child("selector"), fldPath.Child("template"))...)
	errs = append(errs, validatePodTemplate(spec.GetTemplate(), workloadPods, fldPath.Child("template"))...)
	if s := spec.GetUpdateStrategy(); s != nil {
		p := fldPath.Child("updateStrategy")
		errs = append(errs, checkOneOf(p.Child("type"), s.GetType(), false, strategyRollingUpdate, strategyOnDelete)...)
		if ru := s.GetRollingUpdate(); ru != nil {
			rp := p.Child("rollingUpdate")
			if s.GetType() == strategyOnDelete {
				errs = append(errs, field.Forbidden(rp, "may not be specified when strategy `type` is 'OnDelete'"))
			}
			errs = append(errs, checkOptionalNonNegative(rp.Child("partition"), ru.Partition)...)
			if mu := ru.GetMaxUnavailable(); mu.GetValue() != nil {
				v, ierrs := intOrPercent(mu, true, rp.Child("maxUnavailable"))
				errs = append(errs, ierrs...)
				if len(ierrs) == 0 && v == 0 {
					errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), intOrStringValue(mu), "must be greater than 0"))
				}
			}
		}
	}
	return errs
}

func validateDaemonSetSpec(spec *meridianv1.DaemonSetSpec, fldPath *field.Path) field.ErrorList {
	if spec == nil {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	errs := checkOptionalNonNegative(fldPath.Child("revisionHistoryLimit"), spec.RevisionHistoryLimit)
	errs = append(errs, checkNonNegative(fldPath.Child("minReadySeconds"), spec.GetMinReadySeconds())...)
	errs = append(errs, validateWorkloadSelector(spec.GetSelector(), false, spec.GetTemplate(), fldPath.Child("selector"), fldPath.Child("template"))...)
	errs = append(errs, validatePodTemplate(spec.GetTemplate(), workloadPods, fldPath.Child("template"))...)
	if s := spec.GetUpdateStrategy(); s != nil {
		p := fldPath.Child("updateStrategy")
		errs = append(errs, checkOneOf(p.Child("type"), s.GetType(), false, strategyRollingUpdate, strategyOnDelete)...)
		if ru := s.GetRollingUpdate(); ru != nil {
			if s.GetType() == strategyOnDelete {
				errs = append(errs, field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'OnDelete'"))
			} else {
				errs = append(errs, validateRollingBounds(ru.GetMaxSurge(), ru.GetMaxUnavailable(), p.Child("rollingUpdate"))...)
			}
		}
	}
	return errs
}

// validateJobSpec checks a Job's spec, or the spec of the Jobs a CronJob
// creates. A Job may leave its selector out (one is generated) unless it
// sets manualSelector.
func validateJobSpec(spec *meridianv1.JobSpec, fldPath *field.Path) field.ErrorList {
	if spec == nil {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	errs := checkOptionalNonNegative(fldPath.Child("parallelism"), spec.Parallelism)
	errs = append(errs, checkOptionalNonNegative(fldPath.Child("completions"), spec.Completions)...)
	errs = append(errs, checkOptionalNonNegative(fldPath.Child("backoffLimit"), spec.BackoffLimit)...)
	errs = append(errs, checkOptionalNonNegative(fldPath.Child("ttlSecondsAfterFinished"), spec.TtlSecondsAfterFinished)...)
	if d := spec.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), *d, "must be greater than 0"))
	}
	errs = append(errs, checkOneOf(fldPath.Child("completionMode"), spec.GetCompletionMode(), false, "NonIndexed", "Indexed")...)
	if spec.GetCompletionMode() == "Indexed" && spec.Completions == nil {
		errs = append(errs, field.Required(fldPath.Child("completions"), "when completion mode is Indexed"))
	}
	errs = append(errs, validateWorkloadSelector(spec.GetSelector(), !spec.GetManualSelector(), spec.GetTemplate(), fldPath.Child("selector"), fldPath.Child("template"))...)
	errs = append(errs, validatePodTemplate(spec.GetTemplate(), jobPods, fldPath.Child("template"))...)
	return errs
}

func validateCronJob(cj *meridianv1.CronJob) field.ErrorList {
	var errs field.ErrorList
	if name := cj.GetMetadata().GetName(); len(name) > maxCronJobNameLength {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), name, "must be no more than 52 characters"))
	}
	spec := cj.GetSpec()
	if spec == nil {
		return append(errs, field.Required(specPath, ""))
	}
	if s := spec.GetSchedule(); s == "" {
		errs = append(errs, field.Required(specPath.Child("schedule"), ""))
	} else if _, err := ParseCronSchedule(s); err != nil {
		errs = append(errs, field.Invalid(specPath.Child("schedule"), s, err.Error()))
	}
	errs = append(errs, checkOneOf(specPath.Child("concurrencyPolicy"), spec.GetConcurrencyPolicy(), false, "Allow", "Forbid", "Replace")...)
	errs = append(errs, checkOptionalNonNegative(specPath.Child("startingDeadlineSeconds"), spec.StartingDeadlineSeconds)...)
	errs = append(errs, checkOptionalNonNegative(specPath.Child("successfulJobsHistoryLimit"), spec.SuccessfulJobsHistoryLimit)...)
	errs = append(errs, checkOptionalNonNegative(specPath.Child("failedJobsHistoryLimit"), spec.FailedJobsHistoryLimit)...)
	jt := spec.GetJobTemplate()
	if jt == nil {
		return append(errs, field.Required(specPath.Child("jobTemplate"), ""))
	}
	jp := specPath.Child("jobTemplate")
	errs = append(errs, validateLabels(jt.GetMetadata().GetLabels(), jp.Child("metadata", "labels"))...)
	errs = append(errs, validateAnnotations(jt.GetMetadata().GetAnnotations(), jp.Child("metadata", "annotations"))...)
	return append(errs, validateJobSpec(jt.GetSpec(), jp.Child("spec"))...)
}

// validateRollingBounds checks maxSurge and maxUnavailable of a rolling
// update: each a non-negative count or a percentage, maxUnavailable at most
// 100%, and not both zero, or the update could never make progress.
func validateRollingBounds(surge, unavailable *meridianv1.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	sv, uv := -1, -1
	if surge.GetValue() != nil {
		v, e := intOrPercent(surge, false, fldPath.Child("maxSurge"))
		if errs = append(errs, e...); len(e) == 0 {
			sv = v
		}
	}
	if unavailable.GetValue() != nil {
		v, e := intOrPercent(unavailable, true, fldPath.Child("maxUnavailable"))
		if errs = append(errs, e...); len(e) == 0 {
			uv = v
		}
	}
	if sv == 0 && uv == 0 {
		errs = append(errs, field.Invalid(fldPath.Child("maxUnavailable"), intOrStringValue(unavailable), "may not be 0 when `maxSurge` is 0"))
	}
	return errs
}

// intOrPercent checks an IntOrString that holds a count (>= 0) or a
// percentage ("25%"), at most 100% if capped, and returns its number.
func intOrPercent(v *meridianv1.IntOrString, capped bool, fldPath *field.Path) (int, field.ErrorList) {
	switch x := v.GetValue().(type) {
	case *meridianv1.IntOrString_IntVal:
		if x.IntVal < 0 {
			return 0, field.ErrorList{field.Invalid(fldPath, x.IntVal, "must be greater than or equal to 0")}
		}
		return int(x.IntVal), nil
	case *meridianv1.IntOrString_StrVal:
		if msgs := k8svalidation.IsValidPercent(x.StrVal); len(msgs) > 0 {
			return 0, field.ErrorList{field.Invalid(fldPath, x.StrVal, strings.Join(msgs, "; "))}
		}
		n, err := strconv.Atoi(strings.TrimSuffix(x.StrVal, "%"))
		if err != nil {
			return 0, field.ErrorList{field.Invalid(fldPath, x.StrVal, "is out of range")}
		}
		if capped && n > 100 {
			return 0, field.ErrorList{field.Invalid(fldPath, x.StrVal, "must not be greater than 100%")}
		}
		return n, nil
	default:
		return 0, nil
	}
}

// intOrStringValue is the bad value an error about an IntOrString shows.
func intOrStringValue(v *meridianv1.IntOrString) any {
	if s, ok := v.GetValue().(*meridianv1.IntOrString_StrVal); ok {
		return s.StrVal
	}
	return v.GetIntVal()
}
