package watchdog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osexec "os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Deadline is the watchdog's deadline for a lease the member holds until
// until (hubsync.Lease: the moment its agents begin stopping the singleton
// pods) with the member's margin m: until + 3m/4. The agent sends SIGTERM
// at until and SIGKILL at until + m/2, so it normally wins; the watchdog
// kills a quarter margin later, which still leaves m/4 of the member's
// margin before the lease ends (docs/failover.md, "Fencing").
func Deadline(until time.Time, margin time.Duration) time.Time {
	return until.Add(margin * 3 / 4)
}

// Publisher is the agent's side of the state file: the current deadline
// and the fenced pods' process groups. Every change rewrites the file
// (atomically) before the call returns. It is safe for concurrent use.
type Publisher struct {
	w *Writer

	mu sync.Mutex
	st State
}

// NewPublisher writes a state file at path for this process, with no
// deadline and no groups.
func NewPublisher(path string) (*Publisher, error) {
	p := &Publisher{w: NewWriter(path), st: State{Agent: os.Getpid()}}
	if err := p.w.Write(p.st); err != nil {
		return nil, err
	}
	return p, nil
}

// Path is the state file's path.
func (p *Publisher) Path() string { return p.w.Path() }

// Extend moves the deadline to t (a time with a monotonic reading) if that
// is later than the one published.
func (p *Publisher) Extend(t time.Time) error {
	d := At(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	if d <= p.st.Deadline {
		return nil
	}
	p.st.Deadline = d
	return p.w.Write(p.st)
}

// Remaining is how long the published deadline is ahead (≤ 0: passed, or
// none).
func (p *Publisher) Remaining() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.Deadline == 0 {
		return 0
	}
	return time.Duration(p.st.Deadline - Now())
}

// Add lists a fenced pod's process group.
func (p *Publisher) Add(g Group) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.st.Groups {
		if o.PGID == g.PGID && o.Start == g.Start {
			return nil
		}
	}
	p.st.Groups = append(p.st.Groups, g)
	return p.w.Write(p.st)
}

// Remove takes a group off the list (its processes are dead).
func (p *Publisher) Remove(pgid int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, o := range p.st.Groups {
		if o.PGID == pgid {
			p.st.Groups = append(p.st.Groups[:i:i], p.st.Groups[i+1:]...)
			return p.w.Write(p.st)
		}
	}
	return nil
}

// Groups returns the listed groups.
func (p *Publisher) Groups() []Group {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Group(nil), p.st.Groups...)
}

// SpawnConfig configures Spawn.
type SpawnConfig struct {
	// StateFile is the Publisher's file. Required.
	StateFile string
	// Command is the program and arguments to run; the environment set by
	// Spawn makes any binary that links this package run the watchdog.
	// Default: this executable, `fence-watchdog --state FILE`.
	Command []string
	// Poll is the watchdog's poll interval (default DefaultPoll).
	Poll time.Duration
	// Stderr receives the watchdog's log (default os.Stderr).
	Stderr io.Writer
	// Restart is the delay before starting the watchdog again after it
	// exited on its own (default 1 s).
	Restart time.Duration
	// Log receives the agent's own lines about the watchdog.
	Log *slog.Logger
}

// Process is a running watchdog, started again whenever it exits until
// Close.
type Process struct {
	cfg  SpawnConfig
	argv []string
	env  []string

	mu      sync.Mutex
	cmd     *osexec.Cmd // the current process; nil between two
	closed  bool
	running bool
	quit    chan struct{}
	done    chan struct{}
}

// Spawn starts the watchdog for this process (its parent) in its own
// process group — a signal to the agent's group (a terminal's ^C or ^Z)
// does not reach it — and keeps it running until Close.
func Spawn(cfg SpawnConfig) (*Process, error) {
	if cfg.StateFile == "" {
		return nil, errors.New("fence watchdog: no state file")
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Restart <= 0 {
		cfg.Restart = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	argv := cfg.Command
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("fence watchdog: cannot find this executable: %w", err)
		}
		argv = []string{exe, "fence-watchdog", "--state", cfg.StateFile}
	}
	env := append(os.Environ(), EnvState+"="+cfg.StateFile, EnvParent+"="+strconv.Itoa(os.Getpid()))
	if cfg.Poll > 0 {
		env = append(env, EnvPoll+"="+cfg.Poll.String())
	}
	p := &Process{cfg: cfg, argv: argv, env: env, quit: make(chan struct{}), done: make(chan struct{})}
	cmd, err := p.start()
	if err != nil {
		return nil, err
	}
	go p.supervise(cmd)
	return p, nil
}

func (p *Process) start() (*osexec.Cmd, error) {
	cmd := osexec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = p.env
	cmd.Stdout = p.cfg.Stderr
	cmd.Stderr = p.cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("fence watchdog: closed")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the fence watchdog: %w", err)
	}
	p.cmd, p.running = cmd, true
	return cmd, nil
}

func (p *Process) supervise(cmd *osexec.Cmd) {
	defer close(p.done)
	for {
		err := cmd.Wait()
		p.mu.Lock()
		p.cmd, p.running = nil, false
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		p.cfg.Log.Error("the fence watchdog exited; starting it again", "err", err, "in", p.cfg.Restart)
		for {
			select {
			case <-p.quit:
				return
			case <-time.After(p.cfg.Restart):
			}
			c, err := p.start()
			if err == nil {
				cmd = c
				break
			}
			p.cfg.Log.Error("failed to start the fence watchdog", "err", err)
		}
	}
}

// Running reports whether a watchdog process runs now.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Pid is the current watchdog's PID (0 if none runs).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Close stops the watchdog (SIGTERM: it leaves the pods alone) and waits
// for it. Stop the fenced pods first.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	close(p.quit)
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.mu.Lock()
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
		}
		p.mu.Unlock()
		<-p.done
	}
	return nil
}
