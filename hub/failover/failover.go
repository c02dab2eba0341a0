// Package failover moves workloads off member clusters that failed and
// back once they recover. It runs on the hub leader next to the placement
// controller, shares its informers and its engine, and records every
// decision in the workload's ResourceBinding:
//
//   - failover: a cluster Unreachable for the policy's toleration loses the
//     replicas it ran; the placement engine re-places them with the
//     cluster in Snapshot.Failed (same datacenter, then same region first);
//     the failover plugins may veto or choose other targets; the old copy
//     stays as a graceful eviction (spec.evicting) until the new replicas
//     are ready, the grace period ends, or at once (purgeMode Immediately,
//     and singletons, whose move also waits for the Fence);
//   - failback: a cluster in spec.failedOver that has been Ready for the
//     stabilization window gets replicas back, one bounded step at a time,
//     towards the placement the policy prefers (Automatic), or when a user
//     asks with `meridian failback` (Manual).
//
// See docs/failover.md.
package failover

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Event reasons failover records on workloads.
const (
	ReasonFailedOver      = "FailedOver"
	ReasonFailoverBlocked = "FailoverBlocked"
	ReasonFailoverVetoed  = "FailoverVetoed"
	ReasonFailbackStep    = "FailbackStep"
	ReasonFailedBack      = "FailedBack"
	ReasonEvicted         = "EvictionEnded"
)

// Annotations on a ResourceBinding that ask for a manual failback
// (`meridian failback`). AnnotationFailbackRequested holds the RFC 3339
// time of the request; AnnotationFailbackCluster, when set, limits it to
// one cluster. The controller removes both once it has acted.
const (
	AnnotationFailbackRequested = "meridian.io/failback-requested"
	AnnotationFailbackCluster   = "meridian.io/failback-cluster"
)

// Defaults of Config.
const (
	// DefaultUnreachablePurgeDelay: Config.UnreachablePurgeDelay.
	DefaultUnreachablePurgeDelay = 5 * time.Second
	DefaultRate                  = 1000
	DefaultBurst                 = 1000
	// MaxHistory is how many moves a binding's status.history keeps.
	MaxHistory = 20
	// retryBlocked is when a failover that found no placement, or was
	// vetoed, is tried again (any input change retries it sooner).
	retryBlocked = 10 * time.Second
	// blockedEventEvery bounds FailoverBlocked / FailoverVetoed events per
	// workload when the reason does not change.
	blockedEventEvery = time.Minute
)

var (
	clusterKind = resource.MustLookup("Cluster")
	bindingKind = resource.MustLookup("ResourceBinding")
	workKind    = resource.MustLookup("Work")
	ppKind      = resource.MustLookup("PropagationPolicy")
	cppKind     = resource.MustLookup("ClusterPropagationPolicy")
)

// Config configures a Controller.
type Config struct {
	// Engine is the placement engine (the placement controller's).
	Engine    *placement.Engine
	Store     storage.Interface
	Informers *controller.InformerSet
	// Recorder records events on workloads (optional).
	Recorder *controller.Recorder
	// Metrics (optional: NewMetrics(nil)).
	Metrics *Metrics
	// Fence releases singletons (optional: without it, the conservative
	// rule of fence.go).
	Fence Fence
	// Rate and Burst bound failover moves federation-wide (token bucket;
	// defaults DefaultRate per second, DefaultBurst).
	Rate  float64
	Burst int
	Log   *slog.Logger
	// UnreachablePurgeDelay is how long after a move the evicted copy on
	// a cluster that is still Unreachable waits for its purge, once its
	// replacements are ready (default DefaultUnreachablePurgeDelay; a
	// cluster that comes back is purged at once).
	UnreachablePurgeDelay time.Duration
	// Workers is how many bindings are handled at once (default 32: each
	// move is an etcd round trip, and a failed cluster moves many).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller is the failover and failback controller.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	clusters *controller.Informer
	bindings *controller.Informer
	works    *controller.Informer
	pps      *controller.Informer
	cpps     *controller.Informer
	ctrl     *controller.Controller
	limiter  *rate.Limiter
	metrics  *Metrics

	mu      sync.Mutex
	blocked map[string]blockedNote // by binding key: last blocked/vetoed event
	// releasedEpochs is, by binding key and cluster, the epochs the Fence
	// released for a singleton's move that no binding write carries yet (0:
	// revoked, not released yet). fence.go: a conflicting write must not
	// release again, and a revocation is followed through.
	releasedEpochs map[string]map[string]int64
}

type blockedNote struct {
	reason string
	at     time.Time
}

// New registers the controller's informers in cfg.Informers; call it
// before the informers run.
func New(cfg Config) (*Controller, error) {
	if cfg.Engine == nil || cfg.Store == nil || cfg.Informers == nil {
		return nil, errors.New("failover: Engine, Store and Informers are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UnreachablePurgeDelay <= 0 {
		cfg.UnreachablePurgeDelay = DefaultUnreachablePurgeDelay
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil) // registers nothing: cannot fail
	}
	inf := cfg.Informers
	c := &Controller{
		cfg: cfg, log: cfg.Log, metrics: cfg.Metrics,
		clusters: inf.For(clusterKind), bindings: inf.For(bindingKind), works: inf.For(workKind),
		pps: inf.For(ppKind), cpps: inf.For(cppKind),
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		blocked: map[string]blockedNote{}, releasedEpochs: map[string]map[string]int64{},
	}
	c.ctrl = controller.New("failover", cfg.Workers, c.sync, cfg.Log)
	for _, k := range federation.PropagatedKinds() {
		if k.Namespaced && federation.IsWorkload(k) {
			inf.For(k) // sync reads the workloads
		}
	}
	enqueueBinding := func(o resource.Object) { c.ctrl.Queue.Add(controller.Key(o)) }
	c.bindings.AddHandler(controller.Handler{
		OnAdd:    enqueueBinding,
		OnUpdate: func(_, o resource.Object) { enqueueBinding(o) },
		OnDelete: func(o resource.Object) {
			c.forget(controller.Key(o))
			c.dropReleased(controller.Key(o), math.MaxInt64)
		},
	})
	c.clusters.AddHandler(controller.Handler{
		OnAdd: func(o resource.Object) { c.enqueueCluster(o.GetMetadata().GetName()) },
		OnUpdate: func(old, o resource.Object) {
			if readyOf(old.(*meridianv1.Cluster)) != readyOf(o.(*meridianv1.Cluster)) {
				c.enqueueCluster(o.GetMetadata().GetName())
			}
		},
	})
	// A Work's status says when replacements are ready (evictions end,
	// failback takes its next step): only bindings waiting for that care.
	c.works.AddHandler(controller.Handler{
		OnUpdate: func(_, o resource.Object) {
			src := o.(*meridianv1.Work).GetSpec().GetSource()
			if src == nil {
				return
			}
			bn := placement.BindingName(src.GetKind(), src.GetName())
			if b, ok := c.bindings.Get(src.GetNamespace(), bn); ok && waitsForReady(b.(*meridianv1.ResourceBinding)) {
				c.ctrl.Queue.Add(src.GetNamespace() + "/" + bn)
			}
		},
	})
	policyChanged := func(resource.Object) { c.enqueueAll() }
	for _, i := range []*controller.Informer{c.pps, c.cpps} {
		i.AddHandler(controller.Handler{OnAdd: policyChanged, OnUpdate: func(_, o resource.Object) { policyChanged(o) }, OnDelete: policyChanged})
	}
	return c, nil
}

// waitsForReady reports whether b has something that waits for its
// replicas to be ready: an eviction, or a failback.
func waitsForReady(b *meridianv1.ResourceBinding) bool {
	return len(b.GetSpec().GetEvicting()) > 0 || len(b.GetSpec().GetFailedOver()) > 0
}

// readyOf is what of a cluster failover reacts to: its Ready condition's
// reason and when it last changed.
func readyOf(cl *meridianv1.Cluster) string {
	h := healthOf(cl)
	return string(h.health) + "@" + h.since.String()
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	delete(c.blocked, key)
	c.mu.Unlock()
}

// enqueueCluster enqueues the bindings that concern cluster: those that
// target it, evict from it or failed over from it.
func (c *Controller) enqueueCluster(cluster string) {
	for _, o := range c.bindings.List("", nil) {
		if concerns(o.(*meridianv1.ResourceBinding), cluster) {
			c.ctrl.Queue.Add(controller.Key(o))
		}
	}
}

func concerns(b *meridianv1.ResourceBinding, cluster string) bool {
	s := b.GetSpec()
	for _, t := range s.GetClusters() {
		if t.GetName() == cluster {
			return true
		}
	}
	for _, e := range s.GetEvicting() {
		if e.GetCluster() == cluster {
			return true
		}
	}
	for _, f := range s.GetFailedOver() {
		if f.GetCluster() == cluster {
			return true
		}
	}
	return false
}

func (c *Controller) enqueueAll() {
	for _, o := range c.bindings.List("", nil) {
		c.ctrl.Queue.Add(controller.Key(o))
	}
}

// Run handles bindings until ctx ends, once the informers have synced.
func (c *Controller) Run(ctx context.Context) {
	if !c.cfg.Informers.WaitForSync(ctx) {
		return
	}
	c.enqueueAll()
	c.ctrl.Run(ctx)
}

// sync handles one binding: it ends the evictions that are over, moves
// the workload off clusters whose toleration is over, and fails back
// recovered clusters, in that order; each step re-queues the binding for
// when it next has something to do. Last, a singleton's epoch released for
// a move that no longer applies is written into the binding
// (settleReleased).
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	o, ok := c.bindings.Get(ns, name)
	if !ok {
		return nil
	}
	b := o.(*meridianv1.ResourceBinding)
	ref := b.GetSpec().GetResource()
	k, ok := resource.Lookup(ref.GetKind())
	if !ok || !federation.IsWorkload(k) {
		return nil
	}
	obj, ok := c.cfg.Informers.For(k).Get(ns, ref.GetName())
	if !ok || obj.GetMetadata().GetUid() != ref.GetUid() || obj.GetMetadata().GetDeletionTimestamp() != nil {
		return nil
	}
	w := &workload{key: key, binding: b, obj: obj, kind: k}
	w.policy = placement.SelectPolicy(obj, placement.Policies(c.pps, c.cpps, ns))
	w.behavior = BehaviorOf(w.policy)
	w.clusters = c.healths()
	applyDrillFailure(w) // an unplanned drill's simulated failure (drill.go)
	now := c.cfg.Now()

	if done, err := c.endEvictions(ctx, w, now); done || err != nil {
		return err
	}
	if done, err := c.failover(ctx, w, now); done || err != nil {
		return err
	}
	if done, err := c.plannedMove(ctx, w, now); done || err != nil {
		return err
	}
	if done, err := c.failback(ctx, w, now); done || err != nil {
		return err
	}
	_, err := c.settleReleased(ctx, w, now)
	return err
}

// workload is what one sync knows of a placed workload.
type workload struct {
	key      string
	binding  *meridianv1.ResourceBinding
	obj      resource.Object
	kind     *resource.Kind
	policy   *placement.Policy
	behavior Behavior
	clusters map[string]clusterHealth
	// drillFailed are the clusters an unplanned drill marked failed for
	// this workload (drill.go), drill the drill's name.
	drillFailed map[string]bool
	drill       string
}

// ID is how the Fence names the workload: namespace/kind/name.
func (w *workload) ID() string {
	md := w.obj.GetMetadata()
	return md.GetNamespace() + "/" + w.kind.Kind + "/" + md.GetName()
}

// requeue asks for key again after d (at least a few milliseconds, so
// that a deadline just passed is seen as passed).
func (c *Controller) requeue(key string, d time.Duration) {
	c.ctrl.Queue.AddAfter(key, max(d, 10*time.Millisecond))
}

func (c *Controller) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.cfg.Recorder != nil {
		c.cfg.Recorder.Eventf(ctx, obj, typ, reason, format, args...)
	}
}

// noteBlocked reports whether a FailoverBlocked / FailoverVetoed event for
// key should be recorded: the reason changed, or blockedEventEvery passed.
func (c *Controller) noteBlocked(key, reason string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.blocked[key]
	if ok && last.reason == reason && now.Sub(last.at) < blockedEventEvery {
		return false
	}
	c.blocked[key] = blockedNote{reason: reason, at: now}
	return true
}
