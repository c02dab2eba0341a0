// Package statefulset is the member's StatefulSet controller, as
// Kubernetes' own: pods with stable identities <set>-0 … <set>-(N-1)
// (hostname the pod's name, subdomain the set's serviceName, label
// statefulset.kubernetes.io/pod-name), started in order and stopped in
// reverse order one at a time (OrderedReady) or all at once (Parallel),
// and updated from the highest ordinal down (RollingUpdate, honouring a
// partition) or only when a pod is deleted (OnDelete).
//
// Identity is the point: there are never two pods for one ordinal. A pod
// is replaced only once its predecessor is gone from the store, and the
// store refuses a second object of the same name (ErrAlreadyExists), so a
// stale cache cannot create a twin; deletions name the uid the cache saw,
// so a stale cache cannot delete a successor either.
package statefulset

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

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Name is the controller's name in logs and events.
const Name = "statefulset-controller"

// Labels of a StatefulSet's pods.
const (
	// PodNameLabel holds the pod's own name, so that a Service can select
	// one member of the set.
	PodNameLabel = "statefulset.kubernetes.io/pod-name"
	// PodIndexLabel holds the pod's ordinal.
	PodIndexLabel = "apps.kubernetes.io/pod-index"
)

// Pod management policies and update strategies.
const (
	OrderedReady  = "OrderedReady"
	Parallel      = "Parallel"
	RollingUpdate = "RollingUpdate"
	OnDelete      = "OnDelete"
)

// Event reasons.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonFailedCreate     = "FailedCreate"
	ReasonSelectorInvalid  = "SelectorInvalid"
)

// workers: each set moves one pod at a time anyway; two workers let two
// sets move at once.
const workers = 2

var (
	stsKind = resource.MustLookup("StatefulSet")
	podKind = resource.MustLookup("Pod")
)

// The member runs every controller by its Run method.
var _ interface{ Run(context.Context) } = (*Controller)(nil)

// Controller is the StatefulSet controller.
type Controller struct {
	st   storage.Interface
	sets *controller.Informer
	pods *controller.Informer
	rec  *controller.Recorder
	log  *slog.Logger
	now  func() time.Time
	ctrl *controller.Controller
}

// New returns a StatefulSet controller reading StatefulSets and Pods
// through inf. Call it before inf.Run; rec may be nil (no events).
func New(st storage.Interface, inf *controller.InformerSet, rec *controller.Recorder, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{st: st, sets: inf.For(stsKind), pods: inf.For(podKind), rec: rec, log: log, now: time.Now}
	controller.IndexControllers(c.pods)
	c.ctrl = controller.New(Name, workers, c.sync, log)
	c.sets.AddHandler(c.ctrl.Enqueue())
	c.pods.AddHandler(podutil.DependentHandler(c.ctrl.Queue, stsKind.Kind, c.sets, func(o resource.Object) *meridianv1.LabelSelector {
		return o.(*meridianv1.StatefulSet).GetSpec().GetSelector()
	}, nil))
	return c
}

// Run syncs StatefulSets until ctx ends, once the informers have loaded.
func (c *Controller) Run(ctx context.Context) {
	if !c.sets.WaitForSync(ctx) || !c.pods.WaitForSync(ctx) {
		return
	}
	c.ctrl.Run(ctx)
}

func (c *Controller) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.rec != nil {
		c.rec.Eventf(ctx, obj, typ, reason, format, args...)
	}
}

// PodName is the name of the pod with ordinal ord of the set.
func PodName(set string, ord int) string { return set + "-" + strconv.Itoa(ord) }

// Ordinal parses a pod name of the set; false if the name is not one.
func Ordinal(set, pod string) (int, bool) {
	s, ok := strings.CutPrefix(pod, set+"-")
	if !ok || s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// revisionOf is a pod's controller-revision-hash label.
func revisionOf(p *meridianv1.Pod) string {
	return p.GetMetadata().GetLabels()[podutil.ControllerRevisionHashLabel]
}

// view is what one sync knows of a set.
type view struct {
	set       *meridianv1.StatefulSet
	slots     []*meridianv1.Pod // by ordinal, 0..replicas-1; nil where none
	condemned []*meridianv1.Pod // ordinals >= replicas, highest first
	updateRev string            // hash of the current template
	// currentRev is the revision the set is rolling from: that of its
	// lowest ordinal (updated last), or updateRev when there is no pod.
	currentRev string
	now        time.Time
}

// healthy reports whether p runs, is ready, and has been for minReadySeconds.
func (v *view) healthy(p *meridianv1.Pod) bool {
	return podutil.IsRunningAndReady(p) && podutil.IsPodAvailable(p, v.set.GetSpec().GetMinReadySeconds(), v.now)
}

// sync brings one set's pods one step closer to its spec. It is level
// triggered; every step it takes comes back as a pod event.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	// The pods whose controller reference names this set, whatever its
	// uid: what garbage collection looks at.
	named, err := controller.ControlledByName(c.pods, ns, stsKind.Kind, name)
	if err != nil {
		return err
	}
	obj, ok := c.sets.Get(ns, name)
	if !ok {
		_, err := podutil.DeleteOrphaned(ctx, c.st, podKind, stsKind, ns, name, "", named)
		return err
	}
	set := obj.(*meridianv1.StatefulSet)
	_, gcErr := podutil.DeleteOrphaned(ctx, c.st, podKind, stsKind, ns, name, set.GetMetadata().GetUid(), named)

	sel, err := podutil.WorkloadSelector(set.GetSpec().GetSelector(), set.GetSpec().GetTemplate())
	if err != nil {
		if set.GetStatus().GetObservedGeneration() != set.GetMetadata().GetGeneration() {
			c.event(ctx, set, controller.EventWarning, ReasonSelectorInvalid, "Cannot manage pods: %v", err)
		}
		return errors.Join(gcErr, c.updateStatus(ctx, &view{set: set, now: c.now()}))
	}
	// Only pods named as members of the set are adopted.
	// Its own pods and the orphans it may adopt; pods of other
	// controllers are none of its business.
	candidates, err := controller.ClaimCandidates(c.pods, ns, set.GetMetadata().GetUid())
	if err != nil {
		return errors.Join(gcErr, err)
	}
	owned, claimErr := podutil.Claim(ctx, c.st, podKind, set, sel, candidates, func(o resource.Object) bool {
		_, ok := Ordinal(name, o.GetMetadata().GetName())
		return ok
	})
	v, err := c.newView(set, owned)
	if err != nil {
		return errors.Join(gcErr, claimErr, err)
	}
	stepErr := c.step(ctx, v)
	return errors.Join(gcErr, claimErr, stepErr, c.updateStatus(ctx, v))
}

func (c *Controller) newView(set *meridianv1.StatefulSet, owned []resource.Object) (*view, error) {
	rev, err := podutil.TemplateHash(set.GetSpec().GetTemplate(), nil)
	if err != nil {
		return nil, err
	}
	n := 1
	if r := set.GetSpec().Replicas; r != nil {
		n = int(*r)
	}
	v := &view{set: set, slots: make([]*meridianv1.Pod, n), updateRev: rev, now: c.now()}
	for _, o := range owned {
		p := o.(*meridianv1.Pod)
		ord, ok := Ordinal(set.GetMetadata().GetName(), p.GetMetadata().GetName())
		switch {
		case !ok:
		case ord < n:
			v.slots[ord] = p
		default:
			v.condemned = append(v.condemned, p)
		}
	}
	slices.SortFunc(v.condemned, func(a, b *meridianv1.Pod) int {
		oa, _ := Ordinal(set.GetMetadata().GetName(), a.GetMetadata().GetName())
		ob, _ := Ordinal(set.GetMetadata().GetName(), b.GetMetadata().GetName())
		return ob - oa
	})
	v.currentRev = rev
	if i := slices.IndexFunc(v.slots, func(p *meridianv1.Pod) bool { return p != nil }); i >= 0 {
		v.currentRev = revisionOf(v.slots[i])
	} else if len(v.condemned) > 0 {
		v.currentRev = revisionOf(v.condemned[len(v.condemned)-1])
	}
	return v, nil
}

// step takes the next action of the set, in Kubernetes' order: first
// every ordinal below replicas exists and is healthy (in order, waiting at
// the first that is not, unless Parallel), then surplus ordinals go
// (highest first, one at a time unless Parallel), then the rolling update
// replaces pods of another revision from the highest ordinal down to the
// partition, one at a time, each once the one before is healthy again.
func (c *Controller) step(ctx context.Context, v *view) error {
	ordered := v.set.GetSpec().GetPodManagementPolicy() != Parallel
	for i, p := range v.slots {
		switch {
		case p != nil && controller.IsTerminating(p):
			// Its name is taken until the node agent has stopped it.
			if ordered {
				return nil
			}
		case p == nil:
			created, err := c.create(ctx, v, i)
			if err != nil || (ordered && created) {
				return err
			}
			if ordered {
				return nil // the old pod of that name is still going
			}
		case podutil.IsPodTerminal(p):
			// It ended: delete it, and make it again once it is gone.
			if err := c.delete(ctx, v, p, "ended"); err != nil || ordered {
				return err
			}
		case ordered && !podutil.IsRunningAndReady(p):
			return nil
		}
	}

	for _, p := range v.condemned {
		if controller.IsTerminating(p) {
			if ordered {
				return nil // one at a time: wait until it is gone
			}
			continue
		}
		if ordered && !c.mayCondemn(v, p) {
			return nil
		}
		if err := c.delete(ctx, v, p, "surplus"); err != nil || ordered {
			return err
		}
	}

	us := v.set.GetSpec().GetUpdateStrategy()
	if us.GetType() == OnDelete {
		return nil
	}
	partition := int(us.GetRollingUpdate().GetPartition())
	for i := len(v.slots) - 1; i >= partition && i >= 0; i-- {
		p := v.slots[i]
		if p == nil || controller.IsTerminating(p) {
			return nil
		}
		if revisionOf(p) != v.updateRev {
			return c.delete(ctx, v, p, "outdated")
		}
		if !v.healthy(p) {
			return nil // wait for it before the next one
		}
	}
	return nil
}

// mayCondemn reports whether an ordered scale-down may delete p now: only
// when every other pod is healthy, or p is the first unhealthy one.
func (c *Controller) mayCondemn(v *view, p *meridianv1.Pod) bool {
	for _, q := range v.slots {
		if q != nil && !podutil.IsRunningAndReady(q) {
			return false
		}
	}
	if podutil.IsRunningAndReady(p) {
		return true
	}
	// The lowest unhealthy condemned ordinal goes first, as in Kubernetes.
	for _, q := range slices.Backward(v.condemned) {
		if !podutil.IsRunningAndReady(q) {
			return q == p
		}
	}
	return true
}

// create makes the pod of ordinal ord. It reports false, with no error, if
// the name is still taken: the previous pod of that ordinal has not left
// the store yet, and its deletion event will queue the set again.
func (c *Controller) create(ctx context.Context, v *view, ord int) (bool, error) {
	pod := c.newPod(v, ord)
	if _, err := c.st.Create(ctx, pod); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return false, nil
		}
		c.event(ctx, v.set, controller.EventWarning, ReasonFailedCreate, "create Pod %s in StatefulSet %s failed: %v", pod.GetMetadata().GetName(), v.set.GetMetadata().GetName(), err)
		return false, fmt.Errorf("failed to create pod %s: %w", pod.GetMetadata().GetName(), err)
	}
	c.event(ctx, v.set, controller.EventNormal, ReasonSuccessfulCreate, "create Pod %s in StatefulSet %s successful", pod.GetMetadata().GetName(), v.set.GetMetadata().GetName())
	return true, nil
}

// delete deletes p if it is still the pod the cache showed: gracefully if
// it runs on a node, so that its name stays taken until its processes
// have stopped.
func (c *Controller) delete(ctx context.Context, v *view, p *meridianv1.Pod, why string) error {
	md := p.GetMetadata()
	deleted, err := podutil.DeletePod(ctx, c.st, p)
	if err != nil {
		return err
	}
	if deleted {
		c.event(ctx, v.set, controller.EventNormal, ReasonSuccessfulDelete, "delete %s Pod %s in StatefulSet %s successful", why, md.GetName(), v.set.GetMetadata().GetName())
	}
	return nil
}

// newPod builds the pod of ordinal ord, at the revision it should run:
// the update revision, except below a rolling update's partition, where
// it is the current revision, whose template is taken from a pod that
// still runs it (there is no other record of an old template; with none
// left, the update revision is used).
func (c *Controller) newPod(v *view, ord int) *meridianv1.Pod {
	set := v.set
	tmpl, rev := set.GetSpec().GetTemplate(), v.updateRev
	us := set.GetSpec().GetUpdateStrategy()
	if us.GetType() != OnDelete && ord < int(us.GetRollingUpdate().GetPartition()) && v.currentRev != v.updateRev {
		if t := templateFromPods(v, v.currentRev); t != nil {
			tmpl, rev = t, v.currentRev
		}
	}
	name := PodName(set.GetMetadata().GetName(), ord)
	pod := podutil.NewPod(tmpl, set, name)
	pod.Metadata.Labels[PodNameLabel] = name
	pod.Metadata.Labels[PodIndexLabel] = strconv.Itoa(ord)
	pod.Metadata.Labels[podutil.ControllerRevisionHashLabel] = rev
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.GetSpec().GetServiceName()
	pod.Spec.NodeName = ""
	return pod
}

// templateFromPods rebuilds the template of revision rev from a pod of the
// set that runs it, or returns nil.
func templateFromPods(v *view, rev string) *meridianv1.PodTemplateSpec {
	for _, p := range append(slices.Clone(v.slots), v.condemned...) {
		if p == nil || revisionOf(p) != rev {
			continue
		}
		labels := maps.Clone(p.GetMetadata().GetLabels())
		delete(labels, PodNameLabel)
		delete(labels, PodIndexLabel)
		delete(labels, podutil.ControllerRevisionHashLabel)
		spec := proto.Clone(p.GetSpec()).(*meridianv1.PodSpec)
		spec.NodeName = ""
		return &meridianv1.PodTemplateSpec{
			Metadata: &meridianv1.ObjectMeta{Labels: labels, Annotations: maps.Clone(p.GetMetadata().GetAnnotations())},
			Spec:     spec,
		}
	}
	return nil
}

// updateStatus writes the set's status as the sync found its pods.
func (c *Controller) updateStatus(ctx context.Context, v *view) error {
	set := v.set
	next := &meridianv1.StatefulSetStatus{ObservedGeneration: set.GetMetadata().GetGeneration(), Conditions: podutil.RemoveCondition(set.GetStatus().GetConditions(), "")}
	var active []*meridianv1.Pod
	for _, p := range append(slices.Clone(v.slots), v.condemned...) {
		if p == nil || !podutil.IsPodActive(p) {
			continue
		}
		active = append(active, p)
		if revisionOf(p) == v.currentRev {
			next.CurrentReplicas++
		}
		if revisionOf(p) == v.updateRev {
			next.UpdatedReplicas++
		}
	}
	counts := podutil.Count(active, set.GetSpec().GetMinReadySeconds(), v.now)
	next.Replicas, next.ReadyReplicas, next.AvailableReplicas = counts.Replicas, counts.Ready, counts.Available
	if counts.NextAvailable > 0 {
		c.ctrl.Queue.AddAfter(controller.Key(set), counts.NextAvailable)
	}
	if proto.Equal(set.GetStatus(), next) {
		return nil
	}
	uid := set.GetMetadata().GetUid()
	_, err := c.st.Update(ctx, stsKind, set.GetMetadata().GetNamespace(), set.GetMetadata().GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != uid {
			return storage.ErrNotFound
		}
		o.(*meridianv1.StatefulSet).Status = next
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to update the status of stateful set %s: %w", set.GetMetadata().GetName(), err)
	}
	return nil
}
