package podutil

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// errSkip ends an Update's mutate function without writing: what it was
// about to do no longer applies to the stored object.
var errSkip = errors.New("no longer applies")

var podKind = resource.MustLookup("Pod")

// Claim sorts candidates (dependents of kind in owner's namespace, from a
// cache) into those owner controls, as Kubernetes' ControllerRefManager
// does, and returns them:
//
//   - a candidate owner controls and sel matches is kept;
//   - one owner controls that sel no longer matches is released (its
//     controller reference removed), so that another owner can take it;
//   - an orphan (no controller) that sel matches and accept allows (nil
//     accepts all) is adopted, but only if owner still exists in the store
//     with its uid: a deleted owner must not adopt anything.
//
// Dependents controlled by someone else are left alone. Adoption and
// release are compare-and-swap writes that re-check the stored object, so
// two owners never both adopt one pod. The returned objects are shared
// (cache or store results): clone before changing. Errors are joined; what
// could be claimed is returned with them.
func Claim(ctx context.Context, st storage.Interface, kind *resource.Kind, owner resource.Object, sel labels.Selector, candidates []resource.Object, accept func(resource.Object) bool) ([]resource.Object, error) {
	uid := owner.GetMetadata().GetUid()
	var (
		owned    []resource.Object
		errs     []error
		checked  bool
		canAdopt bool
	)
	for _, c := range candidates {
		ref := controller.ControllerOf(c)
		matches := sel.Matches(labels.Set(c.GetMetadata().GetLabels()))
		switch {
		case ref != nil && ref.GetUid() == uid && matches:
			owned = append(owned, c)
		case ref != nil && ref.GetUid() == uid:
			if err := release(ctx, st, kind, c, uid); err != nil {
				errs = append(errs, err)
			}
		case ref == nil && matches && (accept == nil || accept(c)):
			if !checked {
				checked = true
				var err error
				if canAdopt, err = ownerLive(ctx, st, owner); err != nil {
					errs = append(errs, err)
				}
			}
			if !canAdopt {
				continue
			}
			got, err := adopt(ctx, st, kind, c, owner, sel)
			if err != nil {
				errs = append(errs, err)
			} else if got != nil {
				owned = append(owned, got)
			}
		}
	}
	return owned, errors.Join(errs...)
}

// ownerLive reports whether owner still exists in the store with its uid.
func ownerLive(ctx context.Context, st storage.Interface, owner resource.Object) (bool, error) {
	kind, err := resource.KindOf(owner)
	if err != nil {
		return false, err
	}
	md := owner.GetMetadata()
	cur, err := st.Get(ctx, kind, md.GetNamespace(), md.GetName())
	switch {
	case err == nil:
		return cur.GetMetadata().GetUid() == md.GetUid(), nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("failed to check %s %s before adopting: %w", kind.Kind, md.GetName(), err)
}

// adopt sets owner as the controller of the orphan c; nil, nil if c was
// adopted by someone else, changed labels or went away meanwhile.
func adopt(ctx context.Context, st storage.Interface, kind *resource.Kind, c, owner resource.Object, sel labels.Selector) (resource.Object, error) {
	md := c.GetMetadata()
	got, err := st.Update(ctx, kind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != md.GetUid() || controller.ControllerOf(o) != nil || !sel.Matches(labels.Set(o.GetMetadata().GetLabels())) {
			return errSkip
		}
		m := resource.Meta(o)
		m.OwnerReferences = append(m.OwnerReferences, controller.OwnerRef(owner))
		return nil
	})
	switch {
	case err == nil:
		return got, nil
	case errors.Is(err, errSkip), errors.Is(err, storage.ErrNotFound):
		return nil, nil
	}
	return nil, fmt.Errorf("failed to adopt %s %s: %w", kind.Kind, md.GetName(), err)
}

// release removes the controller reference to ownerUID from c.
func release(ctx context.Context, st storage.Interface, kind *resource.Kind, c resource.Object, ownerUID string) error {
	md := c.GetMetadata()
	_, err := st.Update(ctx, kind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != md.GetUid() {
			return errSkip
		}
		m := resource.Meta(o)
		n := len(m.OwnerReferences)
		m.OwnerReferences = slices.DeleteFunc(m.OwnerReferences, func(r *meridianv1.OwnerReference) bool { return r.GetUid() == ownerUID })
		if len(m.OwnerReferences) == n {
			return errSkip
		}
		return nil
	})
	if err == nil || errors.Is(err, errSkip) || errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("failed to release %s %s: %w", kind.Kind, md.GetName(), err)
}

// DeleteByUID is controller.DeleteByUID.
func DeleteByUID(ctx context.Context, st storage.Interface, kind *resource.Kind, namespace, name, uid string) (bool, error) {
	return controller.DeleteByUID(ctx, st, kind, namespace, name, uid)
}

// DeletePod is controller.DeletePod.
func DeletePod(ctx context.Context, st storage.Interface, pod *meridianv1.Pod) (bool, error) {
	return controller.DeletePod(ctx, st, pod)
}

// deleteDependent deletes d: gracefully if it is a pod (DeletePod), at
// once otherwise (DeleteByUID).
func deleteDependent(ctx context.Context, st storage.Interface, kind *resource.Kind, d resource.Object) (bool, error) {
	if p, ok := d.(*meridianv1.Pod); ok {
		return DeletePod(ctx, st, p)
	}
	md := d.GetMetadata()
	return DeleteByUID(ctx, st, kind, md.GetNamespace(), md.GetName(), md.GetUid())
}

// DeleteOrphaned is the garbage collection of one owner's dependents: it
// deletes the objects among deps (of depKind) whose controller reference
// names ownerKind/ownerName in namespace while that owner no longer exists
// in the store with the referenced uid (it was deleted, or re-created
// under the same name). Dependents of cachedUID (the owner the caller's
// cache holds, "" if none) are taken as live without a look; for any other
// the owner is read from the store once. It returns how many it deleted.
func DeleteOrphaned(ctx context.Context, st storage.Interface, depKind, ownerKind *resource.Kind, namespace, ownerName, cachedUID string, deps []resource.Object) (int, error) {
	var (
		liveUID string
		read    bool
		n       int
		errs    []error
	)
	for _, d := range deps {
		ref := controller.ControllerOf(d)
		if ref == nil || ref.GetKind() != ownerKind.Kind || ref.GetName() != ownerName || d.GetMetadata().GetNamespace() != namespace ||
			(cachedUID != "" && ref.GetUid() == cachedUID) {
			continue
		}
		if !read {
			read = true
			cur, err := st.Get(ctx, ownerKind, namespace, ownerName)
			switch {
			case err == nil:
				liveUID = cur.GetMetadata().GetUid()
			case !errors.Is(err, storage.ErrNotFound):
				return 0, fmt.Errorf("failed to read %s %s: %w", ownerKind.Kind, ownerName, err)
			}
		}
		if ref.GetUid() == liveUID {
			continue
		}
		deleted, err := deleteDependent(ctx, st, depKind, d)
		if err != nil {
			errs = append(errs, err)
		} else if deleted {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// DependentHandler is an informer handler for dependents (pods, or a
// Deployment's ReplicaSets) that queues owner keys on q: the key of the
// dependent's controller if it is of ownerKind, and for an orphan the keys
// of every owner in owners (the informer of ownerKind) whose selector
// matches it, so that they can adopt it. selector returns an owner's
// selector. onEvent, if not nil, sees each dependent first (to observe
// expectations): deleted is true once it is gone or terminating (has a
// deletionTimestamp), which is when a controller stops counting it. It
// must not block.
func DependentHandler(q *controller.Queue, ownerKind string, owners *controller.Informer, selector func(owner resource.Object) *meridianv1.LabelSelector, onEvent func(dep resource.Object, deleted bool)) controller.Handler {
	queue := func(o resource.Object) {
		md := o.GetMetadata()
		if ref := controller.ControllerOf(o); ref != nil {
			if ref.GetKind() == ownerKind {
				q.Add(md.GetNamespace() + "/" + ref.GetName())
			}
			return
		}
		set := labels.Set(md.GetLabels())
		for _, owner := range owners.List(md.GetNamespace(), nil) {
			ls := selector(owner)
			if len(ls.GetMatchLabels()) == 0 && len(ls.GetMatchExpressions()) == 0 {
				continue
			}
			if sel, err := Selector(ls); err == nil && sel.Matches(set) {
				q.Add(controller.Key(owner))
			}
		}
	}
	return controller.Handler{
		OnAdd: func(o resource.Object) {
			if onEvent != nil {
				onEvent(o, o.GetMetadata().GetDeletionTimestamp() != nil)
			}
			queue(o)
		},
		OnUpdate: func(old, o resource.Object) {
			if onEvent != nil && o.GetMetadata().GetDeletionTimestamp() != nil {
				onEvent(o, true)
			}
			queue(o)
			// A change of controller or labels concerns the old owner too.
			if controller.ControllerOf(old).GetUid() != controller.ControllerOf(o).GetUid() ||
				!labels.Equals(old.GetMetadata().GetLabels(), o.GetMetadata().GetLabels()) {
				queue(old)
			}
		},
		OnDelete: func(o resource.Object) {
			if onEvent != nil {
				onEvent(o, true)
			}
			queue(o)
		},
	}
}

// DeletePods deletes pods in parallel with DeletePod. exp is told to expect
// each deletion (under the controller's key) before it is made, and the
// ones that will never be observed — the pod was gone or going already, or
// the delete failed — are settled at once. onDeleted runs for every pod
// actually deleted (to record an event). The errors are joined.
func DeletePods(ctx context.Context, st storage.Interface, exp *Expectations, key string, pods []*meridianv1.Pod, onDeleted func(name string)) error {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.GetMetadata().GetName()
	}
	exp.ExpectDeletions(key, names...)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error // guarded by mu
	)
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := p.GetMetadata().GetName()
			deleted, err := DeletePod(ctx, st, p)
			if !deleted {
				exp.DeletionObserved(key, name)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			if deleted && onDeleted != nil {
				onDeleted(name)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
