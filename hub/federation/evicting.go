package federation

import (
	"slices"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// evictingKept is the clusters whose Works of obj stay as they are
// although the binding no longer targets them: the binding's graceful
// evictions (spec.evicting, written by failover). The copy on a failed
// cluster keeps its replica count, so that when the member comes back it
// keeps serving until the replacements are ready and failover ends the
// eviction. Singletons are the exception: their old copy is fenced, and a
// kept Work could restart it next to its replacement, so it goes at once
// (the eviction record stays, for `meridian describe`).
func (c *workController) evictingKept(k *resource.Kind, obj resource.Object) map[string]bool {
	if obj == nil || !k.Namespaced || federation.IsSingleton(obj) {
		return nil
	}
	md := obj.GetMetadata()
	o, ok := c.bindings.Get(md.GetNamespace(), placement.BindingName(k.Kind, md.GetName()))
	if !ok {
		return nil
	}
	b := o.(*meridianv1.ResourceBinding)
	if b.GetSpec().GetResource().GetUid() != md.GetUid() || len(b.GetSpec().GetEvicting()) == 0 {
		return nil
	}
	// A cluster an unplanned drill failed serves nothing, as in a real
	// disaster: an eviction never keeps its Work (see targets).
	failed, _, _ := failover.DrillFailure(b)
	out := map[string]bool{}
	for _, e := range b.GetSpec().GetEvicting() {
		if !slices.Contains(failed, e.GetCluster()) {
			out[e.GetCluster()] = true
		}
	}
	return out
}
