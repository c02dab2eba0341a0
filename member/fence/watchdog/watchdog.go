package watchdog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/meridian-fed/meridian/member/runtime/procstat"
)

// The environment of a watchdog process (see Spawn): a process started with
// EnvState set runs the watchdog instead of its own main.
const (
	EnvState  = "MERIDIAN_FENCE_WATCHDOG_STATE"
	EnvParent = "MERIDIAN_FENCE_WATCHDOG_PARENT"
	EnvPoll   = "MERIDIAN_FENCE_WATCHDOG_POLL"
)

// DefaultPoll is how often the watchdog reads the state file and checks
// its parent. It sleeps no later than the deadline, so it kills within
// scheduling latency of it; Poll only bounds how late it sees a new
// deadline or list, and how long it outlives its agent.
const DefaultPoll = 100 * time.Millisecond

func init() {
	// A re-executed binary (Spawn) runs the watchdog and nothing else. This
	// runs before main and TestMain, in whatever binary links the agent.
	if path := os.Getenv(EnvState); path != "" {
		os.Exit(MainFromEnv())
	}
}

// MainFromEnv runs the watchdog configured by EnvState, EnvParent and
// EnvPoll, logging to stderr, and returns the exit status.
func MainFromEnv() int {
	parent, _ := strconv.Atoi(os.Getenv(EnvParent))
	poll, _ := time.ParseDuration(os.Getenv(EnvPoll))
	return Main(os.Getenv(EnvState), parent, poll, os.Stderr)
}

// Main runs the watchdog over the state file at path until its parent
// (the process parent, 0: whatever parent it has now) is gone or it gets
// SIGTERM/SIGINT, and returns the exit status. poll 0 means DefaultPoll.
func Main(path string, parent int, poll time.Duration, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "fence-watchdog", "pid", os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, Config{StateFile: path, Parent: parent, Poll: poll, Log: log}); err != nil {
		log.Error("fence watchdog failed", "err", err)
		return 1
	}
	return 0
}

// Config configures Run.
type Config struct {
	// StateFile is the file the agent publishes (Publisher). Required.
	StateFile string
	// Parent is the agent's PID: the watchdog kills the listed groups and
	// returns when its parent process is no longer Parent. 0: the parent
	// it has when Run starts.
	Parent int
	// Poll is how often it reads the file (default DefaultPoll).
	Poll time.Duration
	// Log receives a line for every group killed (default: discarded).
	Log *slog.Logger
}

// Run watches the state file until ctx ends (nil) or the parent is gone
// (nil, after killing the listed groups: nothing of the agent's fenced pods
// outlives it). When the deadline of the state has passed, it sends SIGKILL
// to every listed process group — there is no SIGTERM first: the deadline
// is the last moment — and logs it, then goes on watching. A state file
// that cannot be read leaves the last state read in force.
func Run(ctx context.Context, cfg Config) error {
	if cfg.StateFile == "" {
		return errors.New("fence watchdog: no state file")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Parent == 0 {
		cfg.Parent = os.Getppid()
	}
	w := &watcher{cfg: cfg, killed: map[Group]bool{}}
	w.log("fence watchdog started", "state", cfg.StateFile, "agent", cfg.Parent)
	for {
		if os.Getppid() != cfg.Parent {
			w.read()
			w.killAll("the agent is gone")
			w.log("fence watchdog stopping: the agent is gone", "agent", cfg.Parent)
			return nil
		}
		w.read()
		now := Now()
		wait := cfg.Poll
		if len(w.st.Groups) > 0 {
			if w.st.Expired(now) {
				w.killAll(fmt.Sprintf("the agent did not extend the fence deadline (%s ago)", time.Duration(now-w.st.Deadline).Round(time.Millisecond)))
			} else {
				wait = min(wait, time.Duration(w.st.Deadline-now))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

type watcher struct {
	cfg     Config
	st      State
	readErr string
	// killed holds the groups killed under the current deadline, so that
	// each is logged once; a new deadline clears it.
	killed   map[Group]bool
	deadline int64
}

func (w *watcher) log(msg string, args ...any) { w.cfg.Log.Info(msg, args...) }

func (w *watcher) read() {
	st, err := ReadState(w.cfg.StateFile)
	if err != nil {
		if e := err.Error(); e != w.readErr {
			w.readErr = e
			if !errors.Is(err, os.ErrNotExist) {
				w.cfg.Log.Warn("failed to read the state file; the last state read stays in force", "err", err)
			}
		}
		return
	}
	w.readErr = ""
	w.st = st
	if st.Deadline != w.deadline {
		w.deadline = st.Deadline
		clear(w.killed)
	}
}

// killAll sends SIGKILL to every listed group. A group already killed gets
// it again (a process it forked meanwhile dies too), but is logged once.
func (w *watcher) killAll(why string) {
	for _, g := range w.st.Groups {
		found, err := killGroup(g)
		if w.killed[g] {
			continue
		}
		w.killed[g] = true
		switch {
		case err != nil:
			w.cfg.Log.Error("failed to kill a fenced pod's process group", "pgid", g.PGID, "pod", g.Pod, "container", g.Container, "err", err)
		case found:
			w.cfg.Log.Warn("killed a fenced pod's process group (SIGKILL)", "reason", why, "pgid", g.PGID, "pod", g.Pod, "container", g.Container)
		}
	}
}

// killGroup sends SIGKILL to group g unless its ID now belongs to another
// process: a live process whose PID is the group's ID but whose start time
// is not the leader's means the number was reused, which the kernel does
// only once the whole group is gone. It reports whether the group existed.
func killGroup(g Group) (bool, error) {
	if g.PGID <= 1 {
		return false, fmt.Errorf("refusing process group %d", g.PGID)
	}
	if g.Start != 0 {
		if st, err := procstat.Read(g.PGID); err == nil && !st.Zombie() && st.StartTime != g.Start {
			return false, nil
		}
	}
	if err := syscall.Kill(-g.PGID, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return false, nil
		}
		return false, fmt.Errorf("failed to send SIGKILL to process group %d: %w", g.PGID, err)
	}
	return true, nil
}

// StartTime is process pid's start time in clock ticks since boot, as
// Group.Start wants it.
func StartTime(pid int) (uint64, error) {
	st, err := procstat.Read(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTime, nil
}
