package exec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/meridian-fed/meridian/member/runtime/procstat"
)

// A pid file, <pod dir>/<container>.pid, holds one line,
// "meridian-exec pid=PID start=STARTTIME": the container's process (also its
// process group ID) and its start time in clock ticks since boot, field 22
// of /proc/PID/stat. The start time tells a live process of ours from an
// unrelated one that got the same PID later. The pod directory is also the
// containers' working directory, so the prefix tells our pid files from
// files a workload wrote there, which CleanupOrphans leaves alone.
const pidFilePrefix = "meridian-exec "

// errForeignPIDFile means a *.pid file was not written by the driver.
var errForeignPIDFile = errors.New("not a meridian pid file")

// Orphan is a process group a previous run of the agent left behind.
type Orphan struct {
	// UID and Container name the pid file the group was recorded in.
	UID       string
	Container string
	// PID is the recorded process (and process group) ID.
	PID int
	// Killed is true if processes of the group were found and sent SIGKILL;
	// false if the group was gone or the PID now belongs to another process.
	Killed bool
}

// writePIDFile records pid and its start time at path.
func writePIDFile(path string, pid int) error {
	st, err := procstat.Read(pid)
	if err != nil {
		return fmt.Errorf("failed to read start time of %d: %w", pid, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%spid=%d start=%d\n", pidFilePrefix, pid, st.StartTime), 0o644); err != nil {
		return fmt.Errorf("failed to write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to write pid file: %w", err)
	}
	return nil
}

func readPIDFile(path string) (pid int, start uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to read pid file: %w", err)
	}
	line, ok := strings.CutPrefix(string(b), pidFilePrefix)
	if !ok {
		return 0, 0, errForeignPIDFile
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "pid=%d start=%d", &pid, &start); err != nil || pid <= 1 {
		return 0, 0, fmt.Errorf("malformed pid file %s", path)
	}
	return pid, start, nil
}

// groupMembers lists the live (not zombie) processes of process group pgid
// that started no earlier than since.
func groupMembers(pgid int, since uint64) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("failed to list /proc: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procstat.Read(pid)
		if err != nil || st.Pgrp != pgid || st.Zombie() || st.StartTime < since {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// CleanupOrphans kills the process groups that a previous run of the agent
// recorded in pid files under RootDir and that are still alive, and removes
// those pid files. Call it once after New, before starting pods; pods this
// driver already runs are skipped.
//
// The death signal kills a container's main process with the agent, but not
// the processes it started, which stay in its process group. So for each pid
// file: if the recorded process is alive with the recorded start time, its
// whole group is killed; if it is alive with another start time, the PID was
// reused and nothing is killed; if it is gone, the members of its group that
// started after it are killed one by one.
func (d *Driver) CleanupOrphans() ([]Orphan, error) {
	files, err := filepath.Glob(filepath.Join(d.podsDir, "*", "*.pid"))
	if err != nil {
		return nil, fmt.Errorf("failed to list pid files: %w", err)
	}
	d.mu.Lock()
	live := make(map[string]bool, len(d.pods))
	for uid := range d.pods {
		live[uid] = true
	}
	d.mu.Unlock()

	var orphans []Orphan
	var errs []error
	for _, f := range files {
		uid := filepath.Base(filepath.Dir(f))
		if live[uid] {
			continue
		}
		o := Orphan{UID: uid, Container: strings.TrimSuffix(filepath.Base(f), ".pid")}
		pid, start, err := readPIDFile(f)
		if errors.Is(err, errForeignPIDFile) {
			continue // a workload's own file
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			o.PID = pid
			o.Killed, err = killRecordedGroup(pid, start)
			if err != nil {
				errs = append(errs, err)
			}
			d.cfg.Logger.Info("cleaned up orphan", "pod", uid, "container", o.Container, "pid", pid, "killed", o.Killed)
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("failed to remove pid file: %w", err))
		}
		orphans = append(orphans, o)
	}
	if err := errors.Join(errs...); err != nil {
		return orphans, fmt.Errorf("failed to clean up orphans: %w", err)
	}
	return orphans, nil
}

// killRecordedGroup kills what is left of the process group a pid file
// recorded, and reports whether it found anything to kill.
func killRecordedGroup(pid int, start uint64) (bool, error) {
	st, err := procstat.Read(pid)
	if err == nil && !st.Zombie() {
		if st.StartTime != start {
			return false, nil // the PID belongs to another process now
		}
		if err := signalGroup(pid, syscall.SIGKILL); err != nil {
			return false, err
		}
		return true, nil
	}
	members, err := groupMembers(pid, start)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if err := syscall.Kill(m, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return false, fmt.Errorf("failed to kill orphan %d: %w", m, err)
		}
	}
	return len(members) > 0, nil
}
