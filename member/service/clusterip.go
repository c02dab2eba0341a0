package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/runtime/ipam"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// errStale ends a clusterIP write whose Service changed under it: the
// change's own event syncs the Service again.
var errStale = errors.New("service changed since it was read")

// requestedIP is the address a Service asks for: clusterIP, or the first of
// clusterIPs when only those are given; "" asks for one to be allocated.
func requestedIP(spec *meridianv1.ServiceSpec) string {
	if ip := spec.GetClusterIp(); ip != "" {
		return ip
	}
	if ips := spec.GetClusterIps(); len(ips) > 0 {
		return ips[0]
	}
	return ""
}

// restore takes back, before any sync, the addresses that the stored
// Services hold, so that allocations survive a restart of the member. Of
// two Services that claim one address the older one keeps it (then the
// first by name); the other is refused on its sync, as it was before.
func (c *Controller) restore() {
	var svcs []*meridianv1.Service
	for _, o := range c.services.List("", nil) {
		svc := o.(*meridianv1.Service)
		if servesClusterIP(svc) && requestedIP(svc.GetSpec()) != "" {
			svcs = append(svcs, svc)
		}
	}
	sort.Slice(svcs, func(i, j int) bool {
		ti := svcs[i].GetMetadata().GetCreationTimestamp().AsTime()
		tj := svcs[j].GetMetadata().GetCreationTimestamp().AsTime()
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return controller.Key(svcs[i]) < controller.Key(svcs[j])
	})
	restored := 0
	for _, svc := range svcs {
		ip, err := netip.ParseAddr(requestedIP(svc.GetSpec()))
		if err != nil {
			continue
		}
		if err := c.alloc.Restore(svc.GetMetadata().GetUid(), ip); err == nil {
			c.hold(controller.Key(svc), svc.GetMetadata().GetUid())
			restored++
		}
	}
	if restored > 0 {
		c.log.Info("restored Service addresses", "count", restored, "range", c.alloc.Prefix())
	}
}

// clusterIP returns the address the proxy serves svc on, allocating and
// storing one if svc asks for none. It returns the zero Addr, having
// recorded why, when svc cannot have the address it asks for; an error
// means try again.
func (c *Controller) clusterIP(ctx context.Context, key string, svc *meridianv1.Service) (netip.Addr, error) {
	uid := svc.GetMetadata().GetUid()
	want := requestedIP(svc.GetSpec())
	if want == "" {
		return c.allocate(ctx, key, svc)
	}
	ip, err := netip.ParseAddr(want)
	if err != nil {
		c.release(key)
		c.warn(ctx, key, svc, ReasonClusterIPNotAllocated, fmt.Sprintf("clusterIP %q is not an IP address", want))
		return netip.Addr{}, nil
	}
	if err := c.alloc.Restore(uid, ip); err != nil {
		// Whatever the Service held before is not what it asks for now.
		c.release(key)
		switch {
		case errors.Is(err, ipam.ErrInUse):
			c.warn(ctx, key, svc, ReasonClusterIPNotAllocated, fmt.Sprintf(
				"clusterIP %s is already allocated to Service %s; the Service is not served", ip, c.holderOf(ip)))
			c.wait(key)
		case errors.Is(err, ipam.ErrOutOfRange):
			c.warn(ctx, key, svc, ReasonClusterIPNotAllocated, fmt.Sprintf(
				"clusterIP %s is not an allocatable address of the member's service range %s (its network address and .1 are reserved); the Service is not served",
				ip, c.alloc.Prefix()))
		default:
			return netip.Addr{}, fmt.Errorf("failed to reserve clusterIP %s for Service %s: %w", ip, key, err)
		}
		return netip.Addr{}, nil
	}
	c.hold(key, uid)
	c.clearWarning(key, ReasonClusterIPNotAllocated)
	if svc.GetSpec().GetClusterIp() == "" || len(svc.GetSpec().GetClusterIps()) == 0 {
		// Given only one of the two fields: fill in the other, as Kubernetes does.
		if err := c.writeClusterIP(ctx, svc, ip, want); err != nil && !errors.Is(err, errStale) {
			return netip.Addr{}, err
		}
	}
	return ip, nil
}

// allocate gives svc an address and stores it in spec.clusterIP and
// spec.clusterIPs. A Service that held one keeps it: re-applying a
// manifest without clusterIP does not move the Service.
func (c *Controller) allocate(ctx context.Context, key string, svc *meridianv1.Service) (netip.Addr, error) {
	uid := svc.GetMetadata().GetUid()
	ip, err := c.alloc.Allocate(uid)
	if errors.Is(err, ipam.ErrExhausted) {
		c.warn(ctx, key, svc, ReasonClusterIPNotAllocated, fmt.Sprintf(
			"no free address in the member's service range %s; the Service is not served", c.alloc.Prefix()))
		c.wait(key)
		return netip.Addr{}, nil
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("failed to allocate a clusterIP for Service %s: %w", key, err)
	}
	c.hold(key, uid)
	err = c.writeClusterIP(ctx, svc, ip, "")
	if errors.Is(err, errStale) || errors.Is(err, storage.ErrNotFound) {
		// Deleted, re-created or given an address meanwhile: the event of
		// that change syncs the Service again, and sorts out the address.
		return netip.Addr{}, nil
	}
	if err != nil {
		return netip.Addr{}, err
	}
	c.clearWarning(key, ReasonClusterIPNotAllocated)
	if c.recorder != nil {
		c.recorder.Eventf(ctx, svc, controller.EventNormal, ReasonClusterIPAllocated, "Allocated clusterIP %s", ip)
	}
	return ip, nil
}

// writeClusterIP stores ip as the Service's clusterIP and clusterIPs if it
// is still the object seen (same uid) and still asks for want; errStale
// otherwise.
func (c *Controller) writeClusterIP(ctx context.Context, svc *meridianv1.Service, ip netip.Addr, want string) error {
	md := svc.GetMetadata()
	_, err := c.store.Update(ctx, serviceKind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		cur := o.(*meridianv1.Service)
		if cur.GetMetadata().GetUid() != md.GetUid() || requestedIP(cur.GetSpec()) != want {
			return errStale
		}
		if cur.Spec == nil {
			cur.Spec = &meridianv1.ServiceSpec{}
		}
		cur.Spec.ClusterIp = ip.String()
		cur.Spec.ClusterIps = []string{ip.String()}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to store the clusterIP of Service %s/%s: %w", md.GetNamespace(), md.GetName(), err)
	}
	return nil
}

// hold records that the Service key holds an address under uid.
func (c *Controller) hold(key, uid string) {
	c.mu.Lock()
	c.held[key] = uid
	delete(c.waiting, key)
	c.mu.Unlock()
}

// wait records that the Service key waits for an address to be released.
func (c *Controller) wait(key string) {
	c.mu.Lock()
	c.waiting[key] = true
	c.mu.Unlock()
}

// release frees the address the Service key holds, if any, and syncs the
// Services that were waiting for one.
func (c *Controller) release(key string) {
	c.mu.Lock()
	uid, ok := c.held[key]
	delete(c.held, key)
	var waiting []string
	if ok {
		for k := range c.waiting {
			waiting = append(waiting, k)
		}
		clear(c.waiting)
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	c.alloc.Release(uid)
	for _, k := range waiting {
		c.ctrl.Queue.Add(k)
	}
}

// releaseIfReplaced frees the address held under the key by an older
// object of the same name.
func (c *Controller) releaseIfReplaced(key, uid string) {
	c.mu.Lock()
	held, ok := c.held[key]
	c.mu.Unlock()
	if ok && held != uid {
		c.release(key)
	}
}

// holderOf names the Service that holds ip, for messages.
func (c *Controller) holderOf(ip netip.Addr) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, uid := range c.held {
		if got, ok := c.alloc.Lookup(uid); ok && got == ip {
			return key
		}
	}
	return "another Service"
}
