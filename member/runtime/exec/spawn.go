package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	goruntime "runtime"
	"syscall"

	"github.com/meridian-fed/meridian/member/runtime"
)

// spawner starts every process of the driver from one goroutine locked to
// one OS thread.
//
// Why: each process is started with Pdeathsig=SIGKILL so that it dies with
// the agent, but Linux ties the death signal to the *thread* that forked the
// child, not to the process. Go moves goroutines between threads and retires
// idle threads, which would kill children at random. A goroutine that locks
// its thread and never unlocks keeps that thread alive until the goroutine
// returns, i.e. until Close: then the thread exits and the kernel kills
// whatever is still running, which is exactly what Close wants.
type spawner struct {
	reqs chan spawnRequest
	// quit is closed by close to stop the loop.
	quit chan struct{}
	// done is closed when the loop has returned.
	done chan struct{}
}

type spawnRequest struct {
	cmd    *osexec.Cmd
	result chan error
}

// newSpawner starts the spawner's goroutine; its owner must call close.
func newSpawner() *spawner {
	s := &spawner{
		reqs: make(chan spawnRequest),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	// Never unlocked on purpose: see the type's comment.
	goruntime.LockOSThread()
	defer close(s.done)
	for {
		select {
		case r := <-s.reqs:
			r.result <- r.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

// start starts cmd from the spawner's thread, in its own process group and
// with Pdeathsig=SIGKILL, and returns cmd.Start's error.
func (s *spawner) start(cmd *osexec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	r := spawnRequest{cmd: cmd, result: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-s.quit:
		return runtime.ErrClosed
	}
	if err := <-r.result; err != nil {
		return fmt.Errorf("failed to start %s: %w", cmd.Path, err)
	}
	return nil
}

// close stops the spawner and waits for its goroutine to return.
func (s *spawner) close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// signalGroup sends sig to the process group pgid. A group that no longer
// exists is not an error.
//
// A process group's ID stays allocated while any member lives, so the kernel
// cannot give the number to a new process in the meantime; signalling a
// group right after its leader was reaped is therefore safe unless the
// whole group is gone and the number was reused in between, which needs a
// full wrap of the PID space.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("failed to signal process group %d: refusing a group ID below 2", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("failed to send %s to process group %d: %w", sig, pgid, err)
	}
	return nil
}

// exitStatus converts a process state to a container exit code: the exit
// status, or 128+N for a process killed by signal N, as shells and container
// runtimes report it.
func exitStatus(ps *os.ProcessState) int32 {
	if ps == nil {
		return 128 + int32(syscall.SIGKILL)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ps.ExitCode())
}
