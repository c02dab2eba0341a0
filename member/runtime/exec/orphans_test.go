package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime/procstat"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// startPrevious starts the test binary in mode as a "previous agent" would
// have (own process group, no death signal) in dir, and reaps it when the
// test ends.
func startPrevious(t *testing.T, dir, mode string) *osexec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(self)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

func TestCleanupOrphans(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pods := filepath.Join(cfg.RootDir, "pods")

	// A container whose process outlived its agent (no death signal).
	alive := startPrevious(t, filepath.Join(pods, "old-alive"), "sleep")
	if err := writePIDFile(filepath.Join(pods, "old-alive", "main.pid"), alive.Process.Pid); err != nil {
		t.Fatal(err)
	}

	// A container whose main process died with its agent, leaving a child
	// in its process group.
	spawner := startPrevious(t, filepath.Join(pods, "old-child"), "spawnchild")
	if err := writePIDFile(filepath.Join(pods, "old-child", "main.pid"), spawner.Process.Pid); err != nil {
		t.Fatal(err)
	}
	var child int
	waitFor(t, 10*time.Second, "the grandchild", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(pods, "old-child", "child-pid.txt"))
		if err != nil {
			return false, err.Error()
		}
		child, err = strconv.Atoi(string(b))
		return err == nil, fmt.Sprint(err)
	})
	if err := spawner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = spawner.Wait()
	if !processAlive(child) {
		t.Fatalf("grandchild %d died with its parent; the test sets nothing up", child)
	}

	// A pid file whose PID now belongs to an unrelated process: the start
	// time does not match.
	bystander := startPrevious(t, filepath.Join(pods, "old-reused"), "sleep")
	st, err := procstat.Read(bystander.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pods, "old-reused", "main.pid"),
		fmt.Appendf(nil, "%spid=%d start=%d\n", pidFilePrefix, bystander.Process.Pid, st.StartTime+1), 0o644); err != nil {
		t.Fatal(err)
	}

	// A pid file of a group that is gone, and a malformed one.
	gone := startPrevious(t, filepath.Join(pods, "old-gone"), "exit")
	_ = gone.Wait()
	if err := os.WriteFile(filepath.Join(pods, "old-gone", "main.pid"), fmt.Appendf(nil, "%spid=%d start=1\n", pidFilePrefix, gone.Process.Pid), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pods, "old-gone", "junk.pid"), []byte(pidFilePrefix+"pid=x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A workload's own pid file is none of the driver's business.
	foreign := filepath.Join(pods, "old-gone", "app.pid")
	if err := os.WriteFile(foreign, []byte("4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	d := newDriver(t, cfg)
	// A pod this driver runs is left alone.
	mine := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{helperContainer(t, "main", "sleep")}})
	mineStatus := waitStatus(t, d, mine.UID, 10*time.Second, "running", running)

	orphans, err := d.CleanupOrphans()
	if err == nil {
		t.Error("CleanupOrphans ignored a malformed pid file")
	}
	killed := map[string]bool{}
	for _, o := range orphans {
		killed[o.UID+"/"+o.Container] = o.Killed
	}
	want := map[string]bool{
		"old-alive/main": true, "old-child/main": true, "old-reused/main": false,
		"old-gone/main": false, "old-gone/junk": false,
	}
	if fmt.Sprint(killed) != fmt.Sprint(want) {
		t.Errorf("orphans = %v, want %v", killed, want)
	}
	waitFor(t, 10*time.Second, "the orphans to die", func() (bool, string) {
		for _, pid := range []int{alive.Process.Pid, child} {
			if processAlive(pid) {
				return false, fmt.Sprintf("pid %d alive", pid)
			}
		}
		return true, ""
	})
	if !processAlive(bystander.Process.Pid) {
		t.Error("the process that reused a recorded PID was killed")
	}
	if !processAlive(int(mineStatus.GetContainerStatuses()[0].GetPid())) {
		t.Error("CleanupOrphans killed a pod of the running driver")
	}
	for _, uid := range []string{"old-alive", "old-child", "old-reused", "old-gone"} {
		files, _ := filepath.Glob(filepath.Join(pods, uid, "*.pid"))
		if len(files) != 0 && (len(files) != 1 || files[0] != foreign) {
			t.Errorf("pid files left: %v", files)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("the workload's own pid file: %v", err)
	}
	if _, err := os.Stat(pidPath(filepath.Join(pods, mine.UID), "main")); err != nil {
		t.Errorf("the running pod's pid file: %v", err)
	}
}

// TestAgentKilledThenRestarted kills an agent with SIGKILL: the death signal
// kills its container's main process, and CleanupOrphans in the next agent
// kills the child that process left in its group.
func TestAgentKilledThenRestarted(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := osexec.Command(self)
	agent.Env = append(os.Environ(), helperEnv+"=agent", "AGENT_ROOT="+root, "GORACE=atexit_sleep_ms=0")
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })

	readPID := func(path string) int {
		var pid int
		waitFor(t, 15*time.Second, path, func() (bool, string) {
			b, err := os.ReadFile(path)
			if err != nil {
				return false, err.Error()
			}
			pid, err = strconv.Atoi(string(b))
			return err == nil, fmt.Sprint(err)
		})
		return pid
	}
	container := readPID(filepath.Join(root, "container-pid.txt"))
	grandchild := readPID(filepath.Join(root, "pods", "victim", "child-pid.txt"))

	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	waitFor(t, 10*time.Second, "the container to die with its agent", func() (bool, string) {
		return !processAlive(container), fmt.Sprintf("pid %d alive", container)
	})
	if !processAlive(grandchild) {
		t.Fatalf("grandchild %d died too; the test proves nothing about CleanupOrphans", grandchild)
	}

	cfg := testConfig(t)
	cfg.RootDir = root
	d := newDriver(t, cfg)
	orphans, err := d.CleanupOrphans()
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 1 || orphans[0].UID != "victim" || orphans[0].PID != container || !orphans[0].Killed {
		t.Errorf("orphans = %+v", orphans)
	}
	waitFor(t, 10*time.Second, "the grandchild to die", func() (bool, string) {
		return !processAlive(grandchild), fmt.Sprintf("pid %d alive", grandchild)
	})
}

func TestReadProcStat(t *testing.T) {
	st, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.StartTime == 0 || st.Zombie() {
		t.Errorf("procstat.Read(self) = %+v", st)
	}
	if _, err := procstat.Read(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("readProcStat of no process: err = %v", err)
	}
}
