package podtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// KubeletOptions say how the fake kubelet treats new pods.
type KubeletOptions struct {
	// Manual leaves new pods Pending until the test calls ReadyNext or
	// Ready. Otherwise they become Running and Ready on their own.
	Manual bool
	// Delay is how long an automatic pod stays Pending first.
	Delay time.Duration
	// Scheduled only starts pods bound to a node (spec.nodeName set).
	Scheduled bool
	// Node, if set, binds pods that have no node to it, standing in for
	// the scheduler: controllers then delete them gracefully, and the
	// kubelet removes them after TerminationDelay, as the node agent does
	// once it has stopped their processes.
	Node string
	// TerminationDelay is how long a terminating pod takes to go.
	TerminationDelay time.Duration
}

// Kubelet plays the node agent for controller tests: it watches the
// namespace's pods and writes their status as an agent would. It stops
// when the test ends.
type Kubelet struct {
	env  *Env
	opts KubeletOptions

	mu      sync.Mutex
	seen    map[string]bool // pod uids already started or queued
	ending  map[string]bool // pod uids being terminated
	pending []string        // names waiting for ReadyNext, oldest first
}

// StartKubelet starts a fake kubelet over env's namespace.
func StartKubelet(env *Env, opts KubeletOptions) *Kubelet {
	k := &Kubelet{env: env, opts: opts, seen: map[string]bool{}, ending: map[string]bool{}}
	ready := make(chan struct{})
	env.Go(func(ctx context.Context) { k.run(ctx, ready) })
	select {
	case <-ready:
	case <-env.Ctx().Done():
	}
	return k
}

func (k *Kubelet) run(ctx context.Context, ready chan<- struct{}) {
	objs, rev, err := k.env.Store.List(ctx, Pods, Namespace, nil)
	if err != nil {
		close(ready)
		k.env.T.Errorf("kubelet: failed to list pods: %v", err)
		return
	}
	for _, o := range objs {
		k.saw(ctx, o.(*meridianv1.Pod))
	}
	close(ready)
	for ev := range k.env.Store.Watch(ctx, Pods, Namespace, nil, rev) {
		switch ev.Type {
		case storage.Added, storage.Modified:
			k.saw(ctx, ev.Object.(*meridianv1.Pod))
		case storage.Deleted:
			k.mu.Lock()
			name := ev.Object.GetMetadata().GetName()
			k.pending = slices.DeleteFunc(k.pending, func(n string) bool { return n == name })
			k.mu.Unlock()
		case storage.Error:
			if ctx.Err() == nil {
				k.env.T.Errorf("kubelet: watch failed: %v", ev.Err)
			}
			return
		}
	}
}

// saw handles a pod the first time it is eligible to start, and the first
// time it is seen terminating.
func (k *Kubelet) saw(ctx context.Context, p *meridianv1.Pod) {
	if p.GetMetadata().GetDeletionTimestamp() != nil {
		k.terminate(p)
		return
	}
	if p.GetStatus().GetPhase() != "" || (k.opts.Scheduled && p.GetSpec().GetNodeName() == "") {
		return
	}
	k.mu.Lock()
	uid := p.GetMetadata().GetUid()
	if k.seen[uid] {
		k.mu.Unlock()
		return
	}
	k.seen[uid] = true
	k.mu.Unlock()
	if err := k.setPending(ctx, p); err != nil {
		k.report(err)
		return
	}
	if k.opts.Manual {
		// Only now: ReadyNext must not race the Pending write.
		k.mu.Lock()
		k.pending = append(k.pending, p.GetMetadata().GetName())
		k.mu.Unlock()
		return
	}
	if k.opts.Delay <= 0 {
		k.report(k.start(ctx, p.GetMetadata().GetName(), uid))
		return
	}
	name := p.GetMetadata().GetName()
	k.env.Go(func(ctx context.Context) {
		t := time.NewTimer(k.opts.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			k.report(k.start(ctx, name, uid))
		case <-ctx.Done():
		}
	})
}

// report fails the test for a status write that failed for another
// reason than the pod being gone.
func (k *Kubelet) report(err error) {
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		k.env.T.Errorf("kubelet: %v", err)
	}
}

// terminate removes a terminating pod after TerminationDelay.
func (k *Kubelet) terminate(p *meridianv1.Pod) {
	md := p.GetMetadata()
	k.mu.Lock()
	if k.ending[md.GetUid()] {
		k.mu.Unlock()
		return
	}
	k.ending[md.GetUid()] = true
	k.pending = slices.DeleteFunc(k.pending, func(n string) bool { return n == md.GetName() })
	k.mu.Unlock()
	k.env.Go(func(ctx context.Context) {
		t := time.NewTimer(k.opts.TerminationDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if _, err := podutil.DeleteByUID(ctx, k.env.Store, Pods, md.GetNamespace(), md.GetName(), md.GetUid()); err != nil && ctx.Err() == nil {
			k.env.T.Errorf("kubelet: %v", err)
		}
	})
}

// ReadyNext starts the oldest pending pod (manual mode) and returns its
// name, or "" if none is pending.
func (k *Kubelet) ReadyNext() string {
	k.env.T.Helper()
	for {
		k.mu.Lock()
		if len(k.pending) == 0 {
			k.mu.Unlock()
			return ""
		}
		name := k.pending[0]
		k.pending = k.pending[1:]
		k.mu.Unlock()
		err := k.start(k.env.Ctx(), name, "")
		if err == nil {
			return name
		}
		if !errors.Is(err, storage.ErrNotFound) {
			k.env.T.Fatalf("kubelet: %v", err)
		}
	}
}

// Pending returns the names of the pods waiting for ReadyNext.
func (k *Kubelet) Pending() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.pending)
}

// Ready starts the named pod now, whatever the mode.
func (k *Kubelet) Ready(name string) {
	k.env.T.Helper()
	k.mu.Lock()
	k.pending = slices.DeleteFunc(k.pending, func(n string) bool { return n == name })
	k.mu.Unlock()
	if err := k.start(k.env.Ctx(), name, ""); err != nil {
		k.env.T.Fatalf("kubelet: %v", err)
	}
}

// Fail ends the named pod with phase (Failed or Succeeded), as a pod whose
// container exited and will not be restarted.
func (k *Kubelet) Fail(name, phase string) {
	k.env.T.Helper()
	err := k.write(k.env.Ctx(), name, "", func(p *meridianv1.Pod) {
		p.Status.Phase = phase
		p.Status.Conditions = []*meridianv1.Condition{{Type: "Ready", Status: "False", LastTransitionTime: timestamppb.Now(), Reason: "PodCompleted"}}
		for _, cs := range p.Status.ContainerStatuses {
			cs.Ready, cs.State, cs.ExitCode = false, "terminated", 1
		}
	})
	if err != nil {
		k.env.T.Fatalf("kubelet: %v", err)
	}
}

func (k *Kubelet) setPending(ctx context.Context, p *meridianv1.Pod) error {
	return k.write(ctx, p.GetMetadata().GetName(), p.GetMetadata().GetUid(), func(p *meridianv1.Pod) {
		if p.Status.Phase != "" {
			return // started already
		}
		if p.Spec == nil {
			p.Spec = &meridianv1.PodSpec{}
		}
		if p.Spec.NodeName == "" {
			p.Spec.NodeName = k.opts.Node
		}
		p.Status.Phase = "Pending"
		p.Status.Conditions = []*meridianv1.Condition{{Type: "Ready", Status: "False", LastTransitionTime: timestamppb.Now()}}
	})
}

// start marks the pod Running and Ready.
func (k *Kubelet) start(ctx context.Context, name, uid string) error {
	return k.write(ctx, name, uid, func(p *meridianv1.Pod) {
		now := timestamppb.Now()
		p.Status.Phase = "Running"
		p.Status.PodIp = "127.0.0.2"
		p.Status.StartTime = now
		p.Status.Conditions = []*meridianv1.Condition{{Type: "Ready", Status: "True", LastTransitionTime: now}}
		p.Status.ContainerStatuses = nil
		for _, c := range p.GetSpec().GetContainers() {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, &meridianv1.ContainerStatus{Name: c.GetName(), Ready: true, State: "running", StartedAt: now})
		}
	})
}

// write changes the pod's status; uid, if set, must still be the pod's.
func (k *Kubelet) write(ctx context.Context, name, uid string, f func(p *meridianv1.Pod)) error {
	_, err := k.env.Store.Update(ctx, Pods, Namespace, name, func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		if uid != "" && p.GetMetadata().GetUid() != uid {
			return storage.ErrNotFound
		}
		if p.Status == nil {
			p.Status = &meridianv1.PodStatus{}
		}
		f(p)
		return nil
	})
	switch {
	case err == nil, ctx.Err() != nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return err
	}
	return fmt.Errorf("failed to write the status of pod %s: %w", name, err)
}
