package sim

import (
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Salts of Engine.random, one per decision.
const (
	saltFailure uint64 = 0x6661696c // "fail"
	saltJitter  uint64 = 0x6a697474 // "jitt"
)

// pod is the compact record of one simulated pod. All its containers share
// one simulated state. Every field is guarded by Engine.mu.
type pod struct {
	uid   string
	ip    string
	node  *Node
	names []string // interned container names
	// prev and next link the pods of one node.
	prev, next *pod
	// stopping is non-nil while the pod stops; closed when it is gone.
	stopping chan struct{}

	created, startedAt, finishedAt int64 // unix nanoseconds, 0 if never
	stopAt                         int64 // when a stop in progress ends

	restarts    int32
	graceSecs   int32 // -1: not set in the spec
	gen         uint32
	attempt     uint32 // start attempts so far, minus one
	consecutive uint32 // consecutive failures, for back-off

	policy   uint8 // index into policies
	state    uint8 // index into states
	reason   uint8 // index into reasons
	phase    uint8 // index into phases
	exitCode uint8
	ready    bool
	removed  bool
}

var (
	policies = [...]string{runtime.RestartAlways, runtime.RestartOnFailure, runtime.RestartNever}
	states   = [...]string{runtime.StateWaiting, runtime.StateRunning, runtime.StateTerminated}
	reasons  = [...]string{runtime.ReasonContainerCreating, "", runtime.ReasonCrashLoopBackOff, runtime.ReasonCompleted, runtime.ReasonError}
	phases   = [...]string{runtime.PhasePending, runtime.PhaseRunning, runtime.PhaseSucceeded, runtime.PhaseFailed}
)

// Indexes into the tables above.
const (
	policyAlways, policyOnFailure, policyNever = 0, 1, 2
	stWaiting, stRunning, stTerminated         = 0, 1, 2
	rsCreating, rsNone, rsBackOff, rsCompleted = 0, 1, 2, 3
	rsError                                    = 4
	phPending, phRunning, phSucceeded          = 0, 1, 2
	phFailed                                   = 3
)

func policyIndex(p string) uint8 {
	switch p {
	case runtime.RestartOnFailure:
		return policyOnFailure
	case runtime.RestartNever:
		return policyNever
	default:
		return policyAlways
	}
}

// computePhase derives the pod's phase from its one simulated state, with
// the rules of runtime.Phase.
func (p *pod) computePhase() uint8 {
	switch p.state {
	case stRunning:
		return phRunning
	case stWaiting:
		if p.restarts > 0 || p.finishedAt != 0 {
			return phRunning // in back-off, will restart
		}
		return phPending
	default:
		if p.exitCode == 0 {
			return phSucceeded
		}
		return phFailed
	}
}

// setState moves p to a new state and keeps the engine's counts right.
// e.mu must be held.
func (e *Engine) setState(p *pod, state, reason uint8, ready bool) {
	e.countLocked(p, -1)
	p.state, p.reason, p.ready = state, reason, ready
	p.phase = p.computePhase()
	e.countLocked(p, +1)
}

// countLocked adds d to the counters p contributes to. e.mu must be held.
func (e *Engine) countLocked(p *pod, d int) {
	switch p.phase {
	case phPending:
		e.stats.Pending += d
	case phRunning:
		e.stats.Running += d
		if p.ready {
			e.stats.Ready += d
		}
	case phSucceeded:
		e.stats.Succeeded += d
	case phFailed:
		e.stats.Failed += d
	}
}

// startDelay is how long start attempt number attempt of p takes.
func (e *Engine) startDelay(p *pod) int64 {
	d := e.cfg.StartDelay
	if e.cfg.StartJitter > 0 {
		d += time.Duration(e.random(p.uid, p.attempt, saltJitter) * float64(e.cfg.StartJitter))
	}
	return int64(d)
}

// apply carries out ev at time now and reports whether p's status changed.
// e.mu must be held.
func (e *Engine) apply(ev event, now int64) bool {
	p := ev.pod
	switch ev.kind {
	case evStarted:
		if p.attempt > 0 {
			p.restarts++
		}
		p.startedAt = now
		if e.cfg.FailureRate > 0 && e.random(p.uid, p.attempt, saltFailure) < e.cfg.FailureRate {
			p.finishedAt, p.exitCode = now, 1
			e.setState(p, stTerminated, rsError, false)
			e.afterExit(p, now)
			return true
		}
		p.exitCode = 0
		e.setState(p, stRunning, rsNone, true)
		if p.policy != policyAlways && e.cfg.CompleteAfter > 0 {
			e.scheduleLocked(p, now+int64(e.cfg.CompleteAfter), evExited)
		}
	case evExited:
		p.finishedAt, p.exitCode = now, 0
		e.setState(p, stTerminated, rsCompleted, false)
		e.afterExit(p, now)
	case evRestart:
		p.attempt++
		e.setState(p, stWaiting, rsCreating, false)
		e.scheduleLocked(p, now+e.startDelay(p), evStarted)
	case evStopped:
		e.removeLocked(p)
	}
	return true
}

// afterExit applies the restart policy to a container that just exited.
// e.mu must be held.
func (e *Engine) afterExit(p *pod, now int64) {
	if !runtime.ShouldRestart(policies[p.policy], int32(p.exitCode)) {
		p.consecutive = 0
		return
	}
	p.consecutive++
	delay := e.backoff.Delay(int(p.consecutive))
	if p.exitCode == 0 {
		delay = 0 // a clean exit is no crash
	}
	if delay > 0 {
		e.setState(p, stWaiting, rsBackOff, false)
	}
	e.scheduleLocked(p, now+int64(delay), evRestart)
}

// removeLocked forgets p and releases whoever waits for it to stop. e.mu
// must be held.
func (e *Engine) removeLocked(p *pod) {
	if p.removed {
		return
	}
	e.countLocked(p, -1)
	e.stats.Pods--
	p.removed = true
	p.gen++
	delete(e.pods, p.uid)
	p.node.unlinkLocked(p)
	if p.stopping != nil {
		close(p.stopping)
	}
}

// status renders p as a PodStatus. e.mu must be held.
func (p *pod) status() *meridianv1.PodStatus {
	ts := func(ns int64) *timestamppb.Timestamp {
		if ns == 0 {
			return nil
		}
		return timestamppb.New(time.Unix(0, ns))
	}
	st := &meridianv1.PodStatus{
		Phase:     phases[p.phase],
		PodIp:     p.ip,
		StartTime: ts(p.created),
	}
	for _, name := range p.names {
		st.ContainerStatuses = append(st.ContainerStatuses, &meridianv1.ContainerStatus{
			Name:         name,
			Ready:        p.ready,
			RestartCount: p.restarts,
			State:        states[p.state],
			Reason:       reasons[p.reason],
			ExitCode:     int32(p.exitCode),
			StartedAt:    ts(p.startedAt),
			FinishedAt:   ts(p.finishedAt),
		})
	}
	since := p.created
	if p.ready {
		since = p.startedAt
	} else if p.finishedAt != 0 {
		since = p.finishedAt
	}
	st.Conditions = runtime.Conditions(true, p.ready && p.phase == phRunning, time.Unix(0, since))
	return st
}
