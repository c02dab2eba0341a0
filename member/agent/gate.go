package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/runtime"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Gate decides whether pods may run on the node: the member's singleton
// fencing (member/fence) implements it.
type Gate interface {
	// Allow reports whether pod may run now, and why not.
	Allow(pod *meridianv1.Pod) (ok bool, reason string)
	// StopGrace bounds the grace period of a pod the gate stops.
	StopGrace() time.Duration
	// Subscribe registers f, called whenever Allow's answers may have
	// changed; f does not block.
	Subscribe(f func())
}

// ReasonFenced is the status reason (and event) of a pod the gate stopped
// or holds back.
const ReasonFenced = "Fenced"

// RunsAny reports whether the agent runs (or is stopping) a pod for which
// pred holds. It first waits until every start decided under the gate's
// earlier answers has been made, so a pod the gate refuses from now on and
// that RunsAny does not report is not running and will not start. A
// running pod no longer in the cache counts as matching.
//
// It never blocks for long (the member's lease renewals call it): when
// pods are being started or stopped for more than about 100ms it answers
// true, and the caller asks again later.
func (a *Agent) RunsAny(pred func(*meridianv1.Pod) bool) bool {
	if !a.barrier(100 * time.Millisecond) {
		return true
	}
	a.mu.Lock()
	keys := make([]string, 0, len(a.running))
	for k := range a.running {
		keys = append(keys, k)
	}
	a.mu.Unlock()
	for _, k := range keys {
		ns, name := controller.SplitKey(k)
		o, ok := a.pods.Get(ns, name)
		if !ok || pred(o.(*meridianv1.Pod)) {
			return true
		}
	}
	return false
}

// barrier waits until no start or stop decided under earlier gate answers
// is under way, for at most d.
func (a *Agent) barrier(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !a.gateMu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	a.gateMu.Unlock()
	return true
}

// requeueAll looks at every pod of the node again.
func (a *Agent) requeueAll() {
	for _, o := range a.pods.List("", nil) {
		if o.(*meridianv1.Pod).GetSpec().GetNodeName() == a.node.Name {
			a.ctrl.Queue.Add(controller.Key(o))
		}
	}
}

// fence stops a pod the gate forbids (within the gate's grace at most) and
// says so in its status; it does not start it.
func (a *Agent) fence(ctx context.Context, key string, pod *meridianv1.Pod, cur runningPod, isRunning bool, reason string) error {
	if isRunning {
		start := time.Now()
		grace := min(cur.grace, a.gate.StopGrace())
		if err := a.stop(ctx, key, cur, grace); err != nil {
			return err
		}
		a.log.Warn("stopped a fenced pod", "pod", key, "reason", reason, "took", time.Since(start))
		if a.recorder != nil {
			a.recorder.Eventf(ctx, pod, controller.EventWarning, ReasonFenced, "Stopped: %s", reason)
		}
	}
	st := pod.GetStatus()
	if st.GetReason() == ReasonFenced && st.GetPhase() == runtime.PhasePending && st.GetMessage() == reason {
		return nil
	}
	ns, name := controller.SplitKey(key)
	uid := pod.GetMetadata().GetUid()
	_, err := a.store.Update(ctx, podKind, ns, name, func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		if p.GetMetadata().GetUid() != uid {
			return errStale
		}
		var conds []*meridianv1.Condition
		for _, c := range p.GetStatus().GetConditions() {
			if c.GetType() == "PodScheduled" {
				conds = append(conds, c)
			}
		}
		p.Status = &meridianv1.PodStatus{Phase: runtime.PhasePending, Reason: ReasonFenced, Message: reason,
			Conditions: conds, PodIp: p.GetStatus().GetPodIp(), HostIp: p.GetStatus().GetHostIp()}
		return nil
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errStale) {
		return fmt.Errorf("failed to report fenced pod %s: %w", key, err)
	}
	return nil
}
