// Package service runs a member's Services: it gives every ClusterIP
// Service a virtual address from the member's service range, serves that
// address with a user-space L4 proxy that relays each connection to one
// ready pod the Service selects, and tells the node agents the Service
// environment variables of a namespace.
//
//	store ──watch──▶ informers (Services, Pods) ──keys──▶ queue ──▶ sync(Service)
//	                                                                  │
//	  spec.clusterIP ◀── store.Update ◀── allocator (ipam over --service-cidr)
//	                                                                  │
//	  client ──▶ clusterIP:port ──▶ Proxy (listener per port) ──round-robin──▶ podIP:targetPort
//
// Only TCP ports are proxied, and only to this member's pods; endpoints in
// other members and DNS names come later. See README.md.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/runtime/ipam"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var (
	serviceKind = resource.MustLookup("Service")
	podKind     = resource.MustLookup("Pod")
)

// Reasons of the Events the controller records on Services.
const (
	// ReasonClusterIPAllocated: the Service was given a virtual address.
	ReasonClusterIPAllocated = "ClusterIPAllocated"
	// ReasonClusterIPNotAllocated: the Service's clusterIP cannot be
	// served — outside the service range, taken by another Service — or
	// the range is full. The Service is not proxied until that changes.
	ReasonClusterIPNotAllocated = "ClusterIPNotAllocated"
	// ReasonFailedToListen: the proxy could not listen on a Service port
	// (a port below 1024 without the privilege, say); it tries again with
	// back-off.
	ReasonFailedToListen = "FailedToListen"
	// ReasonPortNotSupported: a UDP or SCTP port, which the proxy skips.
	ReasonPortNotSupported = "PortNotSupported"
)

// Config wires a Controller.
type Config struct {
	Store     storage.Interface
	Informers *controller.InformerSet
	// CIDR is the member's service range, inside 127.0.0.0/8, apart from
	// the pod range. Its network address and first host address (".1",
	// kept for the member's DNS server) are never handed out.
	CIDR string
	// Recorder records Events on Services; optional.
	Recorder *controller.Recorder
	// DialTimeout bounds each attempt to reach an endpoint; default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	Log         *slog.Logger
}

// Controller allocates Service addresses and keeps the proxy in line with
// the Services and their ready pods. Its informer handlers only enqueue
// Service keys; a sync reads the caches and writes only spec.clusterIP.
type Controller struct {
	store    storage.Interface
	services *controller.Informer
	pods     *controller.Informer
	alloc    *ipam.Allocator
	proxy    *Proxy
	recorder *controller.Recorder
	log      *slog.Logger
	ctrl     *controller.Controller

	mu sync.Mutex
	// held maps a Service key to the uid under which it holds its address
	// in alloc (a Service deleted and created again under the same name
	// has a new uid); guarded by mu.
	held map[string]string
	// waiting holds the keys of Services refused an address because it was
	// taken or the range was full; they are synced again whenever an
	// address is released. Guarded by mu.
	waiting map[string]bool
	// warned maps key and reason to the last warning recorded, so that a
	// sync repeating itself does not repeat its Event; guarded by mu.
	warned map[string]string
}

// New builds a controller and registers its informer handlers; call it
// before the informers run. Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil || cfg.Informers == nil {
		return nil, errors.New("service: Store and Informers are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	alloc, err := ipam.New(cfg.CIDR)
	if err != nil {
		return nil, fmt.Errorf("failed to set up the service range: %w", err)
	}
	log := cfg.Log.With("controller", "service")
	c := &Controller{
		store:    cfg.Store,
		services: cfg.Informers.For(serviceKind),
		pods:     cfg.Informers.For(podKind),
		alloc:    alloc,
		proxy:    NewProxy(cfg.DialTimeout, log),
		recorder: cfg.Recorder,
		log:      log,
		held:     map[string]string{},
		waiting:  map[string]bool{},
		warned:   map[string]string{},
	}
	// Two workers: a sync is quick (cache reads, a bind), and the queue
	// never hands one Service to both.
	c.ctrl = controller.New("service", 2, c.sync, cfg.Log)
	c.services.AddHandler(c.ctrl.Enqueue())
	c.pods.AddHandler(controller.Handler{
		OnAdd: func(o resource.Object) { c.enqueueSelecting(o.(*meridianv1.Pod)) },
		OnUpdate: func(old, o resource.Object) {
			if endpointsChanged(old.(*meridianv1.Pod), o.(*meridianv1.Pod)) {
				c.enqueueSelecting(old.(*meridianv1.Pod), o.(*meridianv1.Pod))
			}
		},
		OnDelete: func(o resource.Object) { c.enqueueSelecting(o.(*meridianv1.Pod)) },
	})
	return c, nil
}

// enqueueSelecting queues every Service that selects one of pods (all of
// one namespace: a pod's old and new state).
func (c *Controller) enqueueSelecting(pods ...*meridianv1.Pod) {
	ns := pods[0].GetMetadata().GetNamespace()
	for _, o := range c.services.List(ns, nil) {
		svc := o.(*meridianv1.Service)
		for _, pod := range pods {
			if selects(svc, pod) {
				c.ctrl.Queue.Add(controller.Key(svc))
				break
			}
		}
	}
}

// Range is the member's service range.
func (c *Controller) Range() netip.Prefix { return c.alloc.Prefix() }

// Stats returns the proxy's counters for a Service's ports, or nil if it
// is not proxied.
func (c *Controller) Stats(namespace, name string) []PortStats {
	return c.proxy.Stats(namespace + "/" + name)
}

// Run waits for the caches, takes back the addresses the stored Services
// hold, then syncs Services until ctx ends; it closes every listener and
// proxied connection before it returns.
func (c *Controller) Run(ctx context.Context) {
	defer c.proxy.Close()
	if !c.services.WaitForSync(ctx) || !c.pods.WaitForSync(ctx) {
		c.ctrl.Queue.ShutDown()
		return
	}
	c.restore()
	c.ctrl.Run(ctx)
}

// sync serves one Service as it now is: an address, then a listener per
// TCP port with the ready pods as endpoints — or nothing, if it is gone,
// headless, not of type ClusterIP, or its address cannot be had.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	obj, ok := c.services.Get(ns, name)
	if !ok {
		c.proxy.Remove(key)
		c.release(key)
		c.forgetWarnings(key)
		return nil
	}
	svc := obj.(*meridianv1.Service)
	c.releaseIfReplaced(key, svc.GetMetadata().GetUid())
	if !servesClusterIP(svc) {
		c.proxy.Remove(key)
		c.release(key)
		return nil
	}
	ip, err := c.clusterIP(ctx, key, svc)
	if err != nil {
		return err
	}
	if !ip.IsValid() {
		c.proxy.Remove(key)
		return nil
	}
	ports, skipped := proxyPorts(svc, c.pods.List(ns, nil))
	if len(skipped) > 0 {
		c.warn(ctx, key, svc, ReasonPortNotSupported, fmt.Sprintf(
			"port %s is not served: the member's service proxy handles TCP only", strings.Join(skipped, ", ")))
	} else {
		c.clearWarning(key, ReasonPortNotSupported)
	}
	if err := c.proxy.Sync(key, ip, ports); err != nil {
		c.warn(ctx, key, svc, ReasonFailedToListen, err.Error())
		return fmt.Errorf("failed to serve Service %s: %w", key, err)
	}
	c.clearWarning(key, ReasonFailedToListen)
	return nil
}

// warn records a Warning Event on svc, unless the last one of this reason
// said the same.
func (c *Controller) warn(ctx context.Context, key string, svc *meridianv1.Service, reason, msg string) {
	k := key + "\x00" + reason
	c.mu.Lock()
	same := c.warned[k] == msg
	c.warned[k] = msg
	c.mu.Unlock()
	if same {
		return
	}
	c.log.Warn(msg, "service", key, "reason", reason)
	if c.recorder != nil {
		c.recorder.Eventf(ctx, svc, controller.EventWarning, reason, "%s", msg)
	}
}

func (c *Controller) clearWarning(key, reason string) {
	c.mu.Lock()
	delete(c.warned, key+"\x00"+reason)
	c.mu.Unlock()
}

func (c *Controller) forgetWarnings(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.warned {
		if strings.HasPrefix(k, key+"\x00") {
			delete(c.warned, k)
		}
	}
}
