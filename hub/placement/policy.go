package placement

import (
	"cmp"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// How specifically a resource selector picks an object, as Karmada's
// implicit priority: by name beats by labels beats by kind alone.
const (
	matchNone = iota
	matchKind
	matchLabels
	matchName
)

// Policy is a PropagationPolicy or a ClusterPropagationPolicy.
type Policy struct {
	// Kind is PropagationPolicy or ClusterPropagationPolicy.
	Kind      string
	Namespace string
	Name      string
	UID       string
	// Generation changes with the spec: a new generation re-places fresh.
	Generation int64
	Spec       *meridianv1.PropagationSpec
}

// Ref is the policy as a binding records it.
func (p *Policy) Ref() *meridianv1.ObjectReference {
	if p == nil {
		return nil
	}
	return &meridianv1.ObjectReference{ApiVersion: resource.MeridianAPIVersion, Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, Uid: p.UID}
}

// PolicyOf wraps a PropagationPolicy or ClusterPropagationPolicy object
// (nil for anything else).
func PolicyOf(o resource.Object) *Policy {
	md := o.GetMetadata()
	p := &Policy{Kind: o.GetKind(), Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid(), Generation: md.GetGeneration()}
	switch x := o.(type) {
	case *meridianv1.PropagationPolicy:
		p.Kind, p.Spec = "PropagationPolicy", x.GetSpec()
	case *meridianv1.ClusterPropagationPolicy:
		p.Kind, p.Spec = "ClusterPropagationPolicy", x.GetSpec()
	default:
		return nil
	}
	return p
}

// SelectPolicy returns the policy that places obj among policies, or nil:
// Karmada's rules. A PropagationPolicy only selects objects of its own
// namespace. Among those that select obj, the highest spec.priority wins;
// then the most specific selector (by name, by labels, by kind); then a
// PropagationPolicy over a ClusterPropagationPolicy; then the first name in
// alphabetical order — so the choice never depends on listing order.
func SelectPolicy(obj resource.Object, policies []*Policy) *Policy {
	var best *Policy
	bestMatch := matchNone
	for _, p := range policies {
		m := policyMatch(obj, p)
		if m == matchNone {
			continue
		}
		if best == nil || better(p, m, best, bestMatch) {
			best, bestMatch = p, m
		}
	}
	return best
}

func better(p *Policy, m int, q *Policy, qm int) bool {
	if c := cmp.Compare(p.Spec.GetPriority(), q.Spec.GetPriority()); c != 0 {
		return c > 0
	}
	if m != qm {
		return m > qm
	}
	if pn, qn := p.Kind == "PropagationPolicy", q.Kind == "PropagationPolicy"; pn != qn {
		return pn
	}
	return cmp.Or(cmp.Compare(p.Namespace, q.Namespace), cmp.Compare(p.Name, q.Name)) < 0
}

// policyMatch is the most specific of p's selectors that selects obj.
func policyMatch(obj resource.Object, p *Policy) int {
	md := obj.GetMetadata()
	if p.Kind == "PropagationPolicy" && p.Namespace != md.GetNamespace() {
		return matchNone
	}
	best := matchNone
	for _, s := range p.Spec.GetResourceSelectors() {
		best = max(best, selectorMatch(obj, s))
	}
	return best
}

// selectorMatch says whether one resource selector selects obj, and how
// specifically. Like Karmada, a selector with a name ignores its label
// selector.
func selectorMatch(obj resource.Object, s *meridianv1.ResourceSelector) int {
	md := obj.GetMetadata()
	if s.GetKind() != obj.GetKind() {
		return matchNone
	}
	if v := s.GetApiVersion(); v != "" && v != obj.GetApiVersion() {
		return matchNone
	}
	if ns := s.GetNamespace(); ns != "" && ns != md.GetNamespace() {
		return matchNone
	}
	if n := s.GetName(); n != "" {
		if n != md.GetName() {
			return matchNone
		}
		return matchName
	}
	if ls := s.GetLabelSelector(); ls != nil {
		sel, err := podutil.Selector(ls)
		if err != nil || !sel.Matches(labels.Set(md.GetLabels())) {
			return matchNone
		}
		return matchLabels
	}
	return matchKind
}
