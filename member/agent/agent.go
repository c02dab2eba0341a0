// Package agent is a member's node agent: for one node, it registers the
// Node object, runs the pods bound to that node through a runtime driver,
// and writes what the driver observes back into each pod's status.
//
//	store ──pods (spec.nodeName == node)──▶ informer ──keys──▶ queue ──▶ sync
//	                                                                   │
//	driver (exec | sim) ◀── Start / Stop ─────────────────────────────┘
//	      └── OnChange(uid) ──▶ queue ──▶ sync ──▶ store.Update(pod.status)
//
// Deletion is graceful, as in Kubernetes: a pod that runs on a node is
// deleted by setting metadata.deletionTimestamp (see DeletePod); the agent
// stops its processes within the grace period and only then removes the
// object. Whoever waits for the object to disappear — a StatefulSet
// replacing an ordinal — therefore never overlaps two copies.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/runtime"
	"github.com/meridian-fed/meridian/member/runtime/ipam"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var (
	podKind       = resource.MustLookup("Pod")
	nodeKind      = resource.MustLookup("Node")
	configMapKind = resource.MustLookup("ConfigMap")
	secretKind    = resource.MustLookup("Secret")
)

// Node is how a member's configuration declares one node.
type Node struct {
	Name string `mapstructure:"name"`
	// Capacity is quantities per resource name ("cpu": "4", "memory": "8Gi", "pods": "110").
	Capacity map[string]string `mapstructure:"capacity"`
	Labels   map[string]string `mapstructure:"labels"`
	Taints   []Taint           `mapstructure:"taints"`
}

// Taint is a node taint in configuration.
type Taint struct {
	Key    string `mapstructure:"key"`
	Value  string `mapstructure:"value"`
	Effect string `mapstructure:"effect"`
}

// Config wires an agent.
type Config struct {
	Node      Node
	Store     storage.Interface
	Informers *controller.InformerSet
	// NewDriver builds the runtime driver, given the callback it must call
	// when a pod's status may have changed.
	NewDriver func(onChange runtime.ChangeFunc) (runtime.Driver, error)
	// IPAM hands out pod addresses; shared by every agent of a member.
	IPAM     *ipam.Allocator
	Recorder *controller.Recorder
	Log      *slog.Logger
	// ServiceEnv, if set, returns the Service environment variables of a
	// pod in namespace, read as the pod starts (PodRequest.Env).
	ServiceEnv func(ctx context.Context, namespace string) []string
	// Gate, if set, may forbid pods to run (singleton fencing): the agent
	// stops a pod it forbids and does not start it again until it allows
	// it.
	Gate Gate
}

// Agent runs the pods of one node.
type Agent struct {
	node     Node
	store    storage.Interface
	pods     *controller.Informer
	cms      *controller.Informer
	secrets  *controller.Informer
	driver   runtime.Driver
	ipam     *ipam.Allocator
	recorder *controller.Recorder
	log      *slog.Logger
	ctrl     *controller.Controller
	// serviceEnv is Config.ServiceEnv.
	serviceEnv func(ctx context.Context, namespace string) []string
	gate       Gate // nil: every pod may run
	// gateMu is held for reading from a pod's Allow to its start (or
	// stop), and taken for writing by RunsAny: once RunsAny holds it, no
	// start decided under older gate answers is still under way.
	gateMu sync.RWMutex

	mu sync.Mutex
	// running maps a pod key (namespace/name) to the UID the driver runs
	// under that key, and its grace period; guarded by mu.
	running map[string]runningPod
	// byUID is the inverse of running, for the driver's change callback;
	// guarded by mu.
	byUID map[string]string
}

type runningPod struct {
	uid string
	// grace is the pod's termination grace period, resolved at start: a
	// copy of the whole spec per running pod only to read this one field
	// was a tenth of the member's heap at 10,000 pods.
	grace time.Duration
}

// New builds an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Node.Name == "" {
		return nil, errors.New("agent: node name is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &Agent{
		node:     cfg.Node,
		store:    cfg.Store,
		pods:     cfg.Informers.For(podKind),
		cms:      cfg.Informers.For(configMapKind),
		secrets:  cfg.Informers.For(secretKind),
		ipam:     cfg.IPAM,
		recorder: cfg.Recorder,
		log:      cfg.Log.With("node", cfg.Node.Name),
		running:  map[string]runningPod{},
		byUID:    map[string]string{},
	}
	a.serviceEnv = cfg.ServiceEnv
	a.gate = cfg.Gate
	d, err := cfg.NewDriver(a.onDriverChange)
	if err != nil {
		return nil, fmt.Errorf("failed to start the runtime for node %s: %w", cfg.Node.Name, err)
	}
	a.driver = d
	// Several workers: one pod's slow stop (its grace period) must not hold
	// up every other pod of the node, and a pod's start waits on store
	// commits, which concurrent syncs share.
	a.ctrl = controller.New("agent/"+cfg.Node.Name, 32, a.sync, a.log)
	mine := func(o resource.Object) bool {
		return o.(*meridianv1.Pod).GetSpec().GetNodeName() == a.node.Name
	}
	a.pods.AddHandler(controller.Handler{
		OnAdd: func(o resource.Object) {
			if mine(o) {
				a.ctrl.Queue.Add(controller.Key(o))
			}
		},
		OnUpdate: func(old, o resource.Object) {
			if mine(o) || mine(old) {
				a.ctrl.Queue.Add(controller.Key(o))
			}
		},
		OnDelete: func(o resource.Object) { a.ctrl.Queue.Add(controller.Key(o)) },
	})
	waiting := controller.Handler{
		OnAdd:    a.requeueWaiting,
		OnUpdate: func(_, o resource.Object) { a.requeueWaiting(o) },
	}
	a.cms.AddHandler(waiting)
	a.secrets.AddHandler(waiting)
	if a.gate != nil {
		a.gate.Subscribe(a.requeueAll)
	}
	return a, nil
}

// Driver is the agent's runtime driver.
func (a *Agent) Driver() runtime.Driver { return a.driver }

// NodeName is the name of the agent's node.
func (a *Agent) NodeName() string { return a.node.Name }

func (a *Agent) onDriverChange(uid string) {
	a.mu.Lock()
	key, ok := a.byUID[uid]
	a.mu.Unlock()
	if ok {
		a.ctrl.Queue.Add(key)
	}
}

// Run registers the node and runs pods until ctx ends; then it marks the
// node not ready and stops every pod (Close of the driver).
func (a *Agent) Run(ctx context.Context) error {
	if err := a.register(ctx, "True", "AgentReady", "the node agent is running"); err != nil {
		a.driver.Close()
		return err
	}
	a.ctrl.Run(ctx) // returns when ctx ends and the workers are done
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.register(stopCtx, "False", "AgentStopped", "the node agent stopped"); err != nil {
		a.log.Warn("failed to mark the node not ready", "err", err)
	}
	return a.driver.Close()
}

// register creates or refreshes the Node object.
func (a *Agent) register(ctx context.Context, ready, reason, msg string) error {
	n := &meridianv1.Node{
		ApiVersion: "v1", Kind: "Node",
		Metadata: &meridianv1.ObjectMeta{Name: a.node.Name, Labels: a.node.Labels},
		Spec:     &meridianv1.NodeSpec{},
	}
	for _, t := range a.node.Taints {
		n.Spec.Taints = append(n.Spec.Taints, &meridianv1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	if _, err := a.store.Get(ctx, nodeKind, "", a.node.Name); errors.Is(err, storage.ErrNotFound) {
		if _, _, err := a.store.Apply(ctx, n, storage.ApplyOptions{}); err != nil {
			return fmt.Errorf("failed to register node %s: %w", a.node.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("failed to read node %s: %w", a.node.Name, err)
	} else {
		// Keep what an operator changed (cordon, extra taints); refresh labels.
		if _, err := a.store.Update(ctx, nodeKind, "", a.node.Name, func(o resource.Object) error {
			cur := o.(*meridianv1.Node)
			resource.Meta(cur).Labels = a.node.Labels
			return nil
		}); err != nil {
			return fmt.Errorf("failed to refresh node %s: %w", a.node.Name, err)
		}
	}
	_, err := a.store.Update(ctx, nodeKind, "", a.node.Name, func(o resource.Object) error {
		cur := o.(*meridianv1.Node)
		st := &meridianv1.NodeStatus{Capacity: a.node.Capacity, Allocatable: a.node.Capacity}
		st.Conditions = []*meridianv1.Condition{{Type: "Ready", Status: ready, Reason: reason, Message: msg, LastTransitionTime: timestamppb.Now()}}
		if a.ipam != nil {
			st.Addresses = []*meridianv1.NodeAddress{{Type: "InternalIP", Address: a.ipam.ServiceAddr().String()}}
		}
		cur.Status = st
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to update node %s status: %w", a.node.Name, err)
	}
	return nil
}

// sync makes the driver run exactly the pod the store binds to this node
// under key, and reports its status.
func (a *Agent) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	obj, exists := a.pods.Get(ns, name)
	var pod *meridianv1.Pod
	if exists {
		pod = obj.(*meridianv1.Pod)
		if pod.GetSpec().GetNodeName() != a.node.Name {
			pod = nil
		}
	}
	a.mu.Lock()
	cur, isRunning := a.running[key]
	a.mu.Unlock()

	// A different pod (or none) under this key: stop what runs there first,
	// so that two pods of the same name never run at once.
	if isRunning && (pod == nil || pod.GetMetadata().GetUid() != cur.uid) {
		if err := a.stop(ctx, key, cur, -1); err != nil {
			return err
		}
		isRunning = false
	}
	if pod == nil {
		return nil
	}

	if pod.GetMetadata().GetDeletionTimestamp() != nil {
		if isRunning {
			if err := a.stop(ctx, key, cur, -1); err != nil {
				return err
			}
		}
		_, err := a.store.Delete(ctx, podKind, ns, name, "")
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("failed to remove terminated pod %s: %w", key, err)
		}
		return nil
	}

	if a.gate != nil {
		a.gateMu.RLock()
		defer a.gateMu.RUnlock()
		if ok, reason := a.gate.Allow(pod); !ok {
			return a.fence(ctx, key, pod, cur, isRunning, reason)
		}
	}
	if !isRunning {
		if ph := pod.GetStatus().GetPhase(); ph == runtime.PhaseSucceeded || ph == runtime.PhaseFailed {
			return nil // finished before (perhaps before an agent restart): never run again
		}
		if err := a.start(ctx, key, pod); err != nil {
			return err
		}
	}
	return a.reportStatus(ctx, key, pod)
}

func (a *Agent) start(ctx context.Context, key string, pod *meridianv1.Pod) error {
	uid := pod.GetMetadata().GetUid()
	env, files, err := a.resolve(pod)
	if err != nil {
		// A missing ConfigMap or Secret: say so on the pod and look again soon
		// (the informers also re-queue when one appears).
		a.setWaiting(ctx, pod, "CreateContainerConfigError", err.Error())
		a.ctrl.Queue.AddAfter(key, 2*time.Second)
		return nil
	}
	ip, err := a.address(pod)
	if err != nil {
		a.setWaiting(ctx, pod, "AddressUnavailable", err.Error())
		return err
	}
	req := &runtime.PodRequest{
		UID: uid, Namespace: pod.GetMetadata().GetNamespace(), Name: pod.GetMetadata().GetName(),
		Spec: pod.GetSpec(), PodIP: ip, ContainerEnv: env, Files: files,
	}
	if a.serviceEnv != nil {
		req.Env = a.serviceEnv(ctx, req.Namespace)
	}
	a.mu.Lock()
	a.running[key] = runningPod{uid: uid, grace: runtime.GracePeriod(pod.GetSpec(), -1)}
	a.byUID[uid] = key
	a.mu.Unlock()
	if err := a.driver.Start(ctx, req); err != nil && !errors.Is(err, runtime.ErrPodExists) {
		a.mu.Lock()
		delete(a.running, key)
		delete(a.byUID, uid)
		a.mu.Unlock()
		a.release(uid)
		return fmt.Errorf("failed to start pod %s: %w", key, err)
	}
	if a.recorder != nil {
		a.recorder.Eventf(ctx, pod, controller.EventNormal, "Started", "Started on node %s with address %s", a.node.Name, ip)
	}
	return nil
}

// stop stops a running pod within grace, or within its own grace period if
// grace is negative.
func (a *Agent) stop(ctx context.Context, key string, rp runningPod, grace time.Duration) error {
	g := rp.grace
	if grace >= 0 {
		g = grace
	}
	sctx, cancel := context.WithTimeout(ctx, g+10*time.Second)
	defer cancel()
	if err := a.driver.Stop(sctx, rp.uid, g); err != nil {
		return fmt.Errorf("failed to stop pod %s: %w", key, err)
	}
	a.mu.Lock()
	if a.running[key].uid == rp.uid {
		delete(a.running, key)
	}
	delete(a.byUID, rp.uid)
	a.mu.Unlock()
	a.release(rp.uid)
	return nil
}

func (a *Agent) release(uid string) {
	if a.ipam != nil {
		a.ipam.Release(uid)
	}
}

// address returns the pod's address: the one it had (kept across agent
// restarts, so that a restarted pod keeps its address), or a new one.
func (a *Agent) address(pod *meridianv1.Pod) (string, error) {
	if a.ipam == nil {
		return "127.0.0.1", nil
	}
	uid := pod.GetMetadata().GetUid()
	if ip, ok := a.ipam.Lookup(uid); ok {
		return ip.String(), nil
	}
	if prev, err := netip.ParseAddr(pod.GetStatus().GetPodIp()); err == nil {
		if err := a.ipam.Restore(uid, prev); err == nil {
			return prev.String(), nil
		}
	}
	ip, err := a.ipam.Allocate(uid)
	if err != nil {
		return "", fmt.Errorf("failed to allocate an address: %w", err)
	}
	return ip.String(), nil
}

// reportStatus writes the driver's view of the pod into the store when it
// differs from what is there.
func (a *Agent) reportStatus(ctx context.Context, key string, pod *meridianv1.Pod) error {
	st, ok := a.driver.Status(pod.GetMetadata().GetUid())
	if !ok {
		return nil
	}
	st.HostIp = ""
	if a.ipam != nil {
		st.HostIp = a.ipam.ServiceAddr().String()
	}
	keepScheduled(st, pod.GetStatus())
	if proto.Equal(st, pod.GetStatus()) {
		return nil
	}
	ns, name := controller.SplitKey(key)
	uid := pod.GetMetadata().GetUid()
	_, err := a.store.Update(ctx, podKind, ns, name, func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		if p.GetMetadata().GetUid() != uid {
			return errStale
		}
		p.Status = st
		return nil
	})
	if errors.Is(err, errStale) || errors.Is(err, storage.ErrNotFound) {
		a.ctrl.Queue.Add(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to report status of pod %s: %w", key, err)
	}
	return nil
}

var errStale = errors.New("pod was replaced")

// keepScheduled carries the scheduler's PodScheduled condition over into a
// status the driver produced.
func keepScheduled(st, prev *meridianv1.PodStatus) {
	for _, c := range prev.GetConditions() {
		if c.GetType() == "PodScheduled" {
			st.Conditions = append(st.Conditions, c)
		}
	}
}

func (a *Agent) setWaiting(ctx context.Context, pod *meridianv1.Pod, reason, msg string) {
	ns, name := pod.GetMetadata().GetNamespace(), pod.GetMetadata().GetName()
	uid := pod.GetMetadata().GetUid()
	_, err := a.store.Update(ctx, podKind, ns, name, func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		if p.GetMetadata().GetUid() != uid {
			return errStale
		}
		if p.Status == nil {
			p.Status = &meridianv1.PodStatus{}
		}
		p.Status.Phase, p.Status.Reason, p.Status.Message = runtime.PhasePending, reason, msg
		return nil
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errStale) {
		a.log.Debug("failed to report a waiting pod", "pod", ns+"/"+name, "err", err)
	}
	if a.recorder != nil {
		a.recorder.Eventf(ctx, pod, controller.EventWarning, reason, "%s", msg)
	}
}
