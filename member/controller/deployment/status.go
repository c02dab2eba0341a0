package deployment

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// syncStatus computes the Deployment's status from its ReplicaSets'
// (as Kubernetes does, so that `get deploy` agrees with `get rs`) and
// writes it, with the current revision annotation, if it changed.
//
// Progressing is True while the rollout moves; its lastTransitionTime is
// the last time it did (a new ReplicaSet, or a change in the counts), and
// when a rollout goes progressDeadlineSeconds without moving it turns
// False with ProgressDeadlineExceeded. A rollout that completes says
// NewReplicaSetAvailable.
func (c *Controller) syncStatus(ctx context.Context, s *state) error {
	d := s.d
	next := &meridianv1.DeploymentStatus{ObservedGeneration: d.GetMetadata().GetGeneration()}
	specTotal := int32(0)
	for _, rs := range s.rss {
		st := rs.GetStatus()
		next.Replicas += st.GetReplicas()
		next.ReadyReplicas += st.GetReadyReplicas()
		next.AvailableReplicas += st.GetAvailableReplicas()
		specTotal += replicas(rs)
	}
	if s.newRS != nil {
		next.UpdatedReplicas = s.newRS.GetStatus().GetReplicas()
	}
	next.UnavailableReplicas = max(0, specTotal-next.AvailableReplicas)

	prev := d.GetStatus()
	conds := prev.GetConditions()
	if next.AvailableReplicas >= s.desired-s.unavail {
		conds = podutil.SetCondition(conds, &meridianv1.Condition{Type: ConditionAvailable, Status: podutil.ConditionTrue,
			Reason: ReasonMinimumReplicasAvailable, Message: "Deployment has minimum availability."}, s.now)
	} else {
		conds = podutil.SetCondition(conds, &meridianv1.Condition{Type: ConditionAvailable, Status: podutil.ConditionFalse,
			Reason: ReasonMinimumReplicasUnavailable, Message: "Deployment does not have minimum availability."}, s.now)
	}
	conds, wait := progressing(s, prev, next, conds)
	next.Conditions = conds
	if wait > 0 {
		c.ctrl.Queue.AddAfter(controller.Key(d), wait)
	}
	rev := ""
	if s.newRS != nil {
		rev = strconv.FormatInt(revision(s.newRS), 10)
	}
	return c.writeStatus(ctx, d, next, rev)
}

// progressing sets the Progressing condition and says when to look again
// for the progress deadline (0: no need).
func progressing(s *state, prev, next *meridianv1.DeploymentStatus, conds []*meridianv1.Condition) ([]*meridianv1.Condition, time.Duration) {
	name := ""
	if s.newRS != nil {
		name = s.newRS.GetMetadata().GetName()
	}
	set := func(status, reason, msg string, moved bool) []*meridianv1.Condition {
		c := &meridianv1.Condition{Type: ConditionProgressing, Status: status, Reason: reason, Message: msg}
		old := podutil.FindCondition(conds, ConditionProgressing)
		if moved || old == nil || old.GetStatus() != status {
			c.LastTransitionTime = timestamppb.New(s.now)
			return podutil.ReplaceCondition(conds, c)
		}
		return podutil.SetCondition(conds, c, s.now)
	}
	switch {
	case s.d.GetSpec().GetPaused():
		return set("Unknown", ReasonDeploymentPaused, "Deployment is paused", false), 0
	case complete(s):
		return set(podutil.ConditionTrue, ReasonNewReplicaSetAvailable, fmt.Sprintf("ReplicaSet %q has successfully progressed.", name), false), 0
	}
	moved := s.created || prev.GetUpdatedReplicas() != next.GetUpdatedReplicas() || prev.GetReplicas() != next.GetReplicas() ||
		prev.GetAvailableReplicas() != next.GetAvailableReplicas() || prev.GetReadyReplicas() != next.GetReadyReplicas() ||
		prev.GetObservedGeneration() != next.GetObservedGeneration()
	deadline := time.Duration(DefaultProgressDeadlineSeconds) * time.Second
	if p := s.d.GetSpec().ProgressDeadlineSeconds; p != nil {
		deadline = time.Duration(*p) * time.Second
	}
	old := podutil.FindCondition(conds, ConditionProgressing)
	if !moved && old != nil && old.GetLastTransitionTime() != nil {
		if left := old.GetLastTransitionTime().AsTime().Add(deadline).Sub(s.now); left <= 0 {
			return set(podutil.ConditionFalse, ReasonProgressDeadlineExceeded, fmt.Sprintf("ReplicaSet %q has timed out progressing.", name), false), 0
		} else if old.GetStatus() == podutil.ConditionTrue {
			return conds, left
		}
	}
	reason, msg := ReasonReplicaSetUpdated, fmt.Sprintf("ReplicaSet %q is progressing.", name)
	if s.created {
		reason, msg = ReasonNewReplicaSetCreated, fmt.Sprintf("Created new replica set %q", name)
	}
	return set(podutil.ConditionTrue, reason, msg, true), deadline
}

// writeStatus writes want as d's status, and rev (if not empty) as its
// revision annotation, unless both are as stored.
func (c *Controller) writeStatus(ctx context.Context, d *meridianv1.Deployment, want *meridianv1.DeploymentStatus, rev string) error {
	setRev := rev != "" && rev != "0" && d.GetMetadata().GetAnnotations()[RevisionAnnotation] != rev
	if proto.Equal(d.GetStatus(), want) && !setRev {
		return nil
	}
	uid := d.GetMetadata().GetUid()
	_, err := c.st.Update(ctx, deployKind, d.GetMetadata().GetNamespace(), d.GetMetadata().GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != uid {
			return storage.ErrNotFound
		}
		o.(*meridianv1.Deployment).Status = want
		if setRev {
			md := resource.Meta(o)
			if md.Annotations == nil {
				md.Annotations = map[string]string{}
			}
			md.Annotations[RevisionAnnotation] = rev
		}
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to update the status of deployment %s: %w", d.GetMetadata().GetName(), err)
	}
	return nil
}
