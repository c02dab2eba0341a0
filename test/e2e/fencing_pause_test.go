package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSingletonFencingPausedAgent pauses (SIGSTOP) the member agent that
// runs a singleton for much longer than its lease. A paused agent cannot
// stop its pods — they are separate processes — so its fence watchdog, a
// process of its own, kills them at the lease deadline; the hub moves the
// singleton to dc-a2 only after the lease has expired plus its margin, and
// the pods' own records show that the old copy was dead before the new one
// started, although the agent was still stopped then. Resumed, the agent
// finds its lease gone and does not start its old copy again, its watchdog
// still runs, and it runs the singleton again when it is moved back
// (fenced, planned).
func TestSingletonFencingPausedAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub and two members in network namespaces")
	}
	r := newFenceRig(t, "failback: Manual")
	a1 := r.members["dc-a1"]
	if n := len(watchdogsOf(a1.cmd.Process.Pid)); n != 1 {
		t.Fatalf("dc-a1 runs %d fence watchdogs, want 1", n)
	}
	time.Sleep(300 * time.Millisecond)

	paused := time.Now()
	a1.pause(t)
	// The old copy dies at the lease deadline while the agent is stopped.
	waitFor(t, "the dc-a1 copy killed by the watchdog", 10*time.Second, func() bool { return r.holder(t) == "" })
	manual := r.waitMoved(t, "dc-a1", "dc-a2", 25*time.Second)
	time.Sleep(time.Second) // both would run now if the old copy had survived
	resumed := time.Now()
	a1.resume(t)

	r.waitReady(t, "dc-a1")
	time.Sleep(1500 * time.Millisecond)
	if h := r.holder(t); h != "dc-a2" {
		t.Errorf("after the resume the singleton runs in %q, want dc-a2", h)
	}
	if n := len(watchdogsOf(a1.cmd.Process.Pid)); n != 1 {
		t.Errorf("after the resume dc-a1 runs %d fence watchdogs, want 1", n)
	}

	lives := r.check(t)
	var old, cur *copyLife
	a1copies := 0
	for i := range lives {
		switch r.byIP[lives[i].member()[:7]] {
		case "dc-a1":
			a1copies++
			if old == nil {
				old = &lives[i]
			}
		case "dc-a2":
			if cur == nil {
				cur = &lives[i]
			}
		}
	}
	if old == nil || cur == nil {
		t.Fatalf("records show no copy on dc-a1 or dc-a2:\n%v", lives)
	}
	if a1copies != 1 {
		t.Errorf("dc-a1 ran %d copies, want 1 (its old copy must not start again after the resume)", a1copies)
	}
	if old.stopped {
		t.Errorf("the dc-a1 copy wrote a stop record: its paused agent cannot have sent SIGTERM, the watchdog sends SIGKILL: %v", old)
	}
	if !old.end.Before(resumed) {
		t.Errorf("the dc-a1 copy lived until %s, after the resume at %s: the watchdog did not kill it",
			old.end.Format("15:04:05.000"), resumed.Format("15:04:05.000"))
	}
	// The lease is 2 s: the last renewal was sent at most a renew interval
	// (500 ms) before the pause, and the watchdog kills 300 ms after the
	// agent would have begun stopping (t_send + 1.58 s).
	if d := old.end.Sub(paused); d > 2500*time.Millisecond {
		t.Errorf("the dc-a1 copy lived %s into the pause, want at most the lease", d)
	}
	if cur.epoch <= old.epoch {
		t.Errorf("the new copy's epoch %d is not above the old one's %d", cur.epoch, old.epoch)
	}
	t.Logf("pause → old copy killed %s (its last record + %s); new copy started %s; gap %s; paused for %s; moved by hand: %v",
		old.end.Sub(paused).Round(time.Millisecond), beatBound, cur.start.Sub(paused).Round(time.Millisecond),
		cur.start.Sub(old.end).Round(time.Millisecond), resumed.Sub(paused).Round(time.Millisecond), manual)

	// Sane again: a planned move back runs the singleton on dc-a1.
	took := r.plannedMove(t, "dc-a2", "dc-a1")
	t.Logf("planned move dc-a2 → dc-a1 after the resume: released after %s", took.Round(time.Millisecond))
	for _, c := range r.check(t) {
		t.Logf("  %v", c)
	}
}

// watchdogsOf lists the fence watchdog processes whose parent is pid.
func watchdogsOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "fence-watchdog") {
			out = append(out, child)
		}
	}
	return out
}
