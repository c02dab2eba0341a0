package hubsync

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Applying Works.
//
// A Work the member cannot apply for a reason that another attempt would
// not change (its object is malformed, or an object the hub does not
// manage holds its key) is reported as not applied (Applied=False) and
// skipped; the batch goes on. Any other failure (the store) fails the
// batch: the stream ends, nothing is persisted, and the hub sends the same
// changes again after the reconnect, which replays them as no-ops where
// they were already stored.

// maxAttempts bounds the read-check-write loop of one object, which starts
// over when another writer changes the object between the read and the
// conditional write.
const maxAttempts = 8

// Reasons of an Applied=False condition.
const (
	ReasonApplied     = "Applied"
	ReasonConflict    = "Conflict"    // an object the hub does not manage holds the key
	ReasonInvalidWork = "InvalidWork" // the Work's object cannot be stored
)

// managedSelector selects hub-managed objects.
var managedSelector = labels.SelectorFromSet(labels.Set{federation.LabelManagedBy: federation.ManagedByHub})

// memberOwnedAnnotationPrefixes are annotations the member's own
// controllers write on hub-managed objects (a Deployment's revision). An
// Apply of the Work keeps them unless the Work sets them, so that
// re-applying an unchanged Work writes nothing.
var memberOwnedAnnotationPrefixes = []string{"deployment.kubernetes.io/"}

// item is one Work ready to apply.
type item struct {
	work string
	gen  int64
	obj  resource.Object
	kind *resource.Kind
}

func (it *item) key() resource.Key {
	k := resource.Key{Kind: it.kind, Name: it.obj.GetMetadata().GetName()}
	if it.kind.Namespaced {
		k.Namespace = it.obj.GetMetadata().GetNamespace()
	}
	return k
}

// prepare turns a Work into the object to store; nil (and the Work reported
// as not applied) if it cannot be.
func (c *Client) prepare(w *meridianv1.Work) *item {
	it, err := c.build(w)
	if err != nil {
		c.reportInvalid(w, err)
		return nil
	}
	return it
}

// build turns a Work into the object to store, or says why it cannot.
func (c *Client) build(w *meridianv1.Work) (*item, error) {
	name, gen := w.GetMetadata().GetName(), w.GetMetadata().GetGeneration()
	obj, kind, err := federation.MemberObject(proto.Clone(w).(*meridianv1.Work))
	if err == nil && !federation.Propagated(kind) {
		err = fmt.Errorf("work %s: kind %s is not propagated to members", name, kind.Kind)
	}
	if err == nil {
		_, err = storage.CheckObjectKey(obj)
	}
	if err != nil {
		return nil, err
	}
	return &item{work: name, gen: gen, obj: obj, kind: kind}, nil
}

// reportInvalid reports w (which build refused with err) as not applied.
func (c *Client) reportInvalid(w *meridianv1.Work, err error) {
	name, gen := w.GetMetadata().GetName(), w.GetMetadata().GetGeneration()
	c.log.Warn("cannot apply a work", "work", name, "err", err)
	c.track.setFailure(name, gen, ReasonInvalidWork, err.Error())
	c.m.applied.WithLabelValues("failed").Inc()
}

// applyStats counts what a batch did, for the log.
type applyStats struct {
	created, configured, unchanged, deleted, failed int
}

func (s *applyStats) count(r string) {
	switch r {
	case "created":
		s.created++
	case "configured":
		s.configured++
	case "unchanged":
		s.unchanged++
	case "deleted":
		s.deleted++
	case "failed":
		s.failed++
	}
}

// applySnapshot stores every Work of a snapshot, in apply order, then
// deletes every hub-managed object of a propagated kind the snapshot does
// not list.
func (c *Client) applySnapshot(ctx context.Context, works []*meridianv1.Work) (applyStats, error) {
	var stats applyStats
	items := make([]*item, 0, len(works))
	keep := map[resource.Key]bool{}
	keepWorks := map[string]bool{}
	namespaces := map[string]bool{} // namespaces the snapshot's objects live in
	for _, w := range works {
		keepWorks[w.GetMetadata().GetName()] = true
		it := c.prepare(w)
		if it == nil {
			stats.failed++
			continue
		}
		items = append(items, it)
		keep[it.key()] = true
		if it.kind.Namespaced {
			namespaces[it.obj.GetMetadata().GetNamespace()] = true
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].kind.Order != items[j].kind.Order {
			return items[i].kind.Order < items[j].kind.Order
		}
		return items[i].work < items[j].work
	})
	for _, it := range items {
		r, err := c.applyItem(ctx, it)
		if err != nil {
			return stats, err
		}
		stats.count(r)
	}

	// Delete what the hub no longer hands this member: workloads before
	// what they use, namespaces last.
	kinds := federation.PropagatedKinds()
	for i := len(kinds) - 1; i >= 0; i-- {
		kind := kinds[i]
		objs, _, err := c.cfg.Store.List(ctx, kind, "", managedSelector)
		if err != nil {
			return stats, fmt.Errorf("failed to list the hub-managed %s: %w", kind.Plural, err)
		}
		for _, obj := range objs {
			key, _ := resource.KeyOf(obj)
			if keep[key] || keepWorks[obj.GetMetadata().GetAnnotations()[federation.AnnotationWork]] {
				continue
			}
			if kind == kindNamespace && namespaces[obj.GetMetadata().GetName()] {
				// Created for the objects of Works that are still here.
				continue
			}
			deleted, err := c.deleteManaged(ctx, key, "its work is not in the hub's snapshot")
			if err != nil {
				return stats, err
			}
			if deleted {
				stats.deleted++
			}
		}
	}
	c.track.retainFailures(keepWorks)
	return stats, nil
}

// applyParallelism bounds the objects applyChanges stores at once. Each
// store write waits for a commit (an fsync); the store commits concurrent
// writes together, so a failover that rescales hundreds of workloads in
// one batch is stored in a few commits instead of one per workload.
const applyParallelism = 16

// applyChanges applies changes as if in order. Consecutive updates of
// namespaced objects of one kind are independent of each other (no two
// touch one object: the changes of one object stay in order, in one
// goroutine) and are stored concurrently; anything else — a deletion, a
// Namespace, a cluster-scoped object, a Work that cannot be applied, the
// next kind — waits for what came before it, so that the effects of the
// batch are those of applying it in order.
func (c *Client) applyChanges(ctx context.Context, changes []*meridianv1.WorkChange) (applyStats, error) {
	var (
		stats applyStats
		run   concurrentRun
	)
	for _, ch := range changes {
		w := ch.GetWork()
		if ch.GetDeleted() {
			if err := run.flush(ctx, c, &stats); err != nil {
				return stats, err
			}
			deleted, err := c.deleteWork(ctx, w)
			if err != nil {
				return stats, err
			}
			if deleted {
				stats.deleted++
			}
			continue
		}
		it, err := c.build(w)
		if err != nil {
			if ferr := run.flush(ctx, c, &stats); ferr != nil {
				return stats, ferr
			}
			c.reportInvalid(w, err)
			stats.failed++
			continue
		}
		if run.accepts(it) {
			run.add(it)
			continue
		}
		if err := run.flush(ctx, c, &stats); err != nil {
			return stats, err
		}
		if it.kind.Namespaced && it.kind != kindNamespace {
			run.add(it)
			continue
		}
		r, err := c.applyItem(ctx, it)
		if err != nil {
			return stats, err
		}
		stats.count(r)
	}
	return stats, run.flush(ctx, c, &stats)
}

// concurrentRun is a run of consecutive changes of applyChanges that can
// be stored concurrently: namespaced objects (not Namespaces) of one kind,
// grouped by object so that the changes of one object stay in order.
type concurrentRun struct {
	kind   *resource.Kind
	groups [][]*item               // in order of first appearance
	byKey  map[resource.Key]int    // object → its group
	byWork map[string]resource.Key // work → its object
}

// accepts reports whether it can join the run.
func (r *concurrentRun) accepts(it *item) bool {
	if r.kind == nil || it.kind != r.kind {
		return false
	}
	// A Work that names another object than before is an ordering this
	// run does not model: let it wait.
	k, ok := r.byWork[it.work]
	return !ok || k == it.key()
}

func (r *concurrentRun) add(it *item) {
	if r.kind == nil {
		r.kind = it.kind
		r.byKey = map[resource.Key]int{}
		r.byWork = map[string]resource.Key{}
	}
	k := it.key()
	r.byWork[it.work] = k
	if g, ok := r.byKey[k]; ok {
		r.groups[g] = append(r.groups[g], it)
		return
	}
	r.byKey[k] = len(r.groups)
	r.groups = append(r.groups, []*item{it})
}

// flush stores the run (applyParallelism objects at a time), counts what
// it did into stats, and empties it. On a failure it starts no more
// objects and returns the failures, joined.
func (r *concurrentRun) flush(ctx context.Context, c *Client, stats *applyStats) error {
	groups := r.groups
	*r = concurrentRun{}
	if len(groups) == 0 {
		return nil
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error // guarded by mu
		failed bool    // guarded by mu
	)
	sem := make(chan struct{}, applyParallelism)
	for _, g := range groups {
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, it := range g {
				res, err := c.applyItem(ctx, it)
				mu.Lock()
				if err != nil {
					errs, failed = append(errs, err), true
				} else {
					stats.count(res)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// applyItem stores one Work's object. It returns the result for the
// metrics ("failed" for a Work reported as not applied), or an error that
// should fail the batch.
func (c *Client) applyItem(ctx context.Context, it *item) (string, error) {
	key := it.key()
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, err := c.cfg.Store.Get(ctx, it.kind, key.Namespace, key.Name)
		var result string
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Create, not Apply: an object created meanwhile by someone
			// else must be looked at first.
			_, err = c.cfg.Store.Create(ctx, it.obj)
			switch {
			case errors.Is(err, storage.ErrAlreadyExists):
				lastErr = err
				continue
			case errors.Is(err, storage.ErrNotFound) && it.kind.Namespaced:
				// The namespace is missing (its Work comes later, or the hub
				// does not propagate it): create it, managed by the hub.
				if err := c.ensureNamespace(ctx, key.Namespace, it.work); err != nil {
					return "", err
				}
				lastErr = err
				continue
			}
			result = "created"
		case err != nil:
			return "", fmt.Errorf("work %s: failed to read %s: %w", it.work, key, err)
		case !federation.IsManagedByHub(cur):
			msg := fmt.Sprintf("%s exists on the member without the label %s=%s: it is not the hub's, and is left as it is",
				key, federation.LabelManagedBy, federation.ManagedByHub)
			c.log.Warn("not applying a work over a local object", "work", it.work, "object", key.String())
			c.track.setFailure(it.work, it.gen, ReasonConflict, msg)
			c.m.applied.WithLabelValues("failed").Inc()
			return "failed", nil
		default:
			in := proto.Clone(it.obj).(resource.Object)
			keepMemberFields(cur, in)
			// Conditional on the version read: an object that lost its
			// label meanwhile is looked at again.
			resource.Meta(in).ResourceVersion = cur.GetMetadata().GetResourceVersion()
			var res storage.ApplyResult
			_, res, err = c.cfg.Store.Apply(ctx, in, storage.ApplyOptions{})
			if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
				lastErr = err
				continue
			}
			result = res.String()
		}
		if errors.Is(err, storage.ErrInvalid) {
			c.log.Warn("cannot apply a work", "work", it.work, "err", err)
			c.track.setFailure(it.work, it.gen, ReasonInvalidWork, err.Error())
			c.m.applied.WithLabelValues("failed").Inc()
			return "failed", nil
		}
		if err != nil {
			return "", fmt.Errorf("work %s: failed to store %s: %w", it.work, key, err)
		}
		c.track.clearFailure(it.work)
		c.m.applied.WithLabelValues(result).Inc()
		return result, nil
	}
	return "", fmt.Errorf("work %s: failed to store %s: it kept changing under the write (%d attempts): %w", it.work, key, maxAttempts, lastErr)
}

// keepMemberFields copies into in (the Work's object) what the member's own
// controllers write into the stored object cur and the Work leaves out, so
// that re-applying an unchanged Work is a no-op: member-owned annotations,
// and the clusterIP a Service was allocated on the member.
func keepMemberFields(cur, in resource.Object) {
	for k, v := range cur.GetMetadata().GetAnnotations() {
		if !memberOwnedAnnotation(k) {
			continue
		}
		md := resource.Meta(in)
		if _, set := md.Annotations[k]; !set {
			if md.Annotations == nil {
				md.Annotations = map[string]string{}
			}
			md.Annotations[k] = v
		}
	}
	if svc, ok := in.(*meridianv1.Service); ok {
		old := cur.(*meridianv1.Service).GetSpec()
		if svc.GetSpec().GetClusterIp() == "" && len(svc.GetSpec().GetClusterIps()) == 0 && svc.Spec != nil {
			svc.Spec.ClusterIp, svc.Spec.ClusterIps = old.GetClusterIp(), old.GetClusterIps()
		}
	}
}

func memberOwnedAnnotation(k string) bool {
	for _, p := range memberOwnedAnnotationPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// ensureNamespace creates namespace ns, managed by the hub, unless it
// exists.
func (c *Client) ensureNamespace(ctx context.Context, ns, work string) error {
	obj := kindNamespace.New()
	md := resource.Meta(obj)
	md.Name = ns
	md.Labels = map[string]string{federation.LabelManagedBy: federation.ManagedByHub}
	_, err := c.cfg.Store.Create(ctx, obj)
	if err == nil {
		c.log.Info("created a namespace for a work", "namespace", ns, "work", work)
		return nil
	}
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil
	}
	return fmt.Errorf("work %s: failed to create namespace %s: %w", work, ns, err)
}

// deleteWork deletes the object of a deleted Work, if the member holds it
// and it is hub-managed.
func (c *Client) deleteWork(ctx context.Context, w *meridianv1.Work) (bool, error) {
	name := w.GetMetadata().GetName()
	c.track.clearFailure(name)
	var key resource.Key
	if obj, kind, err := federation.MemberObject(proto.Clone(w).(*meridianv1.Work)); err == nil {
		key = resource.Key{Kind: kind, Name: obj.GetMetadata().GetName()}
		if kind.Namespaced {
			key.Namespace = obj.GetMetadata().GetNamespace()
		}
	} else if kind, ns, n, perr := federation.ParseWorkName(name); perr == nil {
		key = resource.Key{Kind: kind, Namespace: ns, Name: n}
	} else {
		c.log.Warn("cannot tell which object a deleted work names", "work", name, "err", err)
		return false, nil
	}
	if !federation.Propagated(key.Kind) {
		c.log.Warn("ignoring the deletion of a work of a kind that is not propagated", "work", name, "kind", key.Kind.Kind)
		return false, nil
	}
	return c.deleteManaged(ctx, key, "its work was deleted")
}

// deleteManaged deletes the object at key if it is hub-managed. A Namespace
// that holds objects the hub does not manage (and no controller of the
// member owns) is kept: deleting it would delete them.
func (c *Client) deleteManaged(ctx context.Context, key resource.Key, why string) (bool, error) {
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, err := c.cfg.Store.Get(ctx, key.Kind, key.Namespace, key.Name)
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("failed to read %s: %w", key, err)
		}
		if !federation.IsManagedByHub(cur) {
			c.log.Info("not deleting an object the hub does not manage", "object", key.String(), "why", why)
			return false, nil
		}
		if key.Kind == kindNamespace {
			local, err := c.localObjectIn(ctx, key.Name)
			if err != nil {
				return false, err
			}
			if local != "" {
				c.log.Warn("not deleting a hub-managed namespace that holds objects the hub does not manage",
					"namespace", key.Name, "object", local, "why", why)
				return false, nil
			}
		}
		_, err = c.cfg.Store.Delete(ctx, key.Kind, key.Namespace, key.Name, cur.GetMetadata().GetResourceVersion())
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return false, nil
		case errors.Is(err, storage.ErrConflict):
			lastErr = err
			continue
		case err != nil:
			return false, fmt.Errorf("failed to delete %s: %w", key, err)
		}
		c.log.Debug("deleted a hub-managed object", "object", key.String(), "why", why)
		c.m.applied.WithLabelValues("deleted").Inc()
		return true, nil
	}
	return false, fmt.Errorf("failed to delete %s: it kept changing under the delete (%d attempts): %w", key, maxAttempts, lastErr)
}

// localObjectIn names an object in namespace ns that an operator made on
// the member: not hub-managed and not owned by a controller. "" if none.
func (c *Client) localObjectIn(ctx context.Context, ns string) (string, error) {
	kinds := append([]*resource.Kind{kindPod}, federation.PropagatedKinds()...)
	for _, kind := range kinds {
		if !kind.Namespaced {
			continue
		}
		objs, _, err := c.cfg.Store.List(ctx, kind, ns, nil)
		if err != nil {
			return "", fmt.Errorf("failed to list the %s of namespace %s: %w", kind.Plural, ns, err)
		}
		for _, o := range objs {
			if !federation.IsManagedByHub(o) && controller.ControllerOf(o) == nil {
				key, _ := resource.KeyOf(o)
				return key.String(), nil
			}
		}
	}
	return "", nil
}
