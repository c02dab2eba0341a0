package validation

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// propagatableKinds are the kinds a policy may select: the namespaced
// objects a user declares, not those the system makes (Pod, Event) nor the
// policies themselves.
var propagatableKinds = []string{"ConfigMap", "CronJob", "DaemonSet", "Deployment", "Job", "Secret", "Service", "StatefulSet"}

// spreadFields are the cluster fields a spread constraint may group by.
var spreadFields = []string{"region", "datacenter", "cluster"}

// clusterFieldKeys are the cluster fields a field selector may match.
var clusterFieldKeys = []string{"provider", "region", "datacenter"}

func validatePropagationSpec(spec *meridianv1.PropagationSpec, fldPath *field.Path) field.ErrorList {
	errs := validateResourceSelectors(spec.GetResourceSelectors(), true, fldPath.Child("resourceSelectors"))
	if pl := spec.GetPlacement(); pl != nil {
		errs = append(errs, validatePlacement(pl, fldPath.Child("placement"))...)
	}
	if fo := spec.GetFailover(); fo != nil {
		p := fldPath.Child("failover")
		errs = append(errs, checkOneOf(p.Child("purgeMode"), fo.GetPurgeMode(), false, "Graciously", "Immediately")...)
		errs = append(errs, checkOneOf(p.Child("failback"), fo.GetFailback(), false, "Automatic", "Manual")...)
		errs = append(errs, checkOptionalNonNegative(p.Child("tolerationSeconds"), fo.TolerationSeconds)...)
		errs = append(errs, checkOptionalNonNegative(p.Child("gracePeriodSeconds"), fo.GracePeriodSeconds)...)
		errs = append(errs, checkOptionalNonNegative(p.Child("stabilizationSeconds"), fo.StabilizationSeconds)...)
	}
	return errs
}

// validateResourceSelectors checks that each selector names a kind a
// policy can select, by an apiVersion that kind accepts, and, if required,
// that there is at least one (a PropagationPolicy must say what it places;
// an OverridePolicy without selectors applies to every workload of its
// namespace, as in Karmada).
func validateResourceSelectors(sels []*meridianv1.ResourceSelector, required bool, fldPath *field.Path) field.ErrorList {
	if len(sels) == 0 && required {
		return field.ErrorList{field.Required(fldPath, "at least one resource selector is required")}
	}
	var errs field.ErrorList
	for i, s := range sels {
		p := fldPath.Index(i)
		if s.GetApiVersion() == "" {
			errs = append(errs, field.Required(p.Child("apiVersion"), ""))
		}
		switch kind := s.GetKind(); {
		case kind == "":
			errs = append(errs, field.Required(p.Child("kind"), ""))
		case !slices.Contains(propagatableKinds, kind):
			errs = append(errs, field.NotSupported(p.Child("kind"), kind, propagatableKinds))
		case s.GetApiVersion() != "":
			if k, ok := resource.Lookup(kind); ok && !k.AcceptsAPIVersion(s.GetApiVersion()) {
				errs = append(errs, field.NotSupported(p.Child("apiVersion"), s.GetApiVersion(), k.APIVersions))
			}
		}
		if ns := s.GetNamespace(); ns != "" {
			errs = append(errs, checkName(p.Child("namespace"), ns, dns1123Label)...)
		}
		if name := s.GetName(); name != "" {
			errs = append(errs, checkName(p.Child("name"), name, dns1123Subdomain)...)
		}
		errs = append(errs, validateLabelSelector(s.GetLabelSelector(), p.Child("labelSelector"))...)
	}
	return errs
}

func validatePlacement(pl *meridianv1.Placement, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if a := pl.GetClusterAffinity(); a != nil {
		errs = append(errs, validateClusterAffinity(a.GetLabelSelector(), a.GetFieldSelector(), a.GetClusterNames(), a.GetExclude(), fldPath.Child("clusterAffinity"))...)
		if len(pl.GetClusterAffinities()) > 0 {
			errs = append(errs, field.Forbidden(fldPath.Child("clusterAffinities"), "may not be set together with `clusterAffinity`"))
		}
	}
	names := map[string]bool{}
	for i, t := range pl.GetClusterAffinities() {
		p := fldPath.Child("clusterAffinities").Index(i)
		switch n := t.GetAffinityName(); {
		case n == "":
			errs = append(errs, field.Required(p.Child("affinityName"), ""))
		case names[n]:
			errs = append(errs, field.Duplicate(p.Child("affinityName"), n))
		default:
			names[n] = true
		}
		errs = append(errs, validateClusterAffinity(t.GetLabelSelector(), t.GetFieldSelector(), t.GetClusterNames(), t.GetExclude(), p)...)
	}
	errs = append(errs, validateTolerations(pl.GetClusterTolerations(), fldPath.Child("clusterTolerations"))...)
	errs = append(errs, validateSpreadConstraints(pl.GetSpreadConstraints(), fldPath.Child("spreadConstraints"))...)
	if rs := pl.GetReplicaScheduling(); rs != nil {
		errs = append(errs, validateReplicaScheduling(rs, fldPath.Child("replicaScheduling"))...)
	}
	return errs
}

// validateClusterAffinity checks the parts of a ClusterAffinity or
// ClusterAffinityTerm: selectors and cluster names.
func validateClusterAffinity(ls *meridianv1.LabelSelector, fs *meridianv1.FieldSelector, clusterNames, exclude []string, fldPath *field.Path) field.ErrorList {
	errs := validateLabelSelector(ls, fldPath.Child("labelSelector"))
	for i, req := range fs.GetMatchExpressions() {
		p := fldPath.Child("fieldSelector", "matchExpressions").Index(i)
		if key := req.GetKey(); key != "" && !slices.Contains(clusterFieldKeys, key) {
			errs = append(errs, field.NotSupported(p.Child("key"), key, clusterFieldKeys))
			continue
		}
		errs = append(errs, validateRequirement(req, []string{opIn, opNotIn}, true, p)...)
	}
	for _, list := range []struct {
		name  string
		names []string
	}{{"clusterNames", clusterNames}, {"exclude", exclude}} {
		for i, n := range list.names {
			errs = append(errs, checkName(fldPath.Child(list.name).Index(i), n, dns1123Subdomain)...)
		}
	}
	return errs
}

// validateSpreadConstraints checks each constraint: it groups by one known
// field or by one label, and its bounds are consistent (a maxGroups of 0
// means no upper bound).
func validateSpreadConstraints(scs []*meridianv1.SpreadConstraint, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, sc := range scs {
		p := fldPath.Index(i)
		byField, byLabel := sc.GetSpreadByField(), sc.GetSpreadByLabel()
		switch {
		case byField != "" && byLabel != "":
			errs = append(errs, field.Forbidden(p.Child("spreadByLabel"), "may not be set together with `spreadByField`"))
		case byField == "" && byLabel == "":
			errs = append(errs, field.Required(p.Child("spreadByField"), "either `spreadByField` or `spreadByLabel` is required"))
		case byField != "":
			errs = append(errs, checkOneOf(p.Child("spreadByField"), byField, false, spreadFields...)...)
		default:
			errs = append(errs, validateLabelKey(byLabel, p.Child("spreadByLabel"))...)
		}
		if key := byField + "/" + byLabel; seen[key] && (byField != "" || byLabel != "") {
			errs = append(errs, field.Duplicate(p, byField+byLabel))
		} else {
			seen[key] = true
		}
		errs = append(errs, checkNonNegative(p.Child("minGroups"), sc.GetMinGroups())...)
		errs = append(errs, checkNonNegative(p.Child("maxGroups"), sc.GetMaxGroups())...)
		if sc.GetMaxGroups() > 0 && sc.GetMinGroups() > sc.GetMaxGroups() {
			errs = append(errs, field.Invalid(p.Child("minGroups"), sc.GetMinGroups(), fmt.Sprintf("must not be greater than maxGroups (%d)", sc.GetMaxGroups())))
		}
	}
	return errs
}

// validateReplicaScheduling checks how replicas are divided: a division
// preference only when dividing, weights only when weighted, and positive
// static weights.
func validateReplicaScheduling(rs *meridianv1.ReplicaSchedulingStrategy, fldPath *field.Path) field.ErrorList {
	typ, pref := rs.GetReplicaSchedulingType(), rs.GetReplicaDivisionPreference()
	errs := checkOneOf(fldPath.Child("replicaSchedulingType"), typ, false, "Duplicated", "Divided")
	errs = append(errs, checkOneOf(fldPath.Child("replicaDivisionPreference"), pref, false, "Aggregated", "Weighted")...)
	if pref != "" && typ == "Duplicated" {
		errs = append(errs, field.Forbidden(fldPath.Child("replicaDivisionPreference"), "may only be set when `replicaSchedulingType` is 'Divided'"))
	}
	wp := rs.GetWeightPreference()
	if wp == nil {
		return errs
	}
	p := fldPath.Child("weightPreference")
	if pref != "Weighted" {
		errs = append(errs, field.Forbidden(p, "may only be set when `replicaDivisionPreference` is 'Weighted'"))
	}
	errs = append(errs, checkOneOf(p.Child("dynamicWeight"), wp.GetDynamicWeight(), false, "AvailableReplicas")...)
	if wp.GetDynamicWeight() != "" && len(wp.GetStaticWeightList()) > 0 {
		errs = append(errs, field.Forbidden(p.Child("dynamicWeight"), "may not be set together with `staticWeightList`"))
	}
	if hw := wp.GetHierarchicalWeights(); hw != nil {
		hp := p.Child("hierarchicalWeights")
		if wp.GetDynamicWeight() != "" || len(wp.GetStaticWeightList()) > 0 {
			errs = append(errs, field.Forbidden(hp, "may not be set together with `staticWeightList` or `dynamicWeight`"))
		}
		errs = append(errs, validateHierarchicalWeights(hw, hp)...)
	}
	for i, w := range wp.GetStaticWeightList() {
		wpath := p.Child("staticWeightList").Index(i)
		if w.GetWeight() <= 0 {
			errs = append(errs, field.Invalid(wpath.Child("weight"), w.GetWeight(), "must be greater than 0"))
		}
		if t := w.GetTargetCluster(); t != nil {
			errs = append(errs, validateClusterAffinity(t.GetLabelSelector(), t.GetFieldSelector(), t.GetClusterNames(), t.GetExclude(), wpath.Child("targetCluster"))...)
		} else {
			errs = append(errs, field.Required(wpath.Child("targetCluster"), ""))
		}
	}
	return errs
}

// validateHierarchicalWeights checks region → datacenter → cluster
// weights: names are unique at each level and valid, weights are not
// negative (0 keeps a group out; unlisted groups weigh 1).
func validateHierarchicalWeights(hw *meridianv1.HierarchicalWeights, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	level := func(p *field.Path, name string, weight int64, seen map[string]bool) {
		switch {
		case name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case seen[name]:
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		default:
			errs = append(errs, checkName(p.Child("name"), name, dns1123Subdomain)...)
		}
		seen[name] = true
		if weight < 0 {
			errs = append(errs, field.Invalid(p.Child("weight"), weight, "must not be negative (0 keeps it out)"))
		}
	}
	if len(hw.GetRegions()) == 0 {
		errs = append(errs, field.Required(fldPath.Child("regions"), "at least one region"))
	}
	regions := map[string]bool{}
	for i, r := range hw.GetRegions() {
		rp := fldPath.Child("regions").Index(i)
		level(rp, r.GetName(), r.GetWeight(), regions)
		dcs := map[string]bool{}
		for j, d := range r.GetDatacenters() {
			dp := rp.Child("datacenters").Index(j)
			level(dp, d.GetName(), d.GetWeight(), dcs)
			cls := map[string]bool{}
			for k, c := range d.GetClusters() {
				level(dp.Child("clusters").Index(k), c.GetName(), c.GetWeight(), cls)
			}
		}
	}
	return errs
}

// Overrider operators.
const (
	overrideAdd     = "add"
	overrideRemove  = "remove"
	overrideReplace = "replace"
)

var (
	addRemove        = []string{overrideAdd, overrideRemove}
	addRemoveReplace = []string{overrideAdd, overrideRemove, overrideReplace}
)

// validateOverrideSpec checks an OverridePolicy: what it selects, and each
// rule's target and overriders.
func validateOverrideSpec(spec *meridianv1.OverrideSpec, fldPath *field.Path) field.ErrorList {
	errs := validateResourceSelectors(spec.GetResourceSelectors(), false, fldPath.Child("resourceSelectors"))
	for i, rule := range spec.GetOverrideRules() {
		p := fldPath.Child("overrideRules").Index(i)
		if t := rule.GetTargetCluster(); t != nil {
			errs = append(errs, validateClusterAffinity(t.GetLabelSelector(), t.GetFieldSelector(), t.GetClusterNames(), t.GetExclude(), p.Child("targetCluster"))...)
		}
		if rule.GetOverriders() == nil {
			errs = append(errs, field.Required(p.Child("overriders"), ""))
			continue
		}
		errs = append(errs, validateOverriders(rule.GetOverriders(), p.Child("overriders"))...)
	}
	return errs
}

func validateOverriders(o *meridianv1.Overriders, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, io := range o.GetImageOverrider() {
		p := fldPath.Child("imageOverrider").Index(i)
		errs = append(errs, checkOneOf(p.Child("component"), io.GetComponent(), false, "Registry", "Repository", "Tag")...)
		errs = append(errs, checkOneOf(p.Child("operator"), io.GetOperator(), true, addRemoveReplace...)...)
		if io.GetOperator() != overrideRemove && io.GetValue() == "" {
			errs = append(errs, field.Required(p.Child("value"), "unless `operator` is 'remove'"))
		}
	}
	for _, list := range []struct {
		name string
		ops  []*meridianv1.CommandArgsOverrider
	}{{"commandOverrider", o.GetCommandOverrider()}, {"argsOverrider", o.GetArgsOverrider()}} {
		for i, ca := range list.ops {
			p := fldPath.Child(list.name).Index(i)
			errs = append(errs, checkContainerName(p.Child("containerName"), ca.GetContainerName())...)
			errs = append(errs, checkOneOf(p.Child("operator"), ca.GetOperator(), true, addRemove...)...)
		}
	}
	for _, list := range []struct {
		name   string
		ops    []*meridianv1.LabelAnnotationOverrider
		labels bool
	}{{"labelsOverrider", o.GetLabelsOverrider(), true}, {"annotationsOverrider", o.GetAnnotationsOverrider(), false}} {
		for i, la := range list.ops {
			p := fldPath.Child(list.name).Index(i)
			errs = append(errs, checkOneOf(p.Child("operator"), la.GetOperator(), true, addRemoveReplace...)...)
			if list.labels {
				errs = append(errs, validateLabels(la.GetValue(), p.Child("value"))...)
			} else {
				errs = append(errs, validateAnnotations(la.GetValue(), p.Child("value"))...)
			}
		}
	}
	for i, eo := range o.GetEnvOverrider() {
		p := fldPath.Child("envOverrider").Index(i)
		errs = append(errs, checkContainerName(p.Child("containerName"), eo.GetContainerName())...)
		errs = append(errs, checkOneOf(p.Child("operator"), eo.GetOperator(), true, addRemoveReplace...)...)
		errs = append(errs, validateEnv(eo.GetValue(), p.Child("value"))...)
	}
	return append(errs, checkOptionalNonNegative(fldPath.Child("replicas"), o.Replicas)...)
}

func checkContainerName(fldPath *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return checkName(fldPath, name, dns1123Label)
}
