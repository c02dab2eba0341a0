// Package daemonset is the member's DaemonSet controller, as Kubernetes'
// own: one pod of each DaemonSet on every eligible node (see Place), made
// with spec.nodeName already set because daemon pods bypass the scheduler.
// Pods leave nodes that stop being eligible (a nodeSelector that no longer
// matches, an untolerated NoExecute taint) or that disappear; a pod that
// ends is replaced. A RollingUpdate replaces pods of an older template at
// most maxUnavailable (default 1) nodes at a time; OnDelete only when a
// pod is deleted.
package daemonset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
const Name = "daemonset-controller"

// Update strategies.
const (
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

// workers: DaemonSets are few; a node change syncs all of them at once.
const workers = 2

var (
	dsKind   = resource.MustLookup("DaemonSet")
	podKind  = resource.MustLookup("Pod")
	nodeKind = resource.MustLookup("Node")
)

// The member runs every controller by its Run method.
var _ interface{ Run(context.Context) } = (*Controller)(nil)

// Controller is the DaemonSet controller.
type Controller struct {
	st    storage.Interface
	dss   *controller.Informer
	pods  *controller.Informer
	nodes *controller.Informer
	rec   *controller.Recorder
	log   *slog.Logger
	exp   *podutil.Expectations
	now   func() time.Time
	ctrl  *controller.Controller
}

// New returns a DaemonSet controller reading DaemonSets, Pods and Nodes
// through inf. Call it before inf.Run; rec may be nil (no events).
func New(st storage.Interface, inf *controller.InformerSet, rec *controller.Recorder, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		st: st, dss: inf.For(dsKind), pods: inf.For(podKind), nodes: inf.For(nodeKind),
		rec: rec, log: log, exp: podutil.NewExpectations(0), now: time.Now,
	}
	controller.IndexControllers(c.pods)
	c.ctrl = controller.New(Name, workers, c.sync, log)
	c.dss.AddHandler(c.ctrl.Enqueue())
	c.pods.AddHandler(podutil.DependentHandler(c.ctrl.Queue, dsKind.Kind, c.dss, func(o resource.Object) *meridianv1.LabelSelector {
		return o.(*meridianv1.DaemonSet).GetSpec().GetSelector()
	}, c.observe))
	all := func(resource.Object) {
		for _, ds := range c.dss.List("", nil) {
			c.ctrl.Queue.Add(controller.Key(ds))
		}
	}
	c.nodes.AddHandler(controller.Handler{
		OnAdd: all,
		OnUpdate: func(old, o resource.Object) {
			on, nn := old.(*meridianv1.Node), o.(*meridianv1.Node)
			if !proto.Equal(on.GetSpec(), nn.GetSpec()) || !maps.Equal(on.GetMetadata().GetLabels(), nn.GetMetadata().GetLabels()) {
				all(o)
			}
		},
		OnDelete: all,
	})
	return c
}

// Run syncs DaemonSets until ctx ends, once the informers have loaded.
func (c *Controller) Run(ctx context.Context) {
	for _, i := range []*controller.Informer{c.dss, c.pods, c.nodes} {
		if !i.WaitForSync(ctx) {
			return
		}
	}
	c.ctrl.Run(ctx)
}

func (c *Controller) observe(o resource.Object, deleted bool) {
	c.exp.Observe(dsKind.Kind, o, deleted)
}

func (c *Controller) event(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	if c.rec != nil {
		c.rec.Eventf(ctx, obj, typ, reason, format, args...)
	}
}

// nodeState is one node as a sync sees it.
type nodeState struct {
	node  *meridianv1.Node
	place Placement
	pods  []*meridianv1.Pod // the set's active pods there, oldest first
}

// view is what one sync knows of a DaemonSet.
type view struct {
	ds    *meridianv1.DaemonSet
	hash  string
	nodes []*nodeState      // every node, by name
	stray []*meridianv1.Pod // active pods on no known node
	ended []*meridianv1.Pod // pods that ended, to be replaced
	now   time.Time
}

// sync brings one DaemonSet's pods in line with its spec and the nodes.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	// The pods whose controller reference names this set, whatever its
	// uid: what garbage collection looks at.
	named, err := controller.ControlledByName(c.pods, ns, dsKind.Kind, name)
	if err != nil {
		return err
	}
	obj, ok := c.dss.Get(ns, name)
	if !ok {
		c.exp.Forget(key)
		_, err := podutil.DeleteOrphaned(ctx, c.st, podKind, dsKind, ns, name, "", named)
		return err
	}
	ds := obj.(*meridianv1.DaemonSet)
	_, gcErr := podutil.DeleteOrphaned(ctx, c.st, podKind, dsKind, ns, name, ds.GetMetadata().GetUid(), named)

	sel, err := podutil.WorkloadSelector(ds.GetSpec().GetSelector(), ds.GetSpec().GetTemplate())
	if err != nil {
		if ds.GetStatus().GetObservedGeneration() != ds.GetMetadata().GetGeneration() {
			c.event(ctx, ds, controller.EventWarning, ReasonSelectorInvalid, "Cannot manage pods: %v", err)
		}
		return errors.Join(gcErr, c.updateStatus(ctx, &view{ds: ds, now: c.now()}))
	}
	// Its own pods and the orphans it may adopt; pods of other
	// controllers are none of its business.
	candidates, err := controller.ClaimCandidates(c.pods, ns, ds.GetMetadata().GetUid())
	if err != nil {
		return errors.Join(gcErr, err)
	}
	owned, claimErr := podutil.Claim(ctx, c.st, podKind, ds, sel, candidates, nil)
	v, err := c.newView(ds, owned)
	if err != nil {
		return errors.Join(gcErr, claimErr, err)
	}
	var manageErr error
	if ok, wait := c.exp.Satisfied(key); ok {
		manageErr = c.manage(ctx, key, v)
	} else {
		c.ctrl.Queue.AddAfter(key, wait)
	}
	return errors.Join(gcErr, claimErr, manageErr, c.updateStatus(ctx, v))
}

func (c *Controller) newView(ds *meridianv1.DaemonSet, owned []resource.Object) (*view, error) {
	hash, err := podutil.TemplateHash(ds.GetSpec().GetTemplate(), nil)
	if err != nil {
		return nil, err
	}
	v := &view{ds: ds, hash: hash, now: c.now()}
	byName := map[string]*nodeState{}
	for _, o := range c.nodes.List("", nil) {
		n := o.(*meridianv1.Node)
		s := &nodeState{node: n, place: Place(ds.GetSpec().GetTemplate(), n)}
		byName[n.GetMetadata().GetName()] = s
		v.nodes = append(v.nodes, s)
	}
	slices.SortFunc(v.nodes, func(a, b *nodeState) int {
		return strings.Compare(a.node.GetMetadata().GetName(), b.node.GetMetadata().GetName())
	})
	pods := make([]*meridianv1.Pod, 0, len(owned))
	for _, o := range owned {
		pods = append(pods, o.(*meridianv1.Pod))
	}
	slices.SortStableFunc(pods, func(a, b *meridianv1.Pod) int {
		return cmp.Or(a.GetMetadata().GetCreationTimestamp().AsTime().Compare(b.GetMetadata().GetCreationTimestamp().AsTime()),
			strings.Compare(a.GetMetadata().GetName(), b.GetMetadata().GetName()))
	})
	for _, p := range pods {
		switch s := byName[p.GetSpec().GetNodeName()]; {
		case controller.IsTerminating(p):
			// Going: its node may get a new pod meanwhile, as in Kubernetes.
		case podutil.IsPodTerminal(p):
			v.ended = append(v.ended, p)
		case s == nil:
			v.stray = append(v.stray, p)
		default:
			s.pods = append(s.pods, p)
		}
	}
	return v, nil
}

// manage creates the missing daemon pods and deletes the ones that must
// go; when there was nothing of that to do, it takes a rolling update step.
func (c *Controller) manage(ctx context.Context, key string, v *view) error {
	var (
		create []string
		remove = slices.Clone(v.ended)
	)
	remove = append(remove, v.stray...)
	busy := map[string]bool{} // nodes whose ended pod is being replaced: not before it is gone
	for _, p := range v.ended {
		busy[p.GetSpec().GetNodeName()] = true
	}
	for _, s := range v.nodes {
		switch {
		case s.place.Run && len(s.pods) == 0 && !busy[s.node.GetMetadata().GetName()]:
			create = append(create, s.node.GetMetadata().GetName())
		case !s.place.Keep:
			remove = append(remove, s.pods...)
		case len(s.pods) > 1:
			remove = append(remove, s.pods[1:]...) // keep the oldest
		}
	}
	if len(create) == 0 && len(remove) == 0 {
		return c.rollingUpdate(ctx, key, v)
	}
	return errors.Join(c.createPods(ctx, key, v, create), c.deletePods(ctx, key, v, remove))
}

// rollingUpdate deletes pods of older templates (their nodes get a new pod
// on the next sync) while at most maxUnavailable nodes that should run the
// daemon lack an available one. Old pods that are unavailable anyway go
// first and cost nothing.
func (c *Controller) rollingUpdate(ctx context.Context, key string, v *view) error {
	us := v.ds.GetSpec().GetUpdateStrategy()
	if us.GetType() == OnDelete {
		return nil
	}
	desired := 0
	for _, s := range v.nodes {
		if s.place.Run {
			desired++
		}
	}
	maxUnavailable, err := podutil.ScaledValue(us.GetRollingUpdate().GetMaxUnavailable(), podutil.Int(1), desired, true)
	if err != nil {
		return fmt.Errorf("failed to resolve maxUnavailable of daemon set %s: %w", v.ds.GetMetadata().GetName(), err)
	}
	maxUnavailable = max(maxUnavailable, 1) // without surge, 0 would never move
	minReady := v.ds.GetSpec().GetMinReadySeconds()
	unavailable := 0
	var oldAvailable, remove []*meridianv1.Pod
	for _, s := range v.nodes {
		if !s.place.Run && !s.place.Keep {
			continue
		}
		if len(s.pods) == 0 {
			if s.place.Run {
				unavailable++
			}
			continue
		}
		p := s.pods[0]
		available := podutil.IsPodAvailable(p, minReady, v.now)
		if !available {
			unavailable++
		}
		if p.GetMetadata().GetLabels()[podutil.ControllerRevisionHashLabel] == v.hash {
			continue
		}
		if available {
			oldAvailable = append(oldAvailable, p)
		} else {
			remove = append(remove, p)
		}
	}
	for _, p := range oldAvailable {
		if unavailable >= maxUnavailable {
			break
		}
		remove = append(remove, p)
		unavailable++
	}
	return c.deletePods(ctx, key, v, remove)
}

// createPods creates one daemon pod on each node named, bound to it.
func (c *Controller) createPods(ctx context.Context, key string, v *view, nodes []string) error {
	if len(nodes) == 0 {
		return nil
	}
	ds := v.ds
	names := make([]string, len(nodes))
	for i := range names {
		names[i] = podutil.GenerateName(ds.GetMetadata().GetName())
	}
	c.exp.ExpectCreations(key, names...)
	done, failed, err := podutil.SlowStartBatch(len(nodes), podutil.SlowStartInitialBatch, func(i int) error {
		pod := podutil.NewPod(ds.GetSpec().GetTemplate(), ds, names[i])
		pod.Metadata.Labels[podutil.ControllerRevisionHashLabel] = v.hash
		pod.Spec.NodeName = nodes[i]
		pod.Spec.Tolerations = withDefaultTolerations(pod.Spec.Tolerations)
		if _, err := c.st.Create(ctx, pod); err != nil {
			c.exp.CreationObserved(key, names[i])
			return fmt.Errorf("failed to create pod %s on node %s: %w", names[i], nodes[i], err)
		}
		c.event(ctx, ds, controller.EventNormal, ReasonSuccessfulCreate, "Created pod: %s", names[i])
		return nil
	})
	for _, name := range names[done+failed:] {
		c.exp.CreationObserved(key, name)
	}
	if err != nil {
		c.event(ctx, ds, controller.EventWarning, ReasonFailedCreate, "Error creating: %v", err)
	}
	return err
}

// deletePods deletes pods (each if still the one the cache showed),
// gracefully: daemon pods are bound to their nodes.
func (c *Controller) deletePods(ctx context.Context, key string, v *view, pods []*meridianv1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	return podutil.DeletePods(ctx, c.st, c.exp, key, pods, func(name string) {
		c.event(ctx, v.ds, controller.EventNormal, ReasonSuccessfulDelete, "Deleted pod: %s", name)
	})
}

// updateStatus writes the counts Kubernetes reports: on nodes that should
// run the daemon, how many have one (current), how many of those are
// ready, available and of the current template; and how many pods run
// where they should not (misscheduled).
func (c *Controller) updateStatus(ctx context.Context, v *view) error {
	ds := v.ds
	next := &meridianv1.DaemonSetStatus{ObservedGeneration: ds.GetMetadata().GetGeneration(), Conditions: podutil.RemoveCondition(ds.GetStatus().GetConditions(), "")}
	var waitAvailable time.Duration
	minReady := ds.GetSpec().GetMinReadySeconds()
	for _, s := range v.nodes {
		switch {
		case s.place.Run:
			next.DesiredNumberScheduled++
			if len(s.pods) == 0 {
				continue
			}
			p := s.pods[0]
			next.CurrentNumberScheduled++
			if podutil.IsPodReady(p) {
				next.NumberReady++
			}
			if podutil.IsPodAvailable(p, minReady, v.now) {
				next.NumberAvailable++
			} else if d, ok := podutil.AvailableIn(p, minReady, v.now); ok && (waitAvailable == 0 || d < waitAvailable) {
				waitAvailable = d
			}
			if p.GetMetadata().GetLabels()[podutil.ControllerRevisionHashLabel] == v.hash {
				next.UpdatedNumberScheduled++
			}
		case len(s.pods) > 0:
			next.NumberMisscheduled++
		}
	}
	if waitAvailable > 0 {
		c.ctrl.Queue.AddAfter(controller.Key(ds), waitAvailable)
	}
	if proto.Equal(ds.GetStatus(), next) {
		return nil
	}
	uid := ds.GetMetadata().GetUid()
	_, err := c.st.Update(ctx, dsKind, ds.GetMetadata().GetNamespace(), ds.GetMetadata().GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != uid {
			return storage.ErrNotFound
		}
		o.(*meridianv1.DaemonSet).Status = next
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to update the status of daemon set %s: %w", ds.GetMetadata().GetName(), err)
	}
	return nil
}
