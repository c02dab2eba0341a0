package watchdog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime/procstat"
)

// envTestParent makes the test binary a stand-in agent: it spawns a
// watchdog over the state file it names, lists the process group given in
// envTestGroup with a far deadline, prints the watchdog's PID and waits to
// be killed.
const (
	envTestParent = "MERIDIAN_WATCHDOG_TEST_PARENT"
	envTestGroup  = "MERIDIAN_WATCHDOG_TEST_GROUP"
)

func TestMain(m *testing.M) {
	// (A watchdog child never gets here: this package's init runs it.)
	if path := os.Getenv(envTestParent); path != "" {
		os.Exit(fakeAgent(path))
	}
	os.Exit(m.Run())
}

func fakeAgent(path string) int {
	pub, err := NewPublisher(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pgid, _ := strconv.Atoi(os.Getenv(envTestGroup))
	start, _ := StartTime(pgid)
	if err := pub.Extend(time.Now().Add(time.Hour)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := pub.Add(Group{PGID: pgid, Start: start, Pod: "p", Container: "c"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	self, _ := os.Executable()
	p, err := Spawn(SpawnConfig{StateFile: path, Command: []string{self}, Poll: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(p.Pid())
	select {}
}

// sleeper starts `sleep 600` in its own process group and returns it and a
// channel that delivers the CLOCK_BOOTTIME instant it was seen to exit.
func sleeper(t *testing.T) (*osexec.Cmd, <-chan int64) {
	t.Helper()
	cmd := osexec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int64, 1)
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		exited <- Now()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd, exited
}

func group(t *testing.T, cmd *osexec.Cmd, name string) Group {
	t.Helper()
	start, err := StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return Group{PGID: cmd.Process.Pid, Start: start, Pod: name, Container: "main"}
}

// spawn starts a watchdog (this test binary, run again) over the state
// file and returns its log.
func spawn(t *testing.T, path string) *syncBuffer {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	p, err := Spawn(SpawnConfig{StateFile: path, Command: []string{self}, Poll: 20 * time.Millisecond, Stderr: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return log
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func alive(pid int) bool {
	st, err := procstat.Read(pid)
	return err == nil && !st.Zombie()
}

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	w := NewWriter(path)
	want := State{Agent: 42, Deadline: 123456789, Groups: []Group{{PGID: 7, Start: 99, Pod: "uid-1", Container: "main"}}}
	if err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	want.Version = StateVersion
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("files left: %v", entries)
	}
	if err := os.WriteFile(path, []byte(`{"version":99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadState(path); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 99: err %v, want ErrVersion", err)
	}
	if _, err := ReadState(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err %v", err)
	}
}

// A reader never sees a partly written state while the writer replaces it.
func TestWriterAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	w := NewWriter(path)
	if err := w.Write(State{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			gs := make([]Group, i%50)
			for j := range gs {
				gs[j] = Group{PGID: 1000 + j, Pod: strings.Repeat("x", 100)}
			}
			if err := w.Write(State{Agent: 1, Deadline: int64(i), Groups: gs}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			if reads == 0 {
				t.Fatal("no read")
			}
			return
		default:
		}
		st, err := ReadState(path)
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		if st.Deadline > 0 && len(st.Groups) != int(st.Deadline)%50 {
			t.Fatalf("torn state: deadline %d with %d groups", st.Deadline, len(st.Groups))
		}
		reads++
	}
}

func TestPublisher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	p, err := NewPublisher(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(path)
	if err != nil || st.Agent != os.Getpid() || st.Deadline != 0 || len(st.Groups) != 0 {
		t.Fatalf("initial state %+v, %v", st, err)
	}
	before := Now()
	if err := p.Extend(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	st, _ = ReadState(path)
	if d := time.Duration(st.Deadline - before); d < 900*time.Millisecond || d > time.Second+50*time.Millisecond {
		t.Fatalf("deadline %s ahead, want about 1s", d)
	}
	// Never moved back.
	if err := p.Extend(time.Now()); err != nil {
		t.Fatal(err)
	}
	if st2, _ := ReadState(path); st2.Deadline != st.Deadline {
		t.Fatalf("deadline moved back from %d to %d", st.Deadline, st2.Deadline)
	}
	_ = p.Add(Group{PGID: 10, Start: 1})
	_ = p.Add(Group{PGID: 11, Start: 2})
	_ = p.Add(Group{PGID: 10, Start: 1})
	_ = p.Remove(10)
	st, _ = ReadState(path)
	if len(st.Groups) != 1 || st.Groups[0].PGID != 11 {
		t.Fatalf("groups %+v, want pgid 11 alone", st.Groups)
	}
}

// The watchdog kills a listed process group once the deadline has passed
// (a later deadline published in time counts), not before, and leaves an
// unlisted process alone.
func TestWatchdogKillsAfterDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	pub, err := NewPublisher(path)
	if err != nil {
		t.Fatal(err)
	}
	listed, listedExit := sleeper(t)
	other, otherExit := sleeper(t)
	if err := pub.Extend(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Add(group(t, listed, "singleton")); err != nil {
		t.Fatal(err)
	}
	log := spawn(t, path)
	// Extended before the first deadline: the new one counts.
	if err := pub.Extend(time.Now().Add(1200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	st, _ := ReadState(path)
	select {
	case at := <-listedExit:
		if at < st.Deadline {
			t.Fatalf("killed %s before the deadline", time.Duration(st.Deadline-at))
		}
		if late := time.Duration(at - st.Deadline); late > 500*time.Millisecond {
			t.Fatalf("killed %s after the deadline", late)
		} else {
			t.Logf("killed %s after the deadline", late)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the listed group was not killed; log:\n%s", log)
	}
	if ws := listed.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("listed process ended with %v, want SIGKILL", listed.ProcessState)
	}
	select {
	case <-otherExit:
		t.Fatal("the unlisted process was killed")
	default:
	}
	if !alive(other.Process.Pid) {
		t.Fatal("the unlisted process is gone")
	}
	waitLog(t, log, "killed a fenced pod's process group")

	// It keeps running: a new deadline and group, killed in turn.
	again, againExit := sleeper(t)
	if err := pub.Extend(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Remove(listed.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := pub.Add(group(t, again, "singleton-2")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-againExit:
	case <-time.After(10 * time.Second):
		t.Fatalf("the second group was not killed; log:\n%s", log)
	}
	if !alive(other.Process.Pid) {
		t.Fatal("the unlisted process is gone")
	}
}

// A group whose number now belongs to another process (the leader's start
// time differs) is left alone.
func TestWatchdogSkipsReusedPID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	pub, err := NewPublisher(path)
	if err != nil {
		t.Fatal(err)
	}
	proc, exited := sleeper(t)
	g := group(t, proc, "reused")
	g.Start++
	if err := pub.Add(g); err != nil { // no deadline: expired at once
		t.Fatal(err)
	}
	log := spawn(t, path)
	waitLog(t, log, "fence watchdog started")
	// Give it several polls; a bounded wait on the process's exit.
	select {
	case <-exited:
		t.Fatalf("a process with another start time was killed; log:\n%s", log)
	case <-time.After(300 * time.Millisecond):
	}
}

// When the agent that started it dies, the watchdog kills the listed groups
// (nothing of the agent's fenced pods outlives it) and exits.
func TestWatchdogExitsWithParent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fence.json")
	proc, exited := sleeper(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := osexec.Command(self)
	agent.Env = append(os.Environ(), envTestParent+"="+path, envTestGroup+"="+strconv.Itoa(proc.Process.Pid))
	agent.Stderr = os.Stderr
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the fake agent printed no watchdog PID: %v", err)
	}
	wd, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || wd <= 0 {
		t.Fatalf("watchdog PID %q", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(wd, syscall.SIGKILL) })
	if st, err := procstat.Read(wd); err != nil || st.Pgrp == agent.Process.Pid {
		t.Fatalf("the watchdog should run in its own process group: %+v %v", st, err)
	}
	if !alive(proc.Process.Pid) {
		t.Fatal("the listed process died with its deadline an hour away")
	}
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the listed group outlived the agent")
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(wd) {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog outlived its agent")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitLog(t *testing.T, log *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the watchdog's log:\n%s", want, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
