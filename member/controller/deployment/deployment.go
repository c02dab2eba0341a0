// Package deployment is the member's Deployment controller, as Kubernetes'
// own: a Deployment owns one ReplicaSet per pod template it has run, named
// <deployment>-<pod-template-hash>, and rolls from the old ones to the
// current one by changing their spec.replicas (the ReplicaSet controller
// makes the pods). It supports the RollingUpdate strategy (maxSurge,
// maxUnavailable), Recreate, pausing, a revision history of old
// ReplicaSets (revisionHistoryLimit) and rolling back to a revision
// (Rollback, for `meridian rollout undo`).
//
// Rolling updates hold two invariants on the pods themselves, not only on
// the ReplicaSets' specs: there are never more than replicas+maxSurge pods,
// and never fewer than replicas-maxUnavailable available ones (unless
// there were fewer to begin with). The controller counts each ReplicaSet's
// pods from the shared pod cache for that: a ReplicaSet scaled down still
// has its surplus pods until its controller deletes them.
package deployment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Name is the controller's name in logs and events.
const Name = "deployment-controller"

// Annotations and defaults, as in Kubernetes.
const (
	// RevisionAnnotation holds a ReplicaSet's revision number (and the
	// Deployment's current one).
	RevisionAnnotation = "deployment.kubernetes.io/revision"
	// RevisionHistoryAnnotation lists the earlier revisions a ReplicaSet
	// ran as, when a rollback made an old template current again.
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	// ChangeCauseAnnotation is the user's note on why a revision was made.
	ChangeCauseAnnotation = "kubernetes.io/change-cause"

	// DefaultRevisionHistoryLimit is how many old ReplicaSets are kept.
	DefaultRevisionHistoryLimit = 10
	// DefaultProgressDeadlineSeconds is how long a rollout may go without
	// progress before Progressing turns False.
	DefaultProgressDeadlineSeconds = 600
)

// Strategy types.
const (
	RollingUpdate = "RollingUpdate"
	Recreate      = "Recreate"
)

// Condition types and reasons of a Deployment's status.
const (
	ConditionAvailable   = "Available"
	ConditionProgressing = "Progressing"

	ReasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	ReasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
	ReasonNewReplicaSetCreated       = "NewReplicaSetCreated"
	ReasonFoundNewReplicaSet         = "FoundNewReplicaSet"
	ReasonReplicaSetUpdated          = "ReplicaSetUpdated"
	ReasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
	ReasonProgressDeadlineExceeded   = "ProgressDeadlineExceeded"
	ReasonDeploymentPaused           = "DeploymentPaused"

	// ReasonScalingReplicaSet is the event of every ReplicaSet scaling.
	ReasonScalingReplicaSet = "ScalingReplicaSet"
	// ReasonSelectorInvalid is the event of a Deployment it cannot manage.
	ReasonSelectorInvalid = "SelectorInvalid"
)

// workers sync different Deployments in parallel: a sync that scales
// waits on two or three store writes (the ReplicaSet, an event, the
// status), and the store commits concurrent writes together, so a failover
// that scales hundreds of Deployments at once goes as fast as the workers
// keep the store busy. Each waits on commits (fsyncs) most of the time,
// so many are cheap; with 16, scaling trailed the Deployments arriving in
// a failover of 1,000 by most of a second (docs/BENCHMARKS.md, stages).
const workers = 64

var (
	deployKind = resource.MustLookup("Deployment")
	rsKind     = resource.MustLookup("ReplicaSet")
	podKind    = resource.MustLookup("Pod")
)

// The member runs every controller by its Run method.
var _ interface{ Run(context.Context) } = (*Controller)(nil)

// Controller is the Deployment controller.
type Controller struct {
	st    storage.Interface
	deps  *controller.Informer
	rss   *controller.Informer
	pods  *controller.Informer
	rec   *controller.Recorder
	log   *slog.Logger
	now   func() time.Time
	ctrl  *controller.Controller
	infos []*controller.Informer
}

// New returns a Deployment controller reading Deployments, ReplicaSets and
// Pods through inf. Call it before inf.Run; rec may be nil (no events).
func New(st storage.Interface, inf *controller.InformerSet, rec *controller.Recorder, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		st:   st,
		deps: inf.For(deployKind),
		rss:  inf.For(rsKind),
		pods: inf.For(podKind),
		rec:  rec,
		log:  log,
		now:  time.Now,
	}
	c.infos = []*controller.Informer{c.deps, c.rss, c.pods}
	controller.IndexControllers(c.rss)
	controller.IndexControllers(c.pods)
	c.ctrl = controller.New(Name, workers, c.sync, log)
	// Every update queues the Deployment, its own status writes too: a
	// sync compares the status it computes with the cached Deployment's,
	// which can be older than the status the last sync wrote; the event of
	// that write brings the sync that corrects it (after a restart: a
	// status of 0 ready written, the ReplicaSet ready meanwhile, the cache
	// still showing the ready status of before the restart).
	c.deps.AddHandler(c.ctrl.Enqueue())
	c.rss.AddHandler(podutil.DependentHandler(c.ctrl.Queue, deployKind.Kind, c.deps, func(o resource.Object) *meridianv1.LabelSelector {
		return o.(*meridianv1.Deployment).GetSpec().GetSelector()
	}, nil))
	c.pods.AddHandler(c.podHandler())
	return c
}

// Run syncs Deployments until ctx ends, once the informers have loaded.
func (c *Controller) Run(ctx context.Context) {
	for _, i := range c.infos {
		if !i.WaitForSync(ctx) {
			return
		}
	}
	c.ctrl.Run(ctx)
}

// podHandler queues a pod's Deployment (through its ReplicaSet) when the
// pod comes, goes, or changes readiness: rollouts count pods.
func (c *Controller) podHandler() controller.Handler {
	queue := func(o resource.Object) {
		ref := controller.ControllerOf(o)
		if ref == nil || ref.GetKind() != rsKind.Kind {
			return
		}
		ns := o.GetMetadata().GetNamespace()
		rs, ok := c.rss.Get(ns, ref.GetName())
		if !ok {
			return
		}
		if dref := controller.ControllerOf(rs); dref != nil && dref.GetKind() == deployKind.Kind {
			c.ctrl.Queue.Add(ns + "/" + dref.GetName())
		}
	}
	return controller.Handler{
		OnAdd: queue,
		OnUpdate: func(old, o resource.Object) {
			op, np := old.(*meridianv1.Pod), o.(*meridianv1.Pod)
			if podutil.IsPodReady(op) != podutil.IsPodReady(np) || podutil.IsPodActive(op) != podutil.IsPodActive(np) ||
				controller.ControllerOf(op).GetUid() != controller.ControllerOf(np).GetUid() {
				queue(old)
				queue(o)
			}
		},
		OnDelete: queue,
	}
}

func (c *Controller) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.rec != nil {
		c.rec.Eventf(ctx, obj, typ, reason, format, args...)
	}
}

// state is what one sync knows of a Deployment: its owned ReplicaSets and
// their active pods, from the caches. Scaling replaces a ReplicaSet in it
// with the written one.
type state struct {
	d       *meridianv1.Deployment
	desired int32
	rss     []*meridianv1.ReplicaSet // owned, oldest first
	newRS   *meridianv1.ReplicaSet   // runs the current template; nil if none yet
	created bool                     // newRS was created by this sync
	now     time.Time
	surge   int32 // resolved maxSurge (0 for Recreate)
	unavail int32 // resolved maxUnavailable (0 for Recreate)

	// pods holds the pods of the owned ReplicaSets, read once per sync
	// through the pod cache's controller index: a Deployment is queued on
	// every pod event of its ReplicaSets, and walking every pod of the
	// namespace each time made the controller's cost grow with the square
	// of the pods.
	pods map[string]rsPods // by ReplicaSet uid
}

// rsPods is what a sync knows of one ReplicaSet's pods.
type rsPods struct {
	active  []*meridianv1.Pod // active pods
	running int               // pods not ended, terminating ones too
}

// activePods returns rs's active pods.
func (s *state) activePods(rs *meridianv1.ReplicaSet) []*meridianv1.Pod {
	return s.pods[rs.GetMetadata().GetUid()].active
}

// runningPods counts rs's pods that have not ended, terminating ones too.
func (s *state) runningPods(rs *meridianv1.ReplicaSet) int {
	return s.pods[rs.GetMetadata().GetUid()].running
}

// loadPods sorts the pods of s's ReplicaSets by ReplicaSet, from podCache.
// A ReplicaSet this sync creates has none yet.
func (s *state) loadPods(podCache *controller.Informer) error {
	ns := s.d.GetMetadata().GetNamespace()
	values := make([]string, len(s.rss))
	for i, rs := range s.rss {
		values[i] = controller.ControllerValue(ns, rs.GetMetadata().GetUid())
	}
	objs, err := podCache.ByIndex(controller.IndexController, values...)
	if err != nil {
		return err
	}
	s.pods = make(map[string]rsPods, len(s.rss))
	for _, o := range objs {
		p := o.(*meridianv1.Pod)
		ref := controller.ControllerOf(p)
		if ref == nil || ref.GetKind() != rsKind.Kind || podutil.IsPodTerminal(p) {
			continue
		}
		got := s.pods[ref.GetUid()]
		got.running++
		if podutil.IsPodActive(p) {
			got.active = append(got.active, p)
		}
		s.pods[ref.GetUid()] = got
	}
	return nil
}

// old returns the ReplicaSets other than newRS, oldest first.
func (s *state) old() []*meridianv1.ReplicaSet {
	out := make([]*meridianv1.ReplicaSet, 0, len(s.rss))
	for _, rs := range s.rss {
		if s.newRS == nil || rs.GetMetadata().GetUid() != s.newRS.GetMetadata().GetUid() {
			out = append(out, rs)
		}
	}
	return out
}

// put records rs (just written) in place of its older version.
func (s *state) put(rs *meridianv1.ReplicaSet) {
	uid := rs.GetMetadata().GetUid()
	if i := slices.IndexFunc(s.rss, func(x *meridianv1.ReplicaSet) bool { return x.GetMetadata().GetUid() == uid }); i >= 0 {
		s.rss[i] = rs
	} else {
		s.rss = append(s.rss, rs)
	}
	if s.newRS != nil && s.newRS.GetMetadata().GetUid() == uid {
		s.newRS = rs
	}
}

// upper bounds the pods rs has or may have: its spec, what its status last
// counted, and the active pods the cache holds (a scaled-down ReplicaSet
// keeps its surplus until its controller deletes it).
func (s *state) upper(rs *meridianv1.ReplicaSet) int32 {
	return max(replicas(rs), rs.GetStatus().GetReplicas(), int32(len(s.activePods(rs))))
}

// lower bounds the available pods rs keeps once its controller has brought
// it to spec: it deletes its least available pods first, so it keeps
// min(spec, available) available ones.
func (s *state) lower(rs *meridianv1.ReplicaSet) int32 {
	n := int32(0)
	for _, p := range s.activePods(rs) {
		if podutil.IsPodAvailable(p, s.d.GetSpec().GetMinReadySeconds(), s.now) {
			n++
		}
	}
	return min(replicas(rs), n)
}

// replicas is a ReplicaSet's spec.replicas (default 1).
func replicas(rs *meridianv1.ReplicaSet) int32 {
	if r := rs.GetSpec().Replicas; r != nil {
		return *r
	}
	return 1
}

// desiredReplicas is a Deployment's spec.replicas (default 1).
func desiredReplicas(d *meridianv1.Deployment) int32 {
	if r := d.GetSpec().Replicas; r != nil {
		return *r
	}
	return 1
}

// revision is an object's revision annotation, 0 if it has none.
func revision(o resource.Object) int64 {
	n, err := strconv.ParseInt(o.GetMetadata().GetAnnotations()[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func isRecreate(d *meridianv1.Deployment) bool {
	return d.GetSpec().GetStrategy().GetType() == Recreate
}

// sync brings one Deployment's ReplicaSets in line with its spec. It is
// level triggered and takes one step of a rollout at a time: every change
// it makes comes back as an event that queues the Deployment again.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	// The ReplicaSets whose controller reference names this Deployment,
	// whatever its uid: what garbage collection looks at.
	named, err := controller.ControlledByName(c.rss, ns, deployKind.Kind, name)
	if err != nil {
		return err
	}
	obj, ok := c.deps.Get(ns, name)
	if !ok {
		// Deleted: its ReplicaSets go with it, and their pods with them.
		_, err := podutil.DeleteOrphaned(ctx, c.st, rsKind, deployKind, ns, name, "", named)
		return err
	}
	d := obj.(*meridianv1.Deployment)
	_, gcErr := podutil.DeleteOrphaned(ctx, c.st, rsKind, deployKind, ns, name, d.GetMetadata().GetUid(), named)

	sel, err := podutil.WorkloadSelector(d.GetSpec().GetSelector(), d.GetSpec().GetTemplate())
	if err != nil {
		if d.GetStatus().GetObservedGeneration() != d.GetMetadata().GetGeneration() {
			c.event(ctx, d, controller.EventWarning, ReasonSelectorInvalid, "Cannot manage replica sets: %v", err)
		}
		want := &meridianv1.DeploymentStatus{}
		if d.GetStatus() != nil {
			want = proto.Clone(d.GetStatus()).(*meridianv1.DeploymentStatus)
		}
		want.ObservedGeneration = d.GetMetadata().GetGeneration()
		return errors.Join(gcErr, c.writeStatus(ctx, d, want, ""))
	}
	// Its own ReplicaSets and the orphans it may adopt.
	candidates, err := controller.ClaimCandidates(c.rss, ns, d.GetMetadata().GetUid())
	if err != nil {
		return errors.Join(gcErr, err)
	}
	owned, claimErr := podutil.Claim(ctx, c.st, rsKind, d, sel, candidates, nil)
	s, err := c.newState(d, owned)
	if err != nil {
		return errors.Join(gcErr, claimErr, err)
	}
	switch {
	case d.GetSpec().GetPaused():
		err = c.syncPaused(ctx, s)
	case isRecreate(d):
		err = c.rolloutRecreate(ctx, s)
	default:
		err = c.rolloutRolling(ctx, s)
	}
	return errors.Join(gcErr, claimErr, err)
}

// newState gathers a sync's view of d.
func (c *Controller) newState(d *meridianv1.Deployment, owned []resource.Object) (*state, error) {
	s := &state{d: d, desired: desiredReplicas(d), now: c.now()}
	for _, o := range owned {
		s.rss = append(s.rss, o.(*meridianv1.ReplicaSet))
	}
	slices.SortStableFunc(s.rss, func(a, b *meridianv1.ReplicaSet) int {
		if c := a.GetMetadata().GetCreationTimestamp().AsTime().Compare(b.GetMetadata().GetCreationTimestamp().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetMetadata().GetName(), b.GetMetadata().GetName())
	})
	for _, rs := range s.rss {
		if s.newRS == nil && podutil.TemplatesEqual(rs.GetSpec().GetTemplate(), d.GetSpec().GetTemplate(), podutil.PodTemplateHashLabel) {
			s.newRS = rs
		}
	}
	// Recreate leaves both bounds 0: it never surges, and its Available
	// condition wants every replica.
	if !isRecreate(d) {
		ru := d.GetSpec().GetStrategy().GetRollingUpdate()
		surge, unavail, err := podutil.Fenceposts(ru.GetMaxSurge(), ru.GetMaxUnavailable(), int(s.desired))
		if err != nil {
			return nil, fmt.Errorf("failed to resolve the rolling update bounds of %s: %w", d.GetMetadata().GetName(), err)
		}
		s.surge, s.unavail = int32(surge), int32(unavail)
	}
	if err := s.loadPods(c.pods); err != nil {
		return nil, err
	}
	return s, nil
}
