package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Event reasons the controller records on placed objects.
const (
	ReasonScheduled        = "Scheduled"
	ReasonFailedScheduling = "FailedScheduling"
)

// AnnotationPolicyGeneration on a binding is the generation of the policy
// it was placed with: a new generation re-places fresh, not steady.
const AnnotationPolicyGeneration = "meridian.io/policy-generation"

// AnnotationDrill on a binding names the drill (hub/drill) that holds it:
// a planned or unplanned drill edits the binding's clusters itself, and
// the controller leaves such a binding alone until the drill restores it
// and removes the annotation (see docs/drills.md).
const AnnotationDrill = "meridian.io/drill"

// retryUnschedulable is the backstop retry of a placement that failed:
// inputs changing retries it at once, this only covers inputs the
// controller cannot watch (an out-of-process plugin's own data).
const retryUnschedulable = 30 * time.Second

var (
	clusterKind = resource.MustLookup("Cluster")
	bindingKind = resource.MustLookup("ResourceBinding")
	ppKind      = resource.MustLookup("PropagationPolicy")
	cppKind     = resource.MustLookup("ClusterPropagationPolicy")
)

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	Engine    *Engine
	Store     storage.Interface
	Informers *controller.InformerSet
	// Recorder records Scheduled / FailedScheduling events (optional).
	Recorder *controller.Recorder
	// Metrics are the controller's metrics (optional: NewMetrics(nil)).
	// They outlive one controller: a hub node that regains leadership
	// runs a new controller with the same metrics.
	Metrics *Metrics
	Log     *slog.Logger
	// Workers is how many objects are placed at once (default 8).
	Workers int
}

// Controller keeps one ResourceBinding per placed object (every namespaced
// workload, and every other propagated object a policy selects): it re-places an object whenever its spec, its
// policy, or the clusters change, steadily (as few replica moves as the
// policy allows) unless the policy itself changed.
type Controller struct {
	cfg      ControllerConfig
	log      *slog.Logger
	clusters *controller.Informer
	bindings *controller.Informer
	pps      *controller.Informer
	cpps     *controller.Informer
	ctrl     *controller.Controller
	metrics  *Metrics
}

// Metrics are the placement controller's Prometheus metrics.
type Metrics struct {
	placements *prometheus.CounterVec
	latency    prometheus.Histogram
}

// NewMetrics makes the metrics and registers them on reg (if not nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		placements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_placements_total",
			Help: "Placements computed, by result (scheduled, unchanged, unschedulable, error)."}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meridian_placement_duration_seconds",
			Help: "Time to compute one placement (the engine alone).", Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.placements, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("placement: failed to register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// NewController registers its informers in cfg.Informers; call it before
// the informers run.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Engine == nil || cfg.Store == nil || cfg.Informers == nil {
		return nil, errors.New("placement: Engine, Store and Informers are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil) // registers nothing: cannot fail
	}
	inf := cfg.Informers
	c := &Controller{
		cfg: cfg, log: cfg.Log, metrics: cfg.Metrics,
		clusters: inf.For(clusterKind), bindings: inf.For(bindingKind), pps: inf.For(ppKind), cpps: inf.For(cppKind),
	}
	c.ctrl = controller.New("placement", cfg.Workers, c.sync, cfg.Log)
	for _, k := range federation.PropagatedKinds() {
		if !k.Namespaced {
			continue
		}
		inf.For(k).AddHandler(controller.Handler{
			OnAdd: func(o resource.Object) { c.ctrl.Queue.Add(keyOf(o)) },
			OnUpdate: func(old, o resource.Object) {
				// Status writes (aggregation) are frequent and change nothing here.
				om, nm := old.GetMetadata(), o.GetMetadata()
				if om.GetGeneration() != nm.GetGeneration() || !maps.Equal(om.GetLabels(), nm.GetLabels()) ||
					(om.GetDeletionTimestamp() == nil) != (nm.GetDeletionTimestamp() == nil) {
					c.ctrl.Queue.Add(keyOf(o))
				}
			},
			OnDelete: func(o resource.Object) { c.ctrl.Queue.Add(keyOf(o)) },
		})
	}
	policyChanged := func(o resource.Object) { c.enqueueSelected(PolicyOf(o)) }
	for _, i := range []*controller.Informer{c.pps, c.cpps} {
		i.AddHandler(controller.Handler{
			OnAdd: policyChanged,
			OnUpdate: func(old, o resource.Object) {
				if old.GetMetadata().GetGeneration() != o.GetMetadata().GetGeneration() {
					// Both: what the old spec selected may now fall to another policy.
					c.enqueueSelected(PolicyOf(old))
					c.enqueueSelected(PolicyOf(o))
				}
			},
			OnDelete: policyChanged,
		})
	}
	c.clusters.AddHandler(controller.Handler{
		OnAdd: func(resource.Object) { c.enqueueAll(false) },
		OnUpdate: func(old, o resource.Object) {
			oc, nc := old.(*meridianv1.Cluster), o.(*meridianv1.Cluster)
			switch {
			case placementInputs(oc) != placementInputs(nc):
				c.enqueueAll(false)
			case !maps.Equal(oc.GetStatus().GetAvailable(), nc.GetStatus().GetAvailable()):
				// Free capacity moves all the time; steady placements do not
				// care, failed ones may now fit.
				c.enqueueAll(true)
			}
		},
		OnDelete: func(resource.Object) { c.enqueueAll(false) },
	})
	c.bindings.AddHandler(controller.Handler{
		// A binding changed or deleted by someone else is put back.
		OnUpdate: func(old, o resource.Object) {
			if old.GetMetadata().GetGeneration() != o.GetMetadata().GetGeneration() {
				c.enqueueSourceOf(o)
			}
		},
		OnDelete: c.enqueueSourceOf,
	})
	return c, nil
}

// placementInputs is what of a cluster the placement depends on, apart
// from free capacity: labels, spec (topology, taints, cordon), health and
// allocatable.
func placementInputs(cl *meridianv1.Cluster) string {
	ci := ClusterInfo(cl)
	var b strings.Builder
	fmt.Fprintf(&b, "%v|%s|%s|%v|%s|%v|", ci.Labels, ci.Region, ci.Datacenter, ci.Unschedulable, ci.Health, ci.Allocatable)
	for _, t := range ci.Taints {
		fmt.Fprintf(&b, "%s=%s:%s,", t.GetKey(), t.GetValue(), t.GetEffect())
	}
	return b.String()
}

func keyOf(o resource.Object) string {
	return o.GetKind() + "/" + o.GetMetadata().GetNamespace() + "/" + o.GetMetadata().GetName()
}

func (c *Controller) enqueueSourceOf(o resource.Object) {
	if r := o.(*meridianv1.ResourceBinding).GetSpec().GetResource(); r != nil {
		c.ctrl.Queue.Add(r.GetKind() + "/" + r.GetNamespace() + "/" + r.GetName())
	}
}

// enqueueSelected enqueues the objects a policy may concern: those of its
// namespace (a PropagationPolicy) or all (a ClusterPropagationPolicy), of
// the kinds it selects.
func (c *Controller) enqueueSelected(p *Policy) {
	if p == nil {
		return
	}
	ns := ""
	if p.Kind == "PropagationPolicy" {
		ns = p.Namespace
	}
	kinds := map[string]bool{}
	for _, s := range p.Spec.GetResourceSelectors() {
		kinds[s.GetKind()] = true
	}
	for _, k := range federation.PropagatedKinds() {
		if !k.Namespaced || !kinds[k.Kind] {
			continue
		}
		for _, o := range c.cfg.Informers.For(k).List(ns, nil) {
			c.ctrl.Queue.Add(keyOf(o))
		}
	}
}

// enqueueAll enqueues every placed object, or (onlyFailed) those whose
// last placement failed.
func (c *Controller) enqueueAll(onlyFailed bool) {
	if onlyFailed {
		for _, o := range c.bindings.List("", nil) {
			if !scheduled(o.(*meridianv1.ResourceBinding)) {
				c.enqueueSourceOf(o)
			}
		}
		return
	}
	for _, k := range federation.PropagatedKinds() {
		if !k.Namespaced {
			continue
		}
		for _, o := range c.cfg.Informers.For(k).List("", nil) {
			c.ctrl.Queue.Add(keyOf(o))
		}
	}
}

func scheduled(b *meridianv1.ResourceBinding) bool {
	for _, cond := range b.GetStatus().GetConditions() {
		if cond.GetType() == "Scheduled" {
			return cond.GetStatus() == "True"
		}
	}
	return false
}

// Run places objects until ctx ends, once the informers have synced.
func (c *Controller) Run(ctx context.Context) {
	if !c.cfg.Informers.WaitForSync(ctx) {
		return
	}
	c.enqueueAll(false)
	// Bindings whose object is gone (deleted while no leader ran).
	for _, o := range c.bindings.List("", nil) {
		c.enqueueSourceOf(o)
	}
	c.ctrl.Run(ctx)
}

// policies lists every policy that may select an object of namespace ns.
func (c *Controller) policies(ns string) []*Policy { return Policies(c.pps, c.cpps, ns) }

// Policies lists every policy in the PropagationPolicy and
// ClusterPropagationPolicy caches that may select an object of namespace
// ns.
func Policies(pps, cpps *controller.Informer, ns string) []*Policy {
	var out []*Policy
	for _, o := range pps.List(ns, nil) {
		out = append(out, PolicyOf(o))
	}
	for _, o := range cpps.List("", nil) {
		out = append(out, PolicyOf(o))
	}
	return out
}

// Clusters is every cluster as placement sees it, sorted by name.
func (c *Controller) Clusters() []*framework.Cluster { return ClustersOf(c.clusters) }

func (c *Controller) sync(ctx context.Context, key string) error {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return nil
	}
	k, ok := resource.Lookup(parts[0])
	if !ok || !federation.Propagated(k) || !k.Namespaced {
		return nil
	}
	ns, name := parts[1], parts[2]
	if _, hubOnly := federation.ClusterOfNamespace(ns); hubOnly {
		return nil
	}
	bname := BindingName(k.Kind, name)
	var old *meridianv1.ResourceBinding
	if o, ok := c.bindings.Get(ns, bname); ok {
		old = o.(*meridianv1.ResourceBinding)
	}
	obj, exists := c.cfg.Informers.For(k).Get(ns, name)
	if !exists || obj.GetMetadata().GetDeletionTimestamp() != nil {
		if old == nil {
			return nil
		}
		_, err := c.cfg.Store.Delete(ctx, bindingKind, ns, bname, "")
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("failed to delete binding %s/%s: %w", ns, bname, err)
		}
		return nil
	}
	if old != nil && old.GetSpec().GetResource().GetUid() != obj.GetMetadata().GetUid() {
		old = nil // a binding of an earlier object of that name
	}
	if old != nil && old.GetMetadata().GetAnnotations()[AnnotationDrill] != "" {
		return nil // a drill holds it; it re-places it when it lets go
	}

	policy := SelectPolicy(obj, c.policies(ns))
	snap := SnapshotFor(obj, policy, c.Clusters(), old)
	w := snap.Workload
	if policy == nil && !federation.IsWorkload(k) {
		// Config and services no policy selects go everywhere, so that they
		// are wherever their workloads land: the works controller sends
		// them without waiting for a binding (one etcd write less between
		// an apply and the members).
		if old == nil {
			return nil
		}
		_, err := c.cfg.Store.Delete(ctx, bindingKind, ns, bname, "")
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("failed to delete binding %s/%s: %w", ns, bname, err)
		}
		return nil
	}
	start := time.Now()
	res := c.cfg.Engine.Place(ctx, snap)
	c.metrics.latency.Observe(time.Since(start).Seconds())
	next := binding(obj, k, w, policy, old, res)
	changed, err := c.write(ctx, old, next)
	switch {
	case err != nil:
		c.metrics.placements.WithLabelValues("error").Inc()
		return err
	case !res.Status.IsSuccess():
		c.metrics.placements.WithLabelValues("unschedulable").Inc()
		if changed {
			c.event(ctx, obj, controller.EventWarning, ReasonFailedScheduling, "%s", res.Status.Reason)
		}
		c.ctrl.Queue.AddAfter(key, retryUnschedulable)
	case changed && !sameTargets(old, next):
		c.metrics.placements.WithLabelValues("scheduled").Inc()
		c.event(ctx, obj, controller.EventNormal, ReasonScheduled, "Placed on %s", describeTargets(next.GetSpec().GetClusters(), snap.Duplicated()))
	case changed && len(next.GetSpec().GetPlannedClusters()) > 0 && !samePlanned(old, next):
		c.metrics.placements.WithLabelValues("scheduled").Inc()
		c.event(ctx, obj, controller.EventNormal, ReasonScheduled, "Moving to %s: the singleton's copy on %s stops first (fencing)",
			describeTargets(next.GetSpec().GetPlannedClusters(), false), strings.Join(Leaves(next.GetSpec().GetClusters(), next.GetSpec().GetPlannedClusters()), ", "))
	default:
		c.metrics.placements.WithLabelValues("unchanged").Inc()
	}
	return nil
}

func samePolicy(b *meridianv1.ResourceBinding, p *Policy) bool {
	if p == nil {
		return b.GetSpec().GetPolicy() == nil
	}
	return b.GetSpec().GetPolicy().GetUid() == p.UID && b.GetMetadata().GetAnnotations()[AnnotationPolicyGeneration] == strconv.FormatInt(p.Generation, 10)
}

func sameTargets(old, next *meridianv1.ResourceBinding) bool {
	if old == nil {
		return false
	}
	return proto.Equal(&meridianv1.ResourceBindingSpec{Clusters: old.GetSpec().GetClusters()}, &meridianv1.ResourceBindingSpec{Clusters: next.GetSpec().GetClusters()})
}

func samePlanned(old, next *meridianv1.ResourceBinding) bool {
	return proto.Equal(&meridianv1.ResourceBindingSpec{Clusters: old.GetSpec().GetPlannedClusters()}, &meridianv1.ResourceBindingSpec{Clusters: next.GetSpec().GetPlannedClusters()})
}

func describeTargets(ts []*meridianv1.TargetCluster, duplicated bool) string {
	if len(ts) == 0 {
		return "no cluster"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		if duplicated {
			parts[i] = t.GetName()
		} else {
			parts[i] = fmt.Sprintf("%s (%d)", t.GetName(), t.GetReplicas())
		}
	}
	return strings.Join(parts, ", ")
}

// binding is the ResourceBinding that records res. A failed placement
// keeps the clusters the object had: what runs keeps running until a
// placement succeeds.
func binding(obj resource.Object, k *resource.Kind, w *framework.Workload, policy *Policy, old *meridianv1.ResourceBinding, res Result) *meridianv1.ResourceBinding {
	md := obj.GetMetadata()
	b := &meridianv1.ResourceBinding{
		ApiVersion: resource.MeridianAPIVersion, Kind: "ResourceBinding",
		Metadata: &meridianv1.ObjectMeta{
			Name: BindingName(k.Kind, md.GetName()), Namespace: md.GetNamespace(),
			Labels: map[string]string{federation.LabelSourceUID: md.GetUid(), federation.LabelSourceKind: strings.ToLower(k.Kind)},
		},
		Spec: &meridianv1.ResourceBindingSpec{
			Resource: &meridianv1.ObjectReference{ApiVersion: obj.GetApiVersion(), Kind: k.Kind, Namespace: md.GetNamespace(), Name: md.GetName(), Uid: md.GetUid()},
			Replicas: w.Replicas, Policy: policy.Ref(), AffinityName: res.AffinityName,
		},
		Status: &meridianv1.ResourceBindingStatus{ObservedGeneration: md.GetGeneration()},
	}
	verdicts, more := ToBindingVerdicts(res.Verdicts)
	b.Status.Clusters = verdicts
	if policy != nil {
		b.Metadata.Annotations = map[string]string{AnnotationPolicyGeneration: strconv.FormatInt(policy.Generation, 10)}
	}
	cond := &meridianv1.Condition{Type: "Scheduled", Status: "True", Reason: "Scheduled", ObservedGeneration: md.GetGeneration()}
	if more > 0 {
		cond.Message = fmt.Sprintf("%d more clusters were kept out", more)
	}
	if res.Status.IsSuccess() {
		for _, t := range res.Targets {
			b.Spec.Clusters = append(b.Spec.Clusters, &meridianv1.TargetCluster{Name: t.Cluster, Replicas: t.Replicas})
		}
	} else {
		cond.Status, cond.Reason, cond.Message = "False", "Unschedulable", res.Status.Reason
		if res.Status.Code == framework.Error {
			cond.Reason = "Error"
		}
		if old != nil {
			b.Spec.Clusters = old.GetSpec().GetClusters()
			b.Spec.AffinityName = old.GetSpec().GetAffinityName()
		}
	}
	b.Status.Conditions = []*meridianv1.Condition{cond}
	if old != nil {
		carryFailover(b, old)
		if res.Status.IsSuccess() && federation.IsSingleton(obj) {
			if leaving := Leaves(old.GetSpec().GetClusters(), b.Spec.Clusters); len(leaving) > 0 {
				// A singleton never runs in two places: the clusters it
				// leaves must stop their copy first. The failover
				// controller fences them (revoke, release) and then writes
				// the planned targets with a higher epoch.
				b.Spec.PlannedClusters, b.Spec.Clusters = b.Spec.Clusters, old.GetSpec().GetClusters()
				msg := fmt.Sprintf("moving to %s once the copy on %s has stopped (fencing)",
					describeTargets(b.Spec.PlannedClusters, false), strings.Join(leaving, ", "))
				if cond.Message != "" {
					msg += "; " + cond.Message
				}
				cond.Message = msg
			}
		}
	}
	return b
}

// Replace is the binding the placement controller would write for obj
// when the stored binding is b: a steady re-placement under policy on
// clusters (ClustersOf the Cluster informer). Failover writes its
// verdicts and condition together with a move, so that the placement
// controller, which re-places every binding whose spec changed, finds
// nothing left to write (one etcd write less per moved workload).
func Replace(ctx context.Context, engine *Engine, obj resource.Object, policy *Policy, clusters []*framework.Cluster, b *meridianv1.ResourceBinding) (*meridianv1.ResourceBinding, bool) {
	k, ok := resource.Lookup(obj.GetKind())
	if !ok {
		return nil, false
	}
	snap := SnapshotFor(obj, policy, clusters, b)
	res := engine.Place(ctx, snap)
	if !res.Status.IsSuccess() {
		return nil, false
	}
	return binding(obj, k, snap.Workload, policy, b, res), true
}

// Leaves is the clusters of from (with replicas) that to does not target,
// in from's order.
func Leaves(from, to []*meridianv1.TargetCluster) []string {
	var out []string
	for _, f := range from {
		if f.GetReplicas() == 0 {
			continue // no copy runs there
		}
		if !slices.ContainsFunc(to, func(t *meridianv1.TargetCluster) bool { return t.GetName() == f.GetName() }) {
			out = append(out, f.GetName())
		}
	}
	return out
}

// carryFailover copies into next what failover and failback own in a
// binding — evictions, failedOver records, the fencing epoch, the history
// and the annotations other than the policy generation (a requested
// failback) — so that a re-placement never drops them.
func carryFailover(next, from *meridianv1.ResourceBinding) {
	fs := from.GetSpec()
	next.Spec.Evicting, next.Spec.FailedOver, next.Spec.FencingEpoch = fs.GetEvicting(), fs.GetFailedOver(), fs.GetFencingEpoch()
	next.Status.History = from.GetStatus().GetHistory()
	for k, v := range from.GetMetadata().GetAnnotations() {
		if k == AnnotationPolicyGeneration {
			continue
		}
		if next.Metadata.Annotations == nil {
			next.Metadata.Annotations = map[string]string{}
		}
		next.Metadata.Annotations[k] = v
	}
}

// write stores next if it differs from old in anything but times, and
// reports whether it did.
func (c *Controller) write(ctx context.Context, old, next *meridianv1.ResourceBinding) (bool, error) {
	now := timestamppb.Now()
	if old != nil {
		if oc := old.GetStatus().GetConditions(); len(oc) == 1 {
			next.Status.Conditions[0].LastTransitionTime = oc[0].GetLastTransitionTime()
		}
		next.Status.LastScheduledTime = old.GetStatus().GetLastScheduledTime()
		if proto.Equal(old.GetSpec(), next.GetSpec()) && proto.Equal(old.GetStatus(), next.GetStatus()) &&
			maps.Equal(old.GetMetadata().GetLabels(), next.GetMetadata().GetLabels()) &&
			maps.Equal(old.GetMetadata().GetAnnotations(), next.GetMetadata().GetAnnotations()) {
			return false, nil
		}
		if oc := old.GetStatus().GetConditions(); len(oc) != 1 || oc[0].GetStatus() != next.Status.Conditions[0].GetStatus() {
			next.Status.Conditions[0].LastTransitionTime = now
		}
		if !sameTargets(old, next) {
			next.Status.LastScheduledTime = now
		}
		uid, gen := old.GetMetadata().GetUid(), old.GetMetadata().GetGeneration()
		_, err := c.cfg.Store.Update(ctx, bindingKind, next.GetMetadata().GetNamespace(), next.GetMetadata().GetName(), func(o resource.Object) error {
			b := o.(*meridianv1.ResourceBinding)
			if b.GetMetadata().GetUid() != uid || b.GetMetadata().GetGeneration() != gen {
				// Gone, or moved by failover since the cache was read: the
				// sync is retried on the binding that is stored now.
				return storage.ErrConflict
			}
			carryFailover(next, b)
			b.Metadata.Labels, b.Metadata.Annotations = next.Metadata.Labels, next.Metadata.Annotations
			b.Spec, b.Status = next.Spec, next.Status
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("failed to update binding %s/%s: %w", next.GetMetadata().GetNamespace(), next.GetMetadata().GetName(), err)
		}
		return true, nil
	}
	next.Status.Conditions[0].LastTransitionTime = now
	if len(next.Spec.Clusters) > 0 {
		next.Status.LastScheduledTime = now
	}
	ns, name := next.GetMetadata().GetNamespace(), next.GetMetadata().GetName()
	if _, err := c.cfg.Store.Create(ctx, next); err != nil {
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return false, fmt.Errorf("failed to create binding %s/%s: %w", ns, name, err)
		}
		// Either a binding of this object that the cache has not caught up
		// with yet (made by an earlier sync a moment ago, or by another
		// writer), which must be kept: it may carry failover records and a
		// singleton's fencing epoch, and deleting it would stop the
		// workload's copies; or a stale binding of an earlier object of
		// that name, which is replaced. The store says which.
		cur, err := c.cfg.Store.Get(ctx, bindingKind, ns, name)
		if err != nil {
			return false, fmt.Errorf("failed to read binding %s/%s: %w", ns, name, err)
		}
		if cur.(*meridianv1.ResourceBinding).GetSpec().GetResource().GetUid() == next.GetSpec().GetResource().GetUid() {
			return false, fmt.Errorf("binding %s/%s exists but is not in the cache yet: retried", ns, name)
		}
		if _, err := c.cfg.Store.Delete(ctx, bindingKind, ns, name, cur.GetMetadata().GetResourceVersion()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return false, fmt.Errorf("failed to replace binding %s/%s: %w", ns, name, err)
		}
		return false, fmt.Errorf("binding %s/%s was stale: replaced on the next sync", ns, name)
	}
	return true, nil
}

func (c *Controller) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.cfg.Recorder != nil {
		c.cfg.Recorder.Eventf(ctx, obj, typ, reason, format, args...)
	}
}
