package federation

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

// workController keeps one Work per (propagated object, cluster the object
// goes to). Until placement policies exist, every object goes to every
// cluster (duplicated): see eligible.
type workController struct {
	f        *Federation
	inf      *controller.InformerSet
	clusters *controller.Informer
	works    *controller.Informer
	ctrl     *controller.Controller
}

func newWorkController(f *Federation, inf *controller.InformerSet) *workController {
	c := &workController{f: f, inf: inf, clusters: inf.For(clusterKind), works: inf.For(workKind)}
	c.ctrl = controller.New("works", 4, c.sync, f.log)
	for _, k := range federation.PropagatedKinds() {
		inf.For(k).AddHandler(controller.Handler{
			OnAdd:    func(o resource.Object) { c.ctrl.Queue.Add(sourceKeyOf(o)) },
			OnUpdate: func(_, o resource.Object) { c.ctrl.Queue.Add(sourceKeyOf(o)) },
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

func (c *workController) enqueueSourceOf(o resource.Object) {
	if src := o.(*meridianv1.Work).GetSpec().GetSource(); src != nil {
		c.ctrl.Queue.Add(sourceKey(src.GetKind(), src.GetNamespace(), src.GetName()))
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
	want := map[string]bool{}
	if exists {
		for _, o := range c.clusters.List("", nil) {
			cl := o.(*meridianv1.Cluster)
			if eligible(k, cl, have[cl.GetMetadata().GetName()] != nil) {
				want[cl.GetMetadata().GetName()] = true
			}
		}
	}
	names := make([]string, 0, len(want))
	for cn := range want {
		names = append(names, cn)
	}
	sort.Strings(names)
	// The clusters' Works are written concurrently: each is one etcd
	// round trip, and the slowest, not their sum, should bound the time
	// from apply to the members.
	errc := make(chan error, len(names))
	var wg sync.WaitGroup
	for _, cn := range names {
		w, err := newWork(obj, k, cn)
		if err != nil {
			c.f.log.Error("cannot make a work", "object", key, "cluster", cn, "err", err)
			return nil
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
			if _, _, err := c.f.store.Apply(ctx, w, storage.ApplyOptions{}); err != nil {
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
	for cn, w := range have {
		if want[cn] {
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

// eligible decides whether a cluster gets (or keeps) an object. Until
// placement policies land, every cluster gets everything, except that a
// cordoned cluster (spec.unschedulable) or one with a NoSchedule taint
// gets no new workloads, and a NoExecute taint removes them.
func eligible(k *resource.Kind, cl *meridianv1.Cluster, has bool) bool {
	if !federation.IsWorkload(k) {
		return true
	}
	noSchedule := cl.GetSpec().GetUnschedulable()
	for _, t := range cl.GetSpec().GetTaints() {
		switch t.GetEffect() {
		case "NoExecute":
			return false
		case "NoSchedule":
			noSchedule = true
		}
	}
	return has || !noSchedule
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
