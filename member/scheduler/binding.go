package scheduler

import (
	"context"
	"errors"
	"maps"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// bind writes the scheduler's decision: spec.nodeName and condition
// PodScheduled=True, in one conditional update that never overwrites
// another binding or binds a replaced or deleted pod. It runs on a binder.
// On failure the assumption is dropped; the pod is retried unless the
// informer will show why it no longer needs a node.
func (s *Scheduler) bind(ctx context.Context, pi *PodInfo, node string) {
	md := pi.Pod.GetMetadata()
	_, err := s.store.Update(ctx, podKind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		switch {
		case p.GetMetadata().GetUid() != pi.UID:
			return errPodChanged
		case p.GetSpec().GetNodeName() != "":
			return errAlreadyBound
		case p.GetMetadata().GetDeletionTimestamp() != nil:
			return errPodDeleting
		}
		if p.Spec == nil {
			p.Spec = &meridianv1.PodSpec{}
		}
		p.Spec.NodeName = node
		setScheduled(p, "True", "", "")
		return nil
	})
	if err != nil {
		s.cache.Forget(pi.UID)
		switch {
		case errors.Is(err, storage.ErrNotFound), errors.Is(err, errPodChanged),
			errors.Is(err, errAlreadyBound), errors.Is(err, errPodDeleting):
			s.log.Debug("pod no longer needs binding", "pod", pi.Key, "reason", err)
		case ctx.Err() != nil:
		default:
			s.log.Warn("failed to bind pod; will retry", "pod", pi.Key, "node", node, "err", err)
			s.queue.AddRateLimited(pi.Key)
		}
		return
	}
	s.bound.Add(1)
	s.queue.Forget(pi.Key)
	s.events.Eventf(ctx, pi.Pod, controller.EventNormal, "Scheduled", "Successfully assigned %s to %s", pi.Key, node)
}

// markUnschedulable records why a pod cannot be placed: condition
// PodScheduled=False, reason Unschedulable, and the message, which is what
// `describe` shows. The condition and an Event (FailedScheduling) are
// written only when the message changes, so a pod that keeps not fitting
// for the same reason costs no writes.
func (s *Scheduler) markUnschedulable(ctx context.Context, pod *meridianv1.Pod, msg string) {
	md := pod.GetMetadata()
	changed := false
	_, err := s.store.Update(ctx, podKind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		if p.GetMetadata().GetUid() != md.GetUid() {
			return errPodChanged
		}
		if p.GetSpec().GetNodeName() != "" {
			return errAlreadyBound
		}
		changed = setScheduled(p, "False", ReasonUnschedulable, msg)
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, errPodChanged), errors.Is(err, errAlreadyBound), ctx.Err() != nil:
		return
	default:
		s.log.Warn("failed to record that a pod is unschedulable", "pod", controller.Key(pod), "err", err)
		return
	}
	if changed {
		s.log.Debug("pod is unschedulable", "pod", controller.Key(pod), "reason", msg)
		s.events.Eventf(ctx, pod, controller.EventWarning, "FailedScheduling", "%s", msg)
	}
}

// setScheduled sets the PodScheduled condition of p (and phase Pending if
// no one set a phase yet). It reports whether the condition changed.
func setScheduled(p *meridianv1.Pod, status, reason, message string) bool {
	if p.Status == nil {
		p.Status = &meridianv1.PodStatus{}
	}
	if p.Status.Phase == "" {
		p.Status.Phase = phasePending
	}
	now := timestamppb.New(time.Now())
	for _, c := range p.Status.Conditions {
		if c.GetType() != ConditionPodScheduled {
			continue
		}
		if c.GetStatus() == status && c.GetReason() == reason && c.GetMessage() == message {
			return false
		}
		if c.GetStatus() != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = status, reason, message
		return true
	}
	p.Status.Conditions = append(p.Status.Conditions, &meridianv1.Condition{
		Type: ConditionPodScheduled, Status: status, Reason: reason, Message: message, LastTransitionTime: now,
	})
	return true
}

// schedulingChanged reports whether a node update may let pods on that did
// not fit before: a node agent's heartbeat changes none of these, and must
// not send every waiting pod round again.
func schedulingChanged(old, cur *meridianv1.Node) bool {
	return old.GetSpec().GetUnschedulable() != cur.GetSpec().GetUnschedulable() ||
		!maps.Equal(old.GetMetadata().GetLabels(), cur.GetMetadata().GetLabels()) ||
		!maps.Equal(old.GetStatus().GetAllocatable(), cur.GetStatus().GetAllocatable()) ||
		!maps.Equal(old.GetStatus().GetCapacity(), cur.GetStatus().GetCapacity()) ||
		!taintsEqual(old.GetSpec().GetTaints(), cur.GetSpec().GetTaints())
}

func taintsEqual(a, b []*meridianv1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
