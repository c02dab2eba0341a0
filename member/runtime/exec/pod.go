package exec

import (
	"fmt"
	"sync"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// podRequest is the driver's own copy of a runtime.PodRequest.
type podRequest struct {
	uid, namespace, name, ip string
	spec                     *meridianv1.PodSpec
	env                      []string
	containerEnv             map[string][]string
}

// pod is one pod run by the driver. Its goroutine, runPod, owns the
// containers' supervisors; stopCh is their stop signal and done tells that
// they have all returned.
type pod struct {
	req       podRequest
	dir       string
	startTime time.Time
	// inits and containers are fixed at creation; the status fields of
	// their elements are guarded by mu.
	inits      []*container
	containers []*container

	// stopCh is closed by requestStop.
	stopCh chan struct{}
	// done is closed when no process of the pod runs any more and none will.
	done chan struct{}

	mu sync.Mutex
	// stopping is set by requestStop; guarded by mu.
	stopping bool
	// stopDeadline is when the stop in progress turns to SIGKILL; guarded
	// by mu.
	stopDeadline time.Time
	// regrace is closed, and replaced, whenever stopDeadline moves; guarded
	// by mu.
	regrace chan struct{}
	// initialized is set once every init container has succeeded; guarded
	// by mu.
	initialized bool
	// reason and message explain a pod-level state (init progress or
	// failure); guarded by mu.
	reason, message string
	// failed is set when the pod can make no progress (an init container
	// failed under restartPolicy Never); guarded by mu.
	failed bool
	// ready and readySince track the Ready condition; guarded by mu.
	ready      bool
	readySince time.Time
}

// container is one container of a pod and its latest observed status.
type container struct {
	spec *meridianv1.Container
	// runnable is false for a container the exec runtime cannot run (no
	// command); its status says why.
	runnable bool
	// st is guarded by the pod's mu.
	st containerState
}

// containerState is what ContainerStatus reports of one container.
type containerState struct {
	state, reason, message string
	ready                  bool
	restarts               int32
	exitCode               int32
	pid                    int
	startedAt, finishedAt  time.Time
}

func newPod(req *runtime.PodRequest, dir string) *pod {
	p := &pod{
		req: podRequest{
			uid:          req.UID,
			namespace:    req.Namespace,
			name:         req.Name,
			ip:           req.PodIP,
			spec:         cloneSpec(req.Spec),
			env:          append([]string(nil), req.Env...),
			containerEnv: make(map[string][]string, len(req.ContainerEnv)),
		},
		dir:       dir,
		startTime: time.Now(),
		stopCh:    make(chan struct{}),
		done:      make(chan struct{}),
		regrace:   make(chan struct{}),
	}
	for k, v := range req.ContainerEnv {
		p.req.containerEnv[k] = append([]string(nil), v...)
	}
	for _, c := range p.req.spec.GetInitContainers() {
		p.inits = append(p.inits, newContainer(c, runtime.ReasonPodInitializing))
	}
	waitReason := runtime.ReasonContainerCreating
	if len(p.inits) > 0 {
		waitReason = runtime.ReasonPodInitializing
	} else {
		p.initialized = true
	}
	for _, c := range p.req.spec.GetContainers() {
		p.containers = append(p.containers, newContainer(c, waitReason))
	}
	return p
}

func newContainer(spec *meridianv1.Container, waitReason string) *container {
	c := &container{spec: spec, runnable: len(spec.GetCommand()) > 0}
	c.st.state = runtime.StateWaiting
	c.st.reason = waitReason
	if !c.runnable {
		c.st.reason = runtime.ReasonImageNotSupported
		if spec.GetImage() != "" {
			c.st.message = fmt.Sprintf("container %q names image %q but no command: the exec runtime runs commands, not images; set command (and args) to the program to run",
				spec.GetName(), spec.GetImage())
		} else {
			c.st.message = fmt.Sprintf("container %q has no command: the exec runtime runs commands, not images; set command (and args) to the program to run",
				spec.GetName())
		}
	}
	return c
}

// requestStop asks the pod's containers to terminate within grace. A later
// request can shorten the grace period, never lengthen it.
func (p *pod) requestStop(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(grace)
	if p.stopping && !deadline.Before(p.stopDeadline) {
		return
	}
	if !p.stopping {
		p.stopping = true
		close(p.stopCh)
	}
	p.stopDeadline = deadline
	close(p.regrace)
	p.regrace = make(chan struct{})
}

// killDeadline returns when a terminating container must be killed: the
// earlier of base (zero for none) and the deadline of the pod's stop, if one
// is in progress; and a channel closed when that may change.
func (p *pod) killDeadline(base time.Time) (time.Time, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dl := base
	if p.stopping && (dl.IsZero() || p.stopDeadline.Before(dl)) {
		dl = p.stopDeadline
	}
	return dl, p.regrace
}

// noteReadyLocked recomputes the pod's readiness and records when it
// changed. p.mu must be held.
func (p *pod) noteReadyLocked(now time.Time) {
	ready := p.initialized && !p.failed && len(p.containers) > 0
	for _, c := range p.containers {
		if !c.st.ready {
			ready = false
		}
	}
	if ready != p.ready || p.readySince.IsZero() {
		p.ready = ready
		p.readySince = now
	}
}

// status returns a fresh PodStatus.
func (p *pod) status() *meridianv1.PodStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &meridianv1.PodStatus{
		PodIp:     p.req.ip,
		StartTime: timestamppb.New(p.startTime),
		Reason:    p.reason,
		Message:   p.message,
	}
	for _, c := range p.containers {
		st.ContainerStatuses = append(st.ContainerStatuses, c.st.proto(c.spec.GetName()))
		if !c.runnable && st.Message == "" {
			st.Reason, st.Message = c.st.reason, c.st.message
		}
	}
	switch {
	case p.failed:
		st.Phase = runtime.PhaseFailed
	case !p.initialized:
		st.Phase = runtime.PhasePending
	default:
		st.Phase = runtime.Phase(p.req.spec.GetRestartPolicy(), st.ContainerStatuses)
	}
	st.Conditions = runtime.Conditions(p.initialized, p.ready && st.Phase == runtime.PhaseRunning, p.readySince)
	return st
}

func (s *containerState) proto(name string) *meridianv1.ContainerStatus {
	cs := &meridianv1.ContainerStatus{
		Name:         name,
		Ready:        s.ready,
		RestartCount: s.restarts,
		State:        s.state,
		Reason:       s.reason,
		Message:      s.message,
		ExitCode:     s.exitCode,
		Pid:          int32(s.pid),
	}
	if !s.startedAt.IsZero() {
		cs.StartedAt = timestamppb.New(s.startedAt)
	}
	if !s.finishedAt.IsZero() {
		cs.FinishedAt = timestamppb.New(s.finishedAt)
	}
	return cs
}

// runPod runs the pod's init containers one after another, each to
// success, then supervises its containers until they are all done. It is
// the pod's goroutine: it closes p.done when it returns.
func (d *Driver) runPod(p *pod) {
	defer close(p.done)
	policy := p.req.spec.GetRestartPolicy()
	// Init containers are retried on failure unless the policy is Never,
	// as in Kubernetes: Always means OnFailure for them.
	initPolicy := runtime.RestartOnFailure
	if policy == runtime.RestartNever {
		initPolicy = runtime.RestartNever
	}
	for i, c := range p.inits {
		d.update(p, func() {
			p.reason = runtime.ReasonPodInitializing
			p.message = fmt.Sprintf("running init container %q (%d of %d)", c.spec.GetName(), i+1, len(p.inits))
		})
		if !c.runnable {
			d.update(p, func() { p.reason, p.message = c.st.reason, c.st.message })
			return
		}
		res := d.supervise(p, c, initPolicy)
		if res.stopped {
			return
		}
		if res.exitCode != 0 {
			d.update(p, func() {
				p.failed = true
				p.reason = runtime.ReasonInitFailed
				p.message = fmt.Sprintf("init container %q exited with status %d", c.spec.GetName(), res.exitCode)
			})
			return
		}
	}
	if len(p.inits) > 0 {
		d.update(p, func() {
			p.initialized = true
			p.reason, p.message = "", ""
			for _, c := range p.containers {
				if c.runnable {
					c.st.reason = runtime.ReasonContainerCreating
				}
			}
		})
	}
	var wg sync.WaitGroup
	for _, c := range p.containers {
		if !c.runnable {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.supervise(p, c, policy)
		}()
	}
	wg.Wait()
}
