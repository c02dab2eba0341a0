package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Node is the runtime driver of one simulated node. It implements
// runtime.Driver; get it from Engine.Node. Its pods live in the engine.
type Node struct {
	e    *Engine
	name string

	// head is the first of the node's pods, linked through pod.next;
	// guarded by e.mu.
	head *pod
	// count is the number of the node's pods; guarded by e.mu.
	count int
	// closed is set by Close; guarded by e.mu.
	closed bool
}

var _ runtime.Driver = (*Node)(nil)

// Name returns "sim".
func (n *Node) Name() string { return Name }

// NodeName returns the name of the simulated node.
func (n *Node) NodeName() string { return n.name }

// Start implements runtime.Driver. The pod is Pending until its simulated
// start delay has passed.
func (n *Node) Start(_ context.Context, req *runtime.PodRequest) error {
	if err := runtime.ValidateRequest(req); err != nil {
		return err
	}
	names := make([]string, 0, len(req.Spec.GetContainers()))
	for _, c := range req.Spec.GetContainers() {
		names = append(names, c.GetName())
	}
	var grace int32 = -1
	if g := req.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 {
		grace = int32(min(*g, 1<<31-1))
	}
	e := n.e
	e.mu.Lock()
	switch {
	case e.closed || n.closed:
		e.mu.Unlock()
		return runtime.ErrClosed
	case e.pods[req.UID] != nil:
		e.mu.Unlock()
		return fmt.Errorf("failed to start pod %s: %w", req.UID, runtime.ErrPodExists)
	}
	now := time.Now().UnixNano()
	p := &pod{
		uid:       req.UID,
		ip:        req.PodIP,
		node:      n,
		names:     e.internNames(names),
		created:   now,
		graceSecs: grace,
		policy:    policyIndex(req.Spec.GetRestartPolicy()),
		state:     stWaiting,
		reason:    rsCreating,
		phase:     phPending,
	}
	e.pods[req.UID] = p
	n.linkLocked(p)
	e.stats.Pods++
	e.countLocked(p, +1)
	e.scheduleLocked(p, now+e.startDelay(p), evStarted)
	e.mu.Unlock()
	e.notify(req.UID)
	return nil
}

// Stop implements runtime.Driver: the pod's simulated containers take
// Config.StopDelay to exit, or the grace period if that is shorter.
func (n *Node) Stop(ctx context.Context, uid string, grace time.Duration) error {
	e := n.e
	e.mu.Lock()
	p := e.pods[uid]
	if p == nil || p.node != n {
		e.mu.Unlock()
		return nil
	}
	if grace < 0 {
		grace = runtime.DefaultGracePeriod
		if p.graceSecs >= 0 {
			grace = time.Duration(p.graceSecs) * time.Second
		}
	}
	d := min(e.cfg.StopDelay, grace)
	at := time.Now().UnixNano() + int64(d)
	switch {
	case d <= 0:
		e.removeLocked(p)
		e.mu.Unlock()
		return nil
	case p.stopping == nil:
		p.stopping = make(chan struct{})
		fallthrough
	case at < p.stopAt:
		p.stopAt = at
		p.gen++ // cancels whatever else was pending
		e.scheduleLocked(p, at, evStopped)
	}
	done := p.stopping
	e.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("failed to stop pod %s: %w", uid, ctx.Err())
	}
}

// Status implements runtime.Driver.
func (n *Node) Status(uid string) (*meridianv1.PodStatus, bool) {
	n.e.mu.Lock()
	defer n.e.mu.Unlock()
	p := n.e.pods[uid]
	if p == nil || p.node != n {
		return nil, false
	}
	return p.status(), true
}

// Pods implements runtime.Driver.
func (n *Node) Pods() []string {
	n.e.mu.Lock()
	uids := make([]string, 0, n.count)
	for p := n.head; p != nil; p = p.next {
		uids = append(uids, p.uid)
	}
	n.e.mu.Unlock()
	slices.Sort(uids)
	return uids
}

// Close implements runtime.Driver: the node's pods are gone at once. The
// engine keeps running for other nodes.
func (n *Node) Close() error {
	n.e.mu.Lock()
	defer n.e.mu.Unlock()
	n.closed = true
	for n.head != nil {
		n.e.removeLocked(n.head)
	}
	return nil
}

// linkLocked adds p to the node's list. e.mu must be held.
func (n *Node) linkLocked(p *pod) {
	p.next = n.head
	if n.head != nil {
		n.head.prev = p
	}
	n.head = p
	n.count++
}

// unlinkLocked removes p from the node's list. e.mu must be held.
func (n *Node) unlinkLocked(p *pod) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		n.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	}
	p.prev, p.next = nil, nil
	n.count--
}
