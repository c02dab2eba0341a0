package validation

import (
	"regexp"
	"slices"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// envFieldPaths are the pod fields an environment variable may take its
// value from (fieldRef.fieldPath), besides single labels and annotations.
var envFieldPaths = []string{
	"metadata.name", "metadata.namespace", "metadata.uid",
	"spec.nodeName", "spec.serviceAccountName",
	"status.hostIP", "status.podIP",
}

// envFieldSubscript matches metadata.labels['key'] and
// metadata.annotations['key'].
var envFieldSubscript = regexp.MustCompile(`^metadata\.(labels|annotations)\['([^']+)'\]$`)

// validateEnv checks each variable: a valid name, and either a literal value
// or exactly one source.
func validateEnv(env []*meridianv1.EnvVar, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range env {
		p := fldPath.Index(i)
		if e.GetName() == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else if msgs := k8svalidation.IsEnvVarName(e.GetName()); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("name"), e.GetName(), strings.Join(msgs, "; ")))
		}
		if from := e.GetValueFrom(); from != nil {
			if e.GetValue() != "" {
				errs = append(errs, field.Forbidden(p.Child("valueFrom"), "may not be specified when `value` is not empty"))
			}
			errs = append(errs, validateEnvSource(from, p.Child("valueFrom"))...)
		}
	}
	return errs
}

// validateEnvSource checks that a valueFrom names exactly one source, and
// that source.
func validateEnvSource(from *meridianv1.EnvVarSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	var sources []string
	if ref := from.GetConfigMapKeyRef(); ref != nil {
		sources = append(sources, "configMapKeyRef")
		errs = append(errs, validateKeySelector(ref, fldPath.Child("configMapKeyRef"))...)
	}
	if ref := from.GetSecretKeyRef(); ref != nil {
		sources = append(sources, "secretKeyRef")
		errs = append(errs, validateKeySelector(ref, fldPath.Child("secretKeyRef"))...)
	}
	if ref := from.GetFieldRef(); ref != nil {
		sources = append(sources, "fieldRef")
		errs = append(errs, validateFieldRef(ref, fldPath.Child("fieldRef"))...)
	}
	switch {
	case len(sources) == 0:
		errs = append(errs, field.Required(fldPath, "must specify one of: `configMapKeyRef`, `secretKeyRef` or `fieldRef`"))
	case len(sources) > 1:
		errs = append(errs, field.Forbidden(fldPath.Child(sources[1]), "may not have more than one field specified at a time"))
	}
	return errs
}

// validateKeySelector checks a reference to one key of a ConfigMap or
// Secret.
func validateKeySelector(ref *meridianv1.KeySelector, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ref.GetName() == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	} else {
		errs = append(errs, checkName(fldPath.Child("name"), ref.GetName(), dns1123Subdomain)...)
	}
	if ref.GetKey() == "" {
		errs = append(errs, field.Required(fldPath.Child("key"), ""))
	} else if msgs := k8svalidation.IsConfigMapKey(ref.GetKey()); len(msgs) > 0 {
		errs = append(errs, field.Invalid(fldPath.Child("key"), ref.GetKey(), strings.Join(msgs, "; ")))
	}
	return errs
}

func validateFieldRef(ref *meridianv1.ObjectFieldSelector, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if v := ref.GetApiVersion(); v != "" && v != "v1" {
		errs = append(errs, field.NotSupported(fldPath.Child("apiVersion"), v, []string{"v1"}))
	}
	fp := ref.GetFieldPath()
	switch {
	case fp == "":
		errs = append(errs, field.Required(fldPath.Child("fieldPath"), ""))
	case envFieldSubscript.MatchString(fp):
		key := envFieldSubscript.FindStringSubmatch(fp)[2]
		errs = append(errs, validateLabelKey(key, fldPath.Child("fieldPath"))...)
	default:
		if !slices.Contains(envFieldPaths, fp) {
			errs = append(errs, field.NotSupported(fldPath.Child("fieldPath"), fp,
				slices.Concat(envFieldPaths, []string{"metadata.labels['<KEY>']", "metadata.annotations['<KEY>']"})))
		}
	}
	return errs
}

// validateEnvFrom checks each import of a whole ConfigMap or Secret.
func validateEnvFrom(from []*meridianv1.EnvFromSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range from {
		p := fldPath.Index(i)
		if prefix := e.GetPrefix(); prefix != "" {
			if msgs := k8svalidation.IsEnvVarName(prefix); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("prefix"), prefix, strings.Join(msgs, "; ")))
			}
		}
		var sources []string
		for _, ref := range []struct {
			name string
			ref  *meridianv1.LocalObjectReference
		}{{"configMapRef", e.GetConfigMapRef()}, {"secretRef", e.GetSecretRef()}} {
			if ref.ref == nil {
				continue
			}
			sources = append(sources, ref.name)
			if ref.ref.GetName() == "" {
				errs = append(errs, field.Required(p.Child(ref.name, "name"), ""))
			} else {
				errs = append(errs, checkName(p.Child(ref.name, "name"), ref.ref.GetName(), dns1123Subdomain)...)
			}
		}
		switch {
		case len(sources) == 0:
			errs = append(errs, field.Required(p, "must specify one of: `configMapRef` or `secretRef`"))
		case len(sources) > 1:
			errs = append(errs, field.Forbidden(p.Child(sources[1]), "may not have more than one field specified at a time"))
		}
	}
	return errs
}
