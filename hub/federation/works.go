package federation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/policies/override"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// workController keeps one Work per (propagated object, cluster the object
// goes to). Where a namespaced object goes, and with how many replicas, is
// its ResourceBinding (the placement controller's decision); Namespaces go
// to every cluster. Each Work is the object as the binding and the
// OverridePolicies make it for that cluster.
type workController struct {
	f         *Federation
	inf       *controller.InformerSet
	clusters  *controller.Informer
	works     *controller.Informer
	bindings  *controller.Informer
	overrides *controller.Informer
	pps, cpps *controller.Informer // which config a policy takes out of "everywhere"
	rec       *controller.Recorder
	ctrl      *controller.Controller
}

// workWorkers is how many objects the work controller syncs at once.
const workWorkers = 64

func newWorkController(f *Federation, inf *controller.InformerSet, rec *controller.Recorder) *workController {
	c := &workController{f: f, inf: inf, clusters: inf.For(clusterKind), works: inf.For(workKind),
		bindings: inf.For(bindingKind), overrides: inf.For(overrideKind),
		pps: inf.For(resource.MustLookup("PropagationPolicy")), cpps: inf.For(resource.MustLookup("ClusterPropagationPolicy")), rec: rec}
	// A sync mostly waits on one etcd write per cluster; etcd batches
	// concurrent writes, so a failover that moves many workloads at once
	// needs many in flight (with 16, the Works of a failover of 1,000
	// workloads trailed their bindings by a second).
	c.ctrl = controller.New("works", workWorkers, c.sync, f.log)
	for _, k := range federation.PropagatedKinds() {
		inf.For(k).AddHandler(controller.Handler{
			OnAdd: func(o resource.Object) { c.ctrl.Queue.Add(sourceKeyOf(o)) },
			OnUpdate: func(old, o resource.Object) {
				// A Work carries the desired state and metadata, never the
				// status: the aggregator's status writes (several per
				// workload while a failover makes it ready elsewhere)
				// change no Work.
				if old.GetMetadata().GetGeneration() != o.GetMetadata().GetGeneration() || !sameMeta(old, o) {
					c.ctrl.Queue.Add(sourceKeyOf(o))
				}
			},
			OnDelete: func(o resource.Object) { c.ctrl.Queue.Add(sourceKeyOf(o)) },
		})
	}
	// A cluster that joins, leaves or changes what it accepts changes where
	// everything goes.
	c.clusters.AddHandler(controller.Handler{
		OnAdd: func(resource.Object) { c.enqueueAll() },
		OnUpdate: func(old, o resource.Object) {
			if !proto.Equal(old.(*meridianv1.Cluster).GetSpec(), o.(*meridianv1.Cluster).GetSpec()) {
				c.enqueueAll()
			}
		},
		OnDelete: func(o resource.Object) {
			c.f.closeStream(o.GetMetadata().GetName())
			c.enqueueAll()
		},
	})
	// A new placement moves the object.
	enqueueBound := func(o resource.Object) {
		if r := o.(*meridianv1.ResourceBinding).GetSpec().GetResource(); r != nil {
			c.ctrl.Queue.Add(sourceKey(r.GetKind(), r.GetNamespace(), r.GetName()))
		}
	}
	c.bindings.AddHandler(controller.Handler{
		OnAdd: enqueueBound,
		OnUpdate: func(old, o resource.Object) {
			ob, nb := old.(*meridianv1.ResourceBinding), o.(*meridianv1.ResourceBinding)
			if !proto.Equal(ob.GetSpec(), nb.GetSpec()) || drillMark(ob) != drillMark(nb) {
				enqueueBound(o)
			}
		},
		OnDelete: enqueueBound,
	})
	// An OverridePolicy changes the Works of its namespace's objects.
	overridden := func(o resource.Object) { c.enqueueNamespace(o.GetMetadata().GetNamespace()) }
	c.overrides.AddHandler(controller.Handler{
		OnAdd:    overridden,
		OnUpdate: func(_, o resource.Object) { overridden(o) },
		OnDelete: overridden,
	})
	// A Work changed or deleted by hand is put back.
	c.works.AddHandler(controller.Handler{
		OnUpdate: func(old, o resource.Object) {
			if old.GetMetadata().GetGeneration() != o.GetMetadata().GetGeneration() {
				c.enqueueSourceOf(o)
			}
		},
		OnDelete: c.enqueueSourceOf,
	})
	return c
}

// sameMeta reports whether a and b have the same metadata, apart from
// their resourceVersion.
func sameMeta(a, b resource.Object) bool {
	am, bm := proto.Clone(a.GetMetadata()).(*meridianv1.ObjectMeta), proto.Clone(b.GetMetadata()).(*meridianv1.ObjectMeta)
	am.ResourceVersion, bm.ResourceVersion = "", ""
	return proto.Equal(am, bm)
}

func (c *workController) enqueueSourceOf(o resource.Object) {
	if src := o.(*meridianv1.Work).GetSpec().GetSource(); src != nil {
		c.ctrl.Queue.Add(sourceKey(src.GetKind(), src.GetNamespace(), src.GetName()))
	}
}

func (c *workController) enqueueNamespace(ns string) {
	for _, k := range federation.PropagatedKinds() {
		if !k.Namespaced {
			continue
		}
		for _, o := range c.inf.For(k).List(ns, nil) {
			c.ctrl.Queue.Add(sourceKeyOf(o))
		}
	}
}

func (c *workController) enqueueAll() {
	for _, k := range federation.PropagatedKinds() {
		for _, o := range c.inf.For(k).List("", nil) {
			c.ctrl.Queue.Add(sourceKeyOf(o))
		}
	}
}

func (c *workController) run(ctx context.Context) {
	if !c.inf.WaitForSync(ctx) {
		return
	}
	c.enqueueAll()
	// Works whose source is gone (deleted while no leader ran) are found
	// through their source reference.
	for _, o := range c.works.List("", nil) {
		c.enqueueSourceOf(o)
	}
	c.ctrl.Run(ctx)
}

// hubOnly reports whether an object stays on the hub: the namespaces that
// hold Works and everything in them, and the "default" namespace, which
// every member makes for itself (what is in it does propagate).
func hubOnly(k *resource.Kind, ns, name string) bool {
	if k.Kind == "Namespace" {
		_, ok := federation.ClusterOfNamespace(name)
		return ok || name == "default"
	}
	_, ok := federation.ClusterOfNamespace(ns)
	return ok
}

func (c *workController) sync(ctx context.Context, key string) error {
	k, ns, name, err := parseSourceKey(key)
	if err != nil {
		return nil
	}
	if hubOnly(k, ns, name) {
		return nil
	}
	obj, exists := c.inf.For(k).Get(ns, name)
	if exists && obj.GetMetadata().GetDeletionTimestamp() != nil {
		exists = false
	}
	// The Works this object has now, by cluster.
	have := map[string]*meridianv1.Work{}
	workName := federation.WorkName(k, ns, name)
	for _, cl := range c.clusters.List("", nil) {
		cn := cl.GetMetadata().GetName()
		if w, ok := c.works.Get(federation.ClusterNamespace(cn), workName); ok {
			have[cn] = w.(*meridianv1.Work)
		}
	}
	// Works of clusters that no longer exist are deleted with the
	// cluster's namespace; nothing to do for them here.
	want := map[string]*meridianv1.TargetCluster{}
	if exists {
		var decided bool
		if want, decided, err = c.targets(ctx, k, obj); err != nil || !decided {
			return err // not placed yet: the binding's arrival brings it back
		}
	}
	names := make([]string, 0, len(want))
	for cn := range want {
		names = append(names, cn)
	}
	sort.Strings(names)
	var overrides []*meridianv1.OverridePolicy
	if exists && k.Namespaced {
		overrides = c.overridesFor(obj)
	}
	// The clusters' Works are written concurrently: each is one etcd
	// round trip, and the slowest, not their sum, should bound the time
	// from apply to the members.
	errc := make(chan error, len(names))
	var wg sync.WaitGroup
	for _, cn := range names {
		w, err := c.buildWork(ctx, obj, k, want[cn], overrides, c.fencingEpoch(k, obj))
		if err != nil {
			c.f.log.Error("cannot make a work", "object", key, "cluster", cn, "err", err)
			c.event(ctx, obj, controller.EventWarning, ReasonOverrideFailed, "Work for cluster %s left as it was: %v", cn, err)
			continue
		}
		if old := have[cn]; old != nil && proto.Equal(old.GetSpec(), w.GetSpec()) && labelsEqual(old, w) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.f.ensureNamespace(ctx, federation.ClusterNamespace(cn)); err != nil {
				errc <- err
				return
			}
			// From the informer's copy (or none): one etcd round trip.
			if _, _, err := store.ApplyFrom(ctx, c.f.store, w, have[cn]); err != nil {
				c.f.namespaces.Delete(federation.ClusterNamespace(cn))
				errc <- fmt.Errorf("apply work %s for %s: %w", w.GetMetadata().GetName(), cn, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	var kept map[string]bool // graceful evictions: see evictingKept
	if exists {
		kept = c.evictingKept(k, obj)
	}
	for cn, w := range have {
		if want[cn] != nil || kept[cn] {
			continue
		}
		_, err := c.f.store.Delete(ctx, workKind, w.GetMetadata().GetNamespace(), w.GetMetadata().GetName(), "")
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete work %s for %s: %w", w.GetMetadata().GetName(), cn, err))
		}
	}
	return errors.Join(errs...)
}

func labelsEqual(a, b *meridianv1.Work) bool {
	return labels.Equals(a.GetMetadata().GetLabels(), b.GetMetadata().GetLabels())
}

// ReasonOverrideFailed is the event of an object whose OverridePolicies
// could not be applied for a cluster (that cluster's Work is left as it
// was).
const ReasonOverrideFailed = "OverrideFailed"

// targets is where obj goes: every cluster for a Namespace, and for an
// object that is not a workload and that no policy selects; else its
// ResourceBinding's clusters. decided is false while the object waits for
// its binding: its Works are left as they are until it comes.
func (c *workController) targets(ctx context.Context, k *resource.Kind, obj resource.Object) (want map[string]*meridianv1.TargetCluster, decided bool, err error) {
	want = map[string]*meridianv1.TargetCluster{}
	md := obj.GetMetadata()
	everywhere := !k.Namespaced
	if !everywhere && !federation.IsWorkload(k) && placement.SelectPolicy(obj, placement.Policies(c.pps, c.cpps, md.GetNamespace())) == nil {
		// The caches say no policy selects it; a policy created just
		// before it may not have reached them yet, and config a policy
		// keeps somewhere (a Secret kept in a jurisdiction) must not leak
		// elsewhere meanwhile: ask the store, one read.
		if everywhere, err = c.noPolicyInStore(ctx, obj); err != nil {
			return nil, false, err
		}
	}
	if everywhere {
		for _, cl := range c.clusters.List("", nil) {
			want[cl.GetMetadata().GetName()] = &meridianv1.TargetCluster{Name: cl.GetMetadata().GetName()}
		}
		return want, true, nil
	}
	o, ok := c.bindings.Get(md.GetNamespace(), placement.BindingName(k.Kind, md.GetName()))
	if !ok {
		return nil, false, nil
	}
	b := o.(*meridianv1.ResourceBinding)
	if b.GetSpec().GetResource().GetUid() != md.GetUid() {
		return nil, false, nil // the binding of an earlier object of that name
	}
	// An unplanned drill's mark fails clusters for this workload as a
	// disaster would: they stop serving it at once (their Works go), and
	// the failover controller moves the replicas after the policy's
	// toleration, as it would off an Unreachable cluster.
	failed, _, _ := failover.DrillFailure(b)
	for _, t := range b.GetSpec().GetClusters() {
		if _, known := c.clusters.Get("", t.GetName()); known && !slices.Contains(failed, t.GetName()) {
			want[t.GetName()] = t
		}
	}
	return want, true, nil
}

// drillMark is the unplanned-drill mark of a binding (see targets), to
// tell a change of it.
func drillMark(b *meridianv1.ResourceBinding) string {
	failed, _, drill := failover.DrillFailure(b)
	return drill + "/" + strings.Join(failed, ",")
}

// noPolicyInStore reports whether no policy in the store selects obj.
func (c *workController) noPolicyInStore(ctx context.Context, obj resource.Object) (bool, error) {
	var policies []*placement.Policy
	for _, q := range []struct {
		kind *resource.Kind
		ns   string
	}{{c.pps.Kind(), obj.GetMetadata().GetNamespace()}, {c.cpps.Kind(), ""}} {
		objs, _, err := c.f.store.List(ctx, q.kind, q.ns, nil)
		if err != nil {
			return false, fmt.Errorf("failed to list %s: %w", q.kind.Plural, err)
		}
		for _, o := range objs {
			policies = append(policies, placement.PolicyOf(o))
		}
	}
	return placement.SelectPolicy(obj, policies) == nil, nil
}

// fencingEpoch is the fencing epoch of obj's binding (0 if none).
func (c *workController) fencingEpoch(k *resource.Kind, obj resource.Object) int64 {
	md := obj.GetMetadata()
	o, ok := c.bindings.Get(md.GetNamespace(), placement.BindingName(k.Kind, md.GetName()))
	if !ok || o.(*meridianv1.ResourceBinding).GetSpec().GetResource().GetUid() != md.GetUid() {
		return 0
	}
	return o.(*meridianv1.ResourceBinding).GetSpec().GetFencingEpoch()
}

// overridesFor is the OverridePolicies that select obj, in the order they
// apply.
func (c *workController) overridesFor(obj resource.Object) []*meridianv1.OverridePolicy {
	objs := c.overrides.List(obj.GetMetadata().GetNamespace(), nil)
	if len(objs) == 0 {
		return nil
	}
	all := make([]*meridianv1.OverridePolicy, len(objs))
	for i, o := range objs {
		all[i] = o.(*meridianv1.OverridePolicy)
	}
	return override.Select(all, obj)
}

// buildWork is the Work that hands obj to target's cluster: the object
// with the replicas placement gave that cluster, then the overrides for it.
func (c *workController) buildWork(ctx context.Context, obj resource.Object, k *resource.Kind, target *meridianv1.TargetCluster, overrides []*meridianv1.OverridePolicy, epoch int64) (*meridianv1.Work, error) {
	out := obj
	if federation.IsWorkload(k) {
		out = proto.Clone(obj).(resource.Object)
		if epoch > 0 {
			federation.SetFencingEpoch(out, epoch)
		}
		r := target.GetReplicas()
		switch o := out.(type) {
		case *meridianv1.Deployment:
			if o.Spec != nil {
				o.Spec.Replicas = &r
			}
		case *meridianv1.StatefulSet:
			if o.Spec != nil {
				o.Spec.Replicas = &r
			}
		}
	}
	if len(overrides) > 0 {
		cl, ok := c.clusters.Get("", target.GetName())
		if !ok {
			return nil, fmt.Errorf("cluster %s is gone", target.GetName())
		}
		var err error
		if out, _, err = override.Apply(out, overrides, placement.ClusterInfo(cl.(*meridianv1.Cluster))); err != nil {
			return nil, err
		}
	}
	return newWork(out, k, target.GetName())
}

func (c *workController) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.rec != nil {
		c.rec.Eventf(ctx, obj, typ, reason, format, args...)
	}
}

// newWork is the Work that hands obj to cluster: the object's desired state
// (no status, no server-owned metadata).
func newWork(obj resource.Object, k *resource.Kind, cluster string) (*meridianv1.Work, error) {
	md := obj.GetMetadata()
	clean := proto.Clone(obj).(resource.Object)
	resource.ClearStatus(clean)
	if svc, ok := clean.(*meridianv1.Service); ok && svc.Spec != nil {
		// Each member allocates its Services' addresses from its own range.
		svc.Spec.ClusterIp, svc.Spec.ClusterIps = "", nil
	}
	cmd := resource.Meta(clean)
	*cmd = meridianv1.ObjectMeta{Name: md.GetName(), Namespace: md.GetNamespace(), Labels: md.GetLabels(), Annotations: md.GetAnnotations()}
	wrapped, err := resource.Wrap(clean)
	if err != nil {
		return nil, err
	}
	return &meridianv1.Work{
		ApiVersion: resource.MeridianAPIVersion, Kind: "Work",
		Metadata: &meridianv1.ObjectMeta{
			Name:      federation.WorkName(k, md.GetNamespace(), md.GetName()),
			Namespace: federation.ClusterNamespace(cluster),
			Labels: map[string]string{
				federation.LabelCluster:    cluster,
				federation.LabelSourceUID:  md.GetUid(),
				federation.LabelSourceKind: strings.ToLower(k.Kind),
			},
		},
		Spec: &meridianv1.WorkSpec{
			Cluster:  cluster,
			Workload: wrapped,
			Source: &meridianv1.ObjectReference{
				ApiVersion: obj.GetApiVersion(), Kind: k.Kind, Namespace: md.GetNamespace(), Name: md.GetName(), Uid: md.GetUid(),
			},
		},
	}, nil
}
