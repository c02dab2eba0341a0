// Package override applies OverridePolicies: the per-cluster changes the
// hub makes to a workload when it builds each member's Work — another
// registry in another region, more replicas in the production datacenter,
// an environment variable naming the local database. Shaped like
// Karmada's OverridePolicy and its overriders.
//
// Two steps, both pure:
//
//  1. Select picks, for one object, the policies of its namespace whose
//     resourceSelectors select it, in the order they apply: by name.
//  2. Apply, for one cluster, applies to a copy of the object every rule of
//     those policies whose targetCluster selects the cluster, and says
//     what it changed.
//
// Order. Policies apply in the order given (Select's: sorted by name), the
// rules of a policy in their order, and the overriders of a rule in a fixed
// order: image, command, args, labels, annotations, env, replicas. A later
// change wins over an earlier one: with two policies that set the same
// label, the one whose name sorts last decides. (Karmada orders policies
// by an implicit priority, then by name; Meridian keeps only the name,
// which a user can read off `meridian get overridepolicies`.)
//
// Which objects. Container overriders (image, command, args, env) act on
// the pod template of a Deployment, StatefulSet, DaemonSet, Job or
// ReplicaSet, the job template's pod template of a CronJob, and the spec
// of a Pod; on a kind without containers (ConfigMap, Secret, Service)
// they change nothing. The replicas overrider sets spec.replicas of a
// Deployment or StatefulSet and changes nothing on other kinds. The labels
// and annotations overriders change the object's own metadata, never the
// pod template's: template labels are what the workload's selector
// matches, and changing them per cluster would break it.
//
// Errors. A rule that names a container the pod template does not have, or
// that would make an image that does not parse, fails the whole Apply with
// a *RuleError naming the policy, the rule and the container: the hub
// reports it as an event and leaves the cluster's Work as it was.
package override

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/policies/clusteraffinity"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Overrider operators.
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
)

// Image components an imageOverrider may change; an empty component is the
// whole image.
const (
	ComponentRegistry   = "Registry"
	ComponentRepository = "Repository"
	ComponentTag        = "Tag"
)

// Errors a RuleError wraps, for callers that test for them with errors.Is.
var (
	// ErrContainerNotFound: an overrider names a container the pod template
	// does not have (among its containers and init containers).
	ErrContainerNotFound = errors.New("no such container in the pod template")
	// ErrInvalidImage: a container's image does not parse, or the override
	// would make one that does not.
	ErrInvalidImage = errors.New("invalid image")
	// ErrInvalidOverrider: an operator or component that is not known
	// (validation keeps these out of the store).
	ErrInvalidOverrider = errors.New("invalid overrider")
)

// RuleError is the failure of one rule of one OverridePolicy.
type RuleError struct {
	// Namespace and Policy name the OverridePolicy.
	Namespace, Policy string
	// Rule is the index of the rule in spec.overrideRules.
	Rule int
	// Err says what failed, starting with the overrider's field path, such
	// as `envOverrider[1]: container "main": no such container…`.
	Err error
}

// Error reads `overridepolicy default/prod-images: overrideRules[0]:
// envOverrider[1]: container "main": no such container in the pod template
// (it has: app, sidecar)`.
func (e *RuleError) Error() string {
	name := e.Policy
	if e.Namespace != "" {
		name = e.Namespace + "/" + e.Policy
	}
	return fmt.Sprintf("overridepolicy %s: overrideRules[%d]: %v", name, e.Rule, e.Err)
}

// Unwrap returns Err.
func (e *RuleError) Unwrap() error { return e.Err }

// Select returns the policies that apply to obj: those in obj's namespace
// whose spec.resourceSelectors select it, sorted by name (the order Apply
// applies them in; see the package comment). A policy with no selectors
// selects every object of its namespace, as in Karmada.
//
// A selector selects obj when its kind is obj's, its apiVersion is obj's
// (or, for an object that does not carry one, one its kind accepts), its
// namespace (if set) is obj's, and then: its name (if set) is obj's —
// Karmada's rule: a name wins and any labelSelector beside it is ignored —
// or else its labelSelector (if set) matches obj's labels. A selector
// that cannot be evaluated (validation keeps those out) selects nothing.
// Nil policies are ignored; the result is a new slice, nil when no policy
// applies.
func Select(policies []*meridianv1.OverridePolicy, obj resource.Object) []*meridianv1.OverridePolicy {
	if obj == nil {
		return nil
	}
	ns := obj.GetMetadata().GetNamespace()
	var out []*meridianv1.OverridePolicy
	for _, p := range policies {
		if p == nil || p.GetMetadata().GetNamespace() != ns {
			continue
		}
		sels := p.GetSpec().GetResourceSelectors()
		if len(sels) == 0 || slices.ContainsFunc(sels, func(s *meridianv1.ResourceSelector) bool { return selects(s, obj) }) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b *meridianv1.OverridePolicy) int {
		return strings.Compare(a.GetMetadata().GetName(), b.GetMetadata().GetName())
	})
	return out
}

// selects reports whether one resource selector selects obj (see Select).
func selects(sel *meridianv1.ResourceSelector, obj resource.Object) bool {
	k, err := resource.KindOf(obj)
	if err != nil || sel.GetKind() != k.Kind {
		return false
	}
	if v := obj.GetApiVersion(); v != "" {
		if sel.GetApiVersion() != v {
			return false
		}
	} else if !k.AcceptsAPIVersion(sel.GetApiVersion()) {
		return false
	}
	md := obj.GetMetadata()
	if ns := sel.GetNamespace(); ns != "" && ns != md.GetNamespace() {
		return false
	}
	if name := sel.GetName(); name != "" {
		return name == md.GetName()
	}
	if ls := sel.GetLabelSelector(); ls != nil {
		s, err := podutil.Selector(ls)
		return err == nil && s.Matches(labels.Set(md.GetLabels()))
	}
	return true
}

// Apply returns a copy of obj with the overrides for cluster c applied,
// and what they changed, one line per change for events and `meridian
// describe`, such as `op/prod-images: image of container main →
// registry.b/app:1.2` (an overrider that changes nothing — removing a
// label that is not there — adds no line). obj itself is never changed.
//
// It applies, in order (see the package comment), every rule of policies
// whose targetCluster selects c (clusteraffinity.Matches: by clusterNames,
// labels, or a fieldSelector on region, datacenter or provider; a rule
// without a targetCluster applies to every cluster). The caller passes the
// policies Select returned for obj; Apply does not select again.
//
// On failure it returns a *RuleError and no object: the Work should stay
// as it was rather than get half of its overrides.
func Apply(obj resource.Object, policies []*meridianv1.OverridePolicy, c *framework.Cluster) (resource.Object, []string, error) {
	if obj == nil {
		return nil, nil, errors.New("failed to apply overrides: no object")
	}
	if c == nil {
		return nil, nil, errors.New("failed to apply overrides: no cluster")
	}
	out, ok := proto.Clone(obj).(resource.Object)
	if !ok {
		return nil, nil, fmt.Errorf("failed to apply overrides: cannot copy %T", obj)
	}
	var applied []string
	for _, p := range policies {
		if p == nil {
			continue
		}
		md := p.GetMetadata()
		for i, rule := range p.GetSpec().GetOverrideRules() {
			fail := func(err error) error {
				return &RuleError{Namespace: md.GetNamespace(), Policy: md.GetName(), Rule: i, Err: err}
			}
			if t := rule.GetTargetCluster(); t != nil {
				ok, _, err := clusteraffinity.Matches(t, c)
				if err != nil {
					return nil, nil, fail(fmt.Errorf("failed to match targetCluster: %w", err))
				}
				if !ok {
					continue
				}
			}
			changes, err := applyOverriders(out, rule.GetOverriders())
			if err != nil {
				return nil, nil, fail(err)
			}
			for _, ch := range changes {
				applied = append(applied, "op/"+md.GetName()+": "+ch)
			}
		}
	}
	return out, applied, nil
}

// applyOverriders applies one rule's overriders to obj (already a copy),
// in the package's fixed order, and returns what changed.
func applyOverriders(obj resource.Object, o *meridianv1.Overriders) ([]string, error) {
	var changes []string
	spec, hasPods := podSpec(obj)
	if hasPods {
		for i, io := range o.GetImageOverrider() {
			ch, err := overrideImage(spec, io)
			if err != nil {
				return nil, fmt.Errorf("imageOverrider[%d]: %w", i, err)
			}
			changes = append(changes, ch...)
		}
		for _, list := range []struct {
			field string
			ops   []*meridianv1.CommandArgsOverrider
		}{{"command", o.GetCommandOverrider()}, {"args", o.GetArgsOverrider()}} {
			for i, ca := range list.ops {
				ch, err := overrideCommandArgs(spec, ca, list.field)
				if err != nil {
					return nil, fmt.Errorf("%sOverrider[%d]: %w", list.field, i, err)
				}
				changes = append(changes, ch...)
			}
		}
	}
	md := resource.Meta(obj)
	for i, la := range o.GetLabelsOverrider() {
		ch, err := overrideMap(&md.Labels, la, "label")
		if err != nil {
			return nil, fmt.Errorf("labelsOverrider[%d]: %w", i, err)
		}
		changes = append(changes, ch...)
	}
	for i, la := range o.GetAnnotationsOverrider() {
		ch, err := overrideMap(&md.Annotations, la, "annotation")
		if err != nil {
			return nil, fmt.Errorf("annotationsOverrider[%d]: %w", i, err)
		}
		changes = append(changes, ch...)
	}
	if hasPods {
		for i, eo := range o.GetEnvOverrider() {
			ch, err := overrideEnv(spec, eo)
			if err != nil {
				return nil, fmt.Errorf("envOverrider[%d]: %w", i, err)
			}
			changes = append(changes, ch...)
		}
	}
	if o != nil && o.Replicas != nil {
		changes = append(changes, overrideReplicas(obj, *o.Replicas)...)
	}
	return changes, nil
}

// podSpec returns the pod spec of obj's pod template (nil if the template
// is missing) and whether obj's kind has one at all.
func podSpec(obj resource.Object) (*meridianv1.PodSpec, bool) {
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		return o.GetSpec().GetTemplate().GetSpec(), true
	case *meridianv1.StatefulSet:
		return o.GetSpec().GetTemplate().GetSpec(), true
	case *meridianv1.DaemonSet:
		return o.GetSpec().GetTemplate().GetSpec(), true
	case *meridianv1.Job:
		return o.GetSpec().GetTemplate().GetSpec(), true
	case *meridianv1.CronJob:
		return o.GetSpec().GetJobTemplate().GetSpec().GetTemplate().GetSpec(), true
	case *meridianv1.ReplicaSet:
		return o.GetSpec().GetTemplate().GetSpec(), true
	case *meridianv1.Pod:
		return o.GetSpec(), true
	}
	return nil, false
}

// overrideReplicas sets spec.replicas of a Deployment or StatefulSet; other
// kinds have no replicas to set.
func overrideReplicas(obj resource.Object, n int32) []string {
	var field **int32
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		if o.Spec == nil {
			o.Spec = &meridianv1.DeploymentSpec{}
		}
		field = &o.Spec.Replicas
	case *meridianv1.StatefulSet:
		if o.Spec == nil {
			o.Spec = &meridianv1.StatefulSetSpec{}
		}
		field = &o.Spec.Replicas
	default:
		return nil
	}
	if *field != nil && **field == n {
		return nil
	}
	*field = proto.Int32(n)
	return []string{fmt.Sprintf("replicas → %d", n)}
}
