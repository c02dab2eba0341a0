// Package watchdog is the member's fence watchdog: a small process apart
// from the member agent, like a container shim, that kills the agent's
// fenced pods (the singleton pods the fence gate runs under the member's
// lease) when the agent has not extended their deadline in time.
//
// The agent stops its singleton pods itself when it cannot renew its lease
// (package fence, docs/failover.md "Fencing"), but only while it runs. A
// paused agent (SIGSTOP, a long stall) stops nothing, and its pods are
// separate processes that keep running: the watchdog covers that case. The
// agent publishes, in a state file (Publisher, written atomically), the
// deadline by which its fenced pods must be dead — an instant of
// CLOCK_BOOTTIME, which every process of the machine reads alike — and the
// process groups of those pods; the watchdog (Run) reads it every Poll and,
// once the deadline has passed, sends SIGKILL to every listed group. It
// goes on running: a later renewal moves the deadline again, and the agent,
// once it runs again, restarts the pods only when the fence gate lets it.
//
// The agent starts the watchdog by running its own binary again (Spawn):
// a process started with EnvState set runs the watchdog from this
// package's init and exits, whatever the binary (the meridian command, a
// test binary), and `meridian fence-watchdog --state FILE` does the same by
// hand. The watchdog exits when the agent that started it is gone.
package watchdog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"
)

// StateVersion is the version of the state file format.
const StateVersion = 1

// State is the content of the state file.
type State struct {
	Version int `json:"version"`
	// Agent is the PID of the agent that writes the file.
	Agent int `json:"agent"`
	// Deadline is when the listed groups must be dead, in nanoseconds of
	// CLOCK_BOOTTIME (see Now); 0 means that no lease covers them.
	Deadline int64 `json:"deadline_ns"`
	// Groups are the process groups of the fenced pods' containers.
	Groups []Group `json:"groups"`
}

// Group is one container's process group.
type Group struct {
	// PGID is the group's ID, also the PID of its leader (the container's
	// main process).
	PGID int `json:"pgid"`
	// Start is the leader's start time, in clock ticks since boot (field
	// 22 of /proc/PID/stat), which tells it from a later process that got
	// the same PID; 0 if unknown.
	Start uint64 `json:"start,omitempty"`
	// Pod and Container say whose group it is (for logs).
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
}

func (g Group) String() string {
	return fmt.Sprintf("pgid %d (pod %s, container %s)", g.PGID, g.Pod, g.Container)
}

// Expired reports whether the deadline has passed at now (nanoseconds of
// CLOCK_BOOTTIME).
func (s State) Expired(now int64) bool { return s.Deadline == 0 || now >= s.Deadline }

// clockBoottime is CLOCK_BOOTTIME: CLOCK_MONOTONIC plus the time the
// machine was suspended. It is one clock for every process of the machine.
const clockBoottime = 7

// Now reads CLOCK_BOOTTIME in nanoseconds.
//
// Why not CLOCK_MONOTONIC, which Go's own clock reads: it stops while the
// machine is suspended, while the hub's clock goes on. After a resume the
// agent may believe its lease still holds; the watchdog, counting the
// suspended time, does not.
func Now() int64 {
	var ts syscall.Timespec
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		panic(fmt.Sprintf("clock_gettime(CLOCK_BOOTTIME): %v", errno))
	}
	return ts.Nano()
}

// At converts t (a time.Time with a monotonic reading, as time.Now returns)
// to the CLOCK_BOOTTIME instant Now would read at t. The clock is read
// before the time left is measured, so the result errs early, never late.
func At(t time.Time) int64 {
	now := Now()
	return now + int64(time.Until(t))
}

// Writer replaces a state file atomically: it writes a temporary file in
// the same directory and renames it over the file, so a reader sees the
// old state or the new one, never a part.
type Writer struct {
	path string
}

// NewWriter returns a writer of the state file at path; its directory
// must exist.
func NewWriter(path string) *Writer { return &Writer{path: path} }

// Path is the state file's path.
func (w *Writer) Path() string { return w.path }

// Write replaces the file with s.
func (w *Writer) Write(s State) error {
	s.Version = StateVersion
	if s.Groups == nil {
		s.Groups = []Group{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(w.path), "."+filepath.Base(w.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("failed to write the fence watchdog state: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to write the fence watchdog state: %w", err)
	}
	return nil
}

// ErrVersion means the state file has a version this code does not read.
var ErrVersion = errors.New("unknown fence watchdog state version")

// ReadState reads the state file at path.
func ReadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("malformed fence watchdog state %s: %w", path, err)
	}
	if s.Version != StateVersion {
		return State{}, fmt.Errorf("%w %d in %s", ErrVersion, s.Version, path)
	}
	return s, nil
}
