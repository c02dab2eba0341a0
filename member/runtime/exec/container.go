package exec

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	"github.com/meridian-fed/meridian/member/runtime/procstat"
)

// runResult is how one run of a container ended.
type runResult struct {
	exitCode int32
	// stopped means the pod was asked to stop: no restart follows.
	stopped bool
	// ranFor is how long the process ran.
	ranFor time.Duration
}

// supervise runs container c of pod p until it ends for good under policy
// or the pod is stopped, restarting it with crash-loop back-off. It returns
// the last run's result. Its caller (runPod) owns it; p.stopCh stops it.
func (d *Driver) supervise(p *pod, c *container, policy string) runResult {
	consecutive := 0
	for restarts := int32(0); ; restarts++ {
		res := d.runOnce(p, c, restarts)
		if res.stopped || !runtime.ShouldRestart(policy, res.exitCode) {
			return res
		}
		if res.ranFor >= d.cfg.BackoffReset {
			consecutive = 0
		}
		consecutive++
		if delay := d.backoff.Delay(consecutive); delay > 0 {
			d.update(p, func() {
				// The message keeps why the last run ended: there is no
				// lastState field to hold it.
				last := c.st.reason
				if c.st.message != "" {
					last += ": " + c.st.message
				}
				c.st.state = runtime.StateWaiting
				c.st.reason = runtime.ReasonCrashLoopBackOff
				c.st.message = fmt.Sprintf("back-off %s restarting failed container %q; last run: %s", delay, c.spec.GetName(), last)
			})
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-p.stopCh:
				t.Stop()
				return runResult{exitCode: res.exitCode, stopped: true}
			}
		}
	}
}

// runOnce starts container c's process, watches it and its probes until it
// exits, is killed for failing a probe, or the pod is stopped, and records
// the outcome in c's status. restarts is how many times c was restarted
// before this run; the status shows it from the moment the run starts.
func (d *Driver) runOnce(p *pod, c *container, restarts int32) runResult {
	select {
	case <-p.stopCh:
		return runResult{stopped: true}
	default:
	}
	env := containerEnv(d.cfg.BaseEnv, &p.req, p.dir, c.spec)
	dir := workingDir(p.dir, c.spec)
	ref := PodRef{UID: p.req.uid, Namespace: p.req.namespace, Name: p.req.name}
	var err error
	if d.cfg.Fence != nil {
		err = d.cfg.Fence.Starting(ref, c.spec.GetName())
	}
	var cmd *osexec.Cmd
	if err == nil {
		cmd, err = d.command(p, c, env, dir, restarts)
	}
	if err == nil {
		err = d.spawner.start(cmd)
		if f, ok := cmd.Stdout.(*os.File); ok {
			f.Close() // the child has its own descriptor
		}
	}
	if err != nil {
		d.cfg.Logger.Warn("container failed to start", "pod", p.req.uid, "container", c.spec.GetName(), "err", err)
		now := time.Now()
		d.update(p, func() {
			c.st = containerState{
				state: runtime.StateTerminated, reason: runtime.ReasonStartError, message: err.Error(),
				exitCode: 128, restarts: restarts, startedAt: now, finishedAt: now,
			}
		})
		return runResult{exitCode: 128}
	}
	pid := cmd.Process.Pid
	if d.cfg.Fence != nil {
		var start uint64
		if st, err := procstat.Read(pid); err == nil {
			start = st.StartTime
		}
		d.cfg.Fence.Started(ref, c.spec.GetName(), pid, start)
	}
	if err := writePIDFile(pidPath(p.dir, c.spec.GetName()), pid); err != nil {
		d.cfg.Logger.Warn("failed to record pid", "pod", p.req.uid, "container", c.spec.GetName(), "err", err)
	}
	started := time.Now()
	d.update(p, func() {
		c.st = containerState{
			state: runtime.StateRunning, restarts: restarts, pid: pid, startedAt: started,
			ready: c.spec.GetReadinessProbe() == nil && c.spec.GetStartupProbe() == nil,
		}
	})

	// The wait goroutine ends when the process exits, which terminate
	// guarantees on every path below.
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()
	probeCtx, cancelProbes := context.WithCancel(context.Background())
	unhealthy := make(chan string, 1)
	var probes sync.WaitGroup
	d.startProbes(probeCtx, &probes, p, c, env, dir, unhealthy)

	var killedFor string
	stopped := false
	select {
	case <-waitCh:
	case killedFor = <-unhealthy:
		d.cfg.Logger.Info("killing unhealthy container", "pod", p.req.uid, "container", c.spec.GetName(), "reason", killedFor)
		d.terminate(p, pid, time.Now().Add(runtime.GracePeriod(p.req.spec, -1)), waitCh)
	case <-p.stopCh:
		stopped = true
		d.terminate(p, pid, time.Time{}, waitCh)
	}
	cancelProbes()
	probes.Wait()
	// A container ends with its main process: kill what it left in its group.
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		d.cfg.Logger.Warn("failed to kill leftovers", "pod", p.req.uid, "container", c.spec.GetName(), "err", err)
	}
	if d.cfg.Fence != nil {
		d.cfg.Fence.Exited(ref, c.spec.GetName(), pid)
	}
	if err := os.Remove(pidPath(p.dir, c.spec.GetName())); err != nil && !os.IsNotExist(err) {
		d.cfg.Logger.Warn("failed to remove pid file", "pod", p.req.uid, "err", err)
	}
	finished := time.Now()
	code := exitStatus(cmd.ProcessState)
	d.update(p, func() {
		c.st.state = runtime.StateTerminated
		c.st.ready = false
		c.st.pid = 0
		c.st.exitCode = code
		c.st.finishedAt = finished
		switch {
		case killedFor != "":
			c.st.reason, c.st.message = runtime.ReasonUnhealthy, killedFor
		case code == 0:
			c.st.reason, c.st.message = runtime.ReasonCompleted, ""
		default:
			c.st.reason, c.st.message = runtime.ReasonError, fmt.Sprintf("exited with status %d", code)
		}
	})
	return runResult{exitCode: code, stopped: stopped, ranFor: finished.Sub(started)}
}

// command builds the process of one run of c: expanded argv, environment,
// working directory, and the log file (opened for append, a marker line
// written) as stdout and stderr.
func (d *Driver) command(p *pod, c *container, env *envList, dir string, restarts int32) (*osexec.Cmd, error) {
	argv := commandLine(c.spec, env)
	if c.spec.GetWorkingDir() == "" || !isAbs(c.spec.GetWorkingDir()) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("failed to create working dir: %w", err)
		}
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return nil, fmt.Errorf("failed to find command: %w", err)
	}
	logf, err := os.OpenFile(logPath(p.dir, c.spec.GetName()), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open log: %w", err)
	}
	if _, err := fmt.Fprintf(logf, "--- meridian: starting container %q (restart %d) at %s ---\n",
		c.spec.GetName(), restarts, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		logf.Close()
		return nil, fmt.Errorf("failed to write log marker: %w", err)
	}
	return &osexec.Cmd{
		Path:   path,
		Args:   argv,
		Env:    env.environ(),
		Dir:    dir,
		Stdout: logf,
		Stderr: logf,
	}, nil
}

// terminate sends SIGTERM to the process group pgid, waits for its leader to
// exit until the kill deadline (base, or the pod's stop deadline if earlier;
// a later Stop may bring it forward), then sends SIGKILL, and returns when
// the leader has exited (waitCh has delivered).
func (d *Driver) terminate(p *pod, pgid int, base time.Time, waitCh <-chan error) {
	if err := signalGroup(pgid, syscall.SIGTERM); err != nil {
		d.cfg.Logger.Warn("failed to terminate", "pgid", pgid, "err", err)
	}
	for {
		deadline, changed := p.killDeadline(base)
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-waitCh:
			t.Stop()
			return
		case <-changed:
			t.Stop()
			continue
		case <-t.C:
		}
		break
	}
	if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
		d.cfg.Logger.Warn("failed to kill", "pgid", pgid, "err", err)
	}
	<-waitCh
}

func isAbs(path string) bool { return len(path) > 0 && path[0] == '/' }
