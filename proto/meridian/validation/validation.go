// Package validation checks Meridian's resources for semantic problems, the
// way the Kubernetes API server validates its objects: names that are valid
// DNS names, selectors that select the workload's own pods, ports in range,
// restart policies that fit the controller, schedules that parse, placement
// policies whose bounds are consistent.
//
// Validate reports every problem at once, each as a field.Error whose path
// is in Kubernetes notation ("spec.template.spec.containers[0].name") and
// whose message is in the Kubernetes style ("Required value",
// `Unsupported value: "Sometimes": supported values: "Always"`). Both the
// manifest decoder and the servers that store objects use it, so a manifest
// that `meridian apply --dry-run` accepts is one the hub accepts.
//
// The checks are by area: metadata and selectors (meta.go), pod templates
// (pod.go, container.go, env.go), workloads (workloads.go, cron.go), core
// kinds (core.go), clusters and scheduling constraints (cluster.go) and
// policies (policy.go).
package validation

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Validate checks one object of any resource kind and returns every problem
// found; an empty list means the object is valid. It only reads the object.
// status is not checked: it is owned by the servers.
func Validate(obj resource.Object) field.ErrorList {
	if obj == nil || !obj.ProtoReflect().IsValid() {
		return field.ErrorList{field.Required(field.NewPath("object"), "no object to validate")}
	}
	kind, err := resource.KindOf(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("kind"), err)}
	}
	errs := validateTypeMeta(obj, kind)
	errs = append(errs, validateObjectMeta(obj.GetMetadata(), kind, nameRuleFor(kind), field.NewPath("metadata"))...)
	return append(errs, validateKind(obj)...)
}

// validateTypeMeta checks apiVersion and kind when they are set (objects
// built in code may leave them out; the servers fill them in).
func validateTypeMeta(obj resource.Object, kind *resource.Kind) field.ErrorList {
	var errs field.ErrorList
	if v := obj.GetApiVersion(); v != "" && !kind.AcceptsAPIVersion(v) {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), v, kind.APIVersions))
	}
	if k := obj.GetKind(); k != "" && k != kind.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), k, fmt.Sprintf("must be %s for this object", kind.Kind)))
	}
	return errs
}

// nameRuleFor returns the rule for a kind's names. Namespaces and Services
// become single DNS labels (service-name.namespace), so their names must be
// labels; everything else may be a subdomain.
func nameRuleFor(kind *resource.Kind) nameRule {
	switch kind.Kind {
	case "Namespace", "Service":
		return dns1123Label
	default:
		return dns1123Subdomain
	}
}

// validateKind runs the checks particular to the object's kind.
func validateKind(obj resource.Object) field.ErrorList {
	switch o := obj.(type) {
	case *meridianv1.Namespace:
		return validateNamespaceSpec(o.GetSpec(), specPath)
	case *meridianv1.Deployment:
		return validateDeploymentSpec(o.GetSpec(), specPath)
	case *meridianv1.ReplicaSet:
		return validateReplicaSetSpec(o.GetSpec(), specPath)
	case *meridianv1.StatefulSet:
		return validateStatefulSetSpec(o.GetSpec(), specPath)
	case *meridianv1.DaemonSet:
		return validateDaemonSetSpec(o.GetSpec(), specPath)
	case *meridianv1.Job:
		return validateJobSpec(o.GetSpec(), specPath)
	case *meridianv1.CronJob:
		return validateCronJob(o)
	case *meridianv1.Pod:
		if o.GetSpec() == nil {
			return field.ErrorList{field.Required(specPath, "")}
		}
		return validatePodSpec(o.GetSpec(), barePods, specPath)
	case *meridianv1.Service:
		return validateServiceSpec(o.GetSpec(), specPath)
	case *meridianv1.ConfigMap:
		return validateConfigMap(o)
	case *meridianv1.Secret:
		return validateSecret(o)
	case *meridianv1.Cluster:
		return validateClusterSpec(o.GetSpec(), specPath)
	case *meridianv1.Node:
		return validateNodeSpec(o.GetSpec(), specPath)
	case *meridianv1.PropagationPolicy:
		return validatePropagationSpec(o.GetSpec(), specPath)
	case *meridianv1.ClusterPropagationPolicy:
		return validatePropagationSpec(o.GetSpec(), specPath)
	case *meridianv1.OverridePolicy:
		return validateOverrideSpec(o.GetSpec(), specPath)
	case *meridianv1.Drill:
		return validateDrillSpec(o.GetSpec(), specPath)
	case *meridianv1.Event:
		return validateEvent(o)
	default:
		return nil
	}
}
