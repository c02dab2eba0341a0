// Package procstat reads what the member needs of a process from
// /proc/PID/stat: its state, its process group and its start time, which
// together tell a live process from a zombie and from a later process that
// reuses its pid.
package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is what Read returns of one process.
type Stat struct {
	PID int
	// State is the one-letter state: R, S, D, Z (zombie), T (stopped), ...
	State byte
	// Pgrp is the process group.
	Pgrp int
	// StartTime is when the process started, in clock ticks since boot.
	StartTime uint64
}

// Zombie reports whether the process has exited and waits to be reaped.
func (s Stat) Zombie() bool { return s.State == 'Z' }

// Read parses /proc/PID/stat. The command name (field 2) may hold spaces
// and parentheses, so the fields are counted from the last ')'.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return parse(pid, string(b))
}

func parse(pid int, s string) (Stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return Stat{}, fmt.Errorf("malformed pgrp in /proc/%d/stat: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("malformed starttime in /proc/%d/stat: %w", pid, err)
	}
	return Stat{PID: pid, State: f[0][0], Pgrp: pgrp, StartTime: start}, nil
}
