// Package replicaset is the member's ReplicaSet controller: it keeps
// spec.replicas active pods matching each ReplicaSet's selector, as
// Kubernetes' does. It adopts orphan pods that match, releases owned pods
// that stop matching, replaces pods that end (Succeeded or Failed: a
// ReplicaSet's pods restart Always), creates and deletes in slow-start
// batches, and reports replicas, readyReplicas, availableReplicas and
// observedGeneration. A Deployment drives a ReplicaSet only through its
// spec.replicas.
package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Name is the controller's name in logs and events.
const Name = "replicaset-controller"

const (
	// workers sync different ReplicaSets in parallel: a Deployment's
	// rollout touches two at once, and a sync spends most of its time
	// waiting on store writes, which the store commits together (as for
	// the Deployment controller's workers, many are cheap).
	workers = 64
	// burstReplicas bounds the pods one sync creates or deletes, as in
	// Kubernetes; the next sync does the rest.
	burstReplicas = 500
)

// Event reasons.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonFailedCreate     = "FailedCreate"
	ReasonFailedDelete     = "FailedDelete"
	ReasonSelectorInvalid  = "SelectorInvalid"
)

// ConditionReplicaFailure is the condition a ReplicaSet carries while it
// cannot create or delete pods.
const ConditionReplicaFailure = "ReplicaFailure"

var (
	rsKind  = resource.MustLookup("ReplicaSet")
	podKind = resource.MustLookup("Pod")
)

// The member runs every controller by its Run method.
var _ interface{ Run(context.Context) } = (*Controller)(nil)

// Controller is the ReplicaSet controller.
type Controller struct {
	st   storage.Interface
	rss  *controller.Informer
	pods *controller.Informer
	rec  *controller.Recorder
	log  *slog.Logger
	exp  *podutil.Expectations
	now  func() time.Time

	ctrl *controller.Controller
}

// New returns a ReplicaSet controller reading ReplicaSets and Pods through
// inf. Call it before inf.Run; rec may be nil (no events).
func New(st storage.Interface, inf *controller.InformerSet, rec *controller.Recorder, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		st:   st,
		rss:  inf.For(rsKind),
		pods: inf.For(podKind),
		rec:  rec,
		log:  log,
		exp:  podutil.NewExpectations(0),
		now:  time.Now,
	}
	controller.IndexControllers(c.pods)
	c.ctrl = controller.New(Name, workers, c.sync, log)
	c.rss.AddHandler(c.ctrl.Enqueue())
	c.pods.AddHandler(podutil.DependentHandler(c.ctrl.Queue, rsKind.Kind, c.rss, selectorOf, c.observe))
	return c
}

// Run syncs ReplicaSets until ctx ends, once the informers have loaded:
// a sync on a half-loaded pod cache would create pods that exist.
func (c *Controller) Run(ctx context.Context) {
	if !c.rss.WaitForSync(ctx) || !c.pods.WaitForSync(ctx) {
		return
	}
	c.ctrl.Run(ctx)
}

func selectorOf(o resource.Object) *meridianv1.LabelSelector {
	return o.(*meridianv1.ReplicaSet).GetSpec().GetSelector()
}

// observe settles expectations from the pod informer's events.
func (c *Controller) observe(o resource.Object, deleted bool) {
	c.exp.Observe(rsKind.Kind, o, deleted)
}

func (c *Controller) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.rec != nil {
		c.rec.Eventf(ctx, obj, typ, reason, format, args...)
	}
}

// sync brings one ReplicaSet's pods in line with its spec. It is level
// triggered: it looks at the whole state of the key every time.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	// The pods whose controller reference names this ReplicaSet, whatever
	// its uid: what garbage collection looks at.
	named, err := controller.ControlledByName(c.pods, ns, rsKind.Kind, name)
	if err != nil {
		return err
	}
	obj, ok := c.rss.Get(ns, name)
	if !ok {
		// Deleted: its pods go with it.
		c.exp.Forget(key)
		_, err := podutil.DeleteOrphaned(ctx, c.st, podKind, rsKind, ns, name, "", named)
		return err
	}
	rs := obj.(*meridianv1.ReplicaSet)
	// Pods left by an earlier ReplicaSet of the same name.
	_, gcErr := podutil.DeleteOrphaned(ctx, c.st, podKind, rsKind, ns, name, rs.GetMetadata().GetUid(), named)

	sel, err := podutil.WorkloadSelector(rs.GetSpec().GetSelector(), rs.GetSpec().GetTemplate())
	if err != nil {
		// Not retried: only a new spec can fix it, and that is an event.
		if rs.GetStatus().GetObservedGeneration() != rs.GetMetadata().GetGeneration() {
			c.event(ctx, rs, controller.EventWarning, ReasonSelectorInvalid, "Cannot manage pods: %v", err)
		}
		return errors.Join(gcErr, c.updateStatus(ctx, rs, nil, nil))
	}
	// Its own pods and the orphans it may adopt; pods of other
	// controllers are none of its business.
	candidates, err := controller.ClaimCandidates(c.pods, ns, rs.GetMetadata().GetUid())
	if err != nil {
		return errors.Join(gcErr, err)
	}
	owned, claimErr := podutil.Claim(ctx, c.st, podKind, rs, sel, candidates, nil)
	var active, ended []*meridianv1.Pod
	for _, o := range owned {
		switch p := o.(*meridianv1.Pod); {
		case controller.IsTerminating(p):
			// Going: no longer a replica, nothing more to do with it.
		case podutil.IsPodTerminal(p):
			ended = append(ended, p)
		default:
			active = append(active, p)
		}
	}

	var manageErr error
	if ok, wait := c.exp.Satisfied(key); ok {
		var created []*meridianv1.Pod
		created, manageErr = c.manage(ctx, key, rs, active, ended)
		// The pods it created are replicas already (they are stored):
		// counted now, the status takes one write less per scale-up, and
		// so does the owner's (a Deployment's status follows it).
		active = append(active, created...)
	} else {
		// Its last writes are not in the cache yet; their events will
		// queue it again. Look anyway when the expectations lapse. The
		// status waits too: counted from this cache, it would take back
		// the pods the last sync created and counted.
		c.ctrl.Queue.AddAfter(key, wait)
		return errors.Join(gcErr, claimErr)
	}
	statusErr := c.updateStatus(ctx, rs, active, manageErr)
	return errors.Join(gcErr, claimErr, manageErr, statusErr)
}

// manage creates or deletes pods so that active has spec.replicas pods,
// and deletes pods that have ended so that they are replaced. It returns
// the pods it created.
func (c *Controller) manage(ctx context.Context, key string, rs *meridianv1.ReplicaSet, active, ended []*meridianv1.Pod) ([]*meridianv1.Pod, error) {
	desired := 1
	if r := rs.GetSpec().Replicas; r != nil {
		desired = int(*r)
	}
	var (
		errs    []error
		created []*meridianv1.Pod
	)
	if len(ended) > 0 {
		errs = append(errs, c.deletePods(ctx, key, rs, ended, "ended"))
	}
	switch diff := len(active) - desired; {
	case diff < 0:
		var err error
		created, err = c.createPods(ctx, key, rs, min(-diff, burstReplicas))
		errs = append(errs, err)
	case diff > 0:
		victims := append([]*meridianv1.Pod(nil), active...)
		podutil.SortForDeletion(victims)
		errs = append(errs, c.deletePods(ctx, key, rs, victims[:min(diff, burstReplicas)], "surplus"))
	}
	return created, errors.Join(errs...)
}

// createPods creates n pods from the template, expecting each before it
// is written, and returns those it created.
func (c *Controller) createPods(ctx context.Context, key string, rs *meridianv1.ReplicaSet, n int) ([]*meridianv1.Pod, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = podutil.GenerateName(rs.GetMetadata().GetName())
	}
	c.exp.ExpectCreations(key, names...)
	made := make([]*meridianv1.Pod, n) // by index: the batches run in parallel
	done, failed, err := podutil.SlowStartBatch(n, podutil.SlowStartInitialBatch, func(i int) error {
		pod := podutil.NewPod(rs.GetSpec().GetTemplate(), rs, names[i])
		stored, err := c.st.Create(ctx, pod)
		if err != nil {
			c.exp.CreationObserved(key, names[i])
			return fmt.Errorf("failed to create pod %s: %w", names[i], err)
		}
		made[i], _ = stored.(*meridianv1.Pod)
		c.event(ctx, rs, controller.EventNormal, ReasonSuccessfulCreate, "Created pod: %s", names[i])
		return nil
	})
	// The batches after a failure were skipped: expect nothing of them.
	for _, name := range names[done+failed:] {
		c.exp.CreationObserved(key, name)
	}
	if err != nil {
		c.event(ctx, rs, controller.EventWarning, ReasonFailedCreate, "Error creating: %v", err)
	}
	created := make([]*meridianv1.Pod, 0, n)
	for _, p := range made {
		if p != nil {
			created = append(created, p)
		}
	}
	return created, err
}

// deletePods deletes pods (if each is still the pod the cache showed;
// gracefully if it runs on a node), in parallel, expecting each deletion
// before it is made.
func (c *Controller) deletePods(ctx context.Context, key string, rs *meridianv1.ReplicaSet, pods []*meridianv1.Pod, why string) error {
	err := podutil.DeletePods(ctx, c.st, c.exp, key, pods, func(name string) {
		c.event(ctx, rs, controller.EventNormal, ReasonSuccessfulDelete, "Deleted %s pod: %s", why, name)
	})
	if err != nil {
		c.event(ctx, rs, controller.EventWarning, ReasonFailedDelete, "Error deleting: %v", err)
	}
	return err
}

// updateStatus writes the status computed from active (the pods as the
// sync found them and those it created; the next sync counts what else it
// changed) if it differs.
func (c *Controller) updateStatus(ctx context.Context, rs *meridianv1.ReplicaSet, active []*meridianv1.Pod, manageErr error) error {
	now := c.now()
	counts := podutil.Count(active, rs.GetSpec().GetMinReadySeconds(), now)
	next := &meridianv1.ReplicaSetStatus{
		Replicas:           counts.Replicas,
		ReadyReplicas:      counts.Ready,
		AvailableReplicas:  counts.Available,
		ObservedGeneration: rs.GetMetadata().GetGeneration(),
		Conditions:         podutil.RemoveCondition(rs.GetStatus().GetConditions(), ConditionReplicaFailure),
	}
	if manageErr != nil {
		next.Conditions = podutil.SetCondition(rs.GetStatus().GetConditions(), &meridianv1.Condition{
			Type: ConditionReplicaFailure, Status: podutil.ConditionTrue, Reason: "FailedManage", Message: manageErr.Error(),
		}, now)
	}
	if counts.NextAvailable > 0 {
		// A ready pod becomes available later: count it then.
		c.ctrl.Queue.AddAfter(controller.Key(rs), counts.NextAvailable)
	}
	if statusEqual(rs.GetStatus(), next) {
		return nil
	}
	uid := rs.GetMetadata().GetUid()
	_, err := c.st.Update(ctx, rsKind, rs.GetMetadata().GetNamespace(), rs.GetMetadata().GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != uid {
			return storage.ErrNotFound
		}
		o.(*meridianv1.ReplicaSet).Status = next
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to update the status of replica set %s: %w", rs.GetMetadata().GetName(), err)
	}
	return nil
}

// statusEqual compares statuses ignoring when conditions last changed.
func statusEqual(a, b *meridianv1.ReplicaSetStatus) bool {
	a, b = proto.Clone(a).(*meridianv1.ReplicaSetStatus), proto.Clone(b).(*meridianv1.ReplicaSetStatus)
	for _, s := range []*meridianv1.ReplicaSetStatus{a, b} {
		if s == nil {
			continue
		}
		for _, c := range s.Conditions {
			c.LastTransitionTime = nil
		}
	}
	if a == nil {
		a = &meridianv1.ReplicaSetStatus{}
	}
	return proto.Equal(a, b)
}
