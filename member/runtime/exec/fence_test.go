package exec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	"github.com/meridian-fed/meridian/member/runtime/procstat"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// fenceLog is a FenceHook that records its calls and refuses starts while
// refuse is set.
type fenceLog struct {
	mu     sync.Mutex
	calls  []string
	live   map[int]uint64 // pid → start time, between Started and Exited
	refuse bool
}

func (f *fenceLog) Starting(pod PodRef, container string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "starting "+pod.Name+"/"+container)
	if f.refuse {
		return errors.New("fenced: no lease")
	}
	return nil
}

func (f *fenceLog) Started(pod PodRef, container string, pid int, start uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("started %s/%s", pod.Name, container))
	f.live[pid] = start
}

func (f *fenceLog) Exited(pod PodRef, container string, pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("exited %s/%s", pod.Name, container))
	delete(f.live, pid)
}

func (f *fenceLog) snapshot() ([]string, map[int]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := map[int]uint64{}
	for k, v := range f.live {
		live[k] = v
	}
	return append([]string(nil), f.calls...), live
}

// The fence hook hears of every container process: before it starts (and
// can keep it from starting), as soon as it has started with its pid (its
// process group) and start time, and once its group is dead.
func TestFenceHook(t *testing.T) {
	t.Parallel()
	hook := &fenceLog{live: map[int]uint64{}}
	cfg := testConfig(t)
	cfg.Fence = hook
	d := newDriver(t, cfg)
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{helperContainer(t, "main", "sleep")}})
	st := waitStatus(t, d, req.UID, 10*time.Second, "running", running)
	pid := int(st.GetContainerStatuses()[0].GetPid())
	_, live := hook.snapshot()
	ps, err := procstat.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	if start, ok := live[pid]; !ok || start != ps.StartTime || ps.Pgrp != pid {
		t.Fatalf("hook saw %v; the process is pid %d, group %d, start %d", live, pid, ps.Pgrp, ps.StartTime)
	}
	if err := d.Stop(context.Background(), req.UID, time.Second); err != nil {
		t.Fatal(err)
	}
	calls, live := hook.snapshot()
	if len(live) != 0 {
		t.Fatalf("still listed after Stop: %v", live)
	}
	want := []string{"starting " + req.Name + "/main", "started " + req.Name + "/main", "exited " + req.Name + "/main"}
	if strings.Join(calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v, want %v", calls, want)
	}

	// Refused: the container does not start, and says why.
	hook.mu.Lock()
	hook.refuse = true
	hook.mu.Unlock()
	req = startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{helperContainer(t, "main", "sleep")}})
	st = waitStatus(t, d, req.UID, 10*time.Second, "a refused start", func(st *meridianv1.PodStatus) bool {
		return strings.Contains(st.GetContainerStatuses()[0].GetMessage(), "fenced: no lease")
	})
	if c := st.GetContainerStatuses()[0]; c.GetPid() != 0 || c.GetState() == runtime.StateRunning {
		t.Fatalf("a refused container runs: %s", describe(st))
	}
	if _, live := hook.snapshot(); len(live) != 0 {
		t.Fatalf("a refused container was listed: %v", live)
	}
}
