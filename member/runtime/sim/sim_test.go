package sim

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func podRequest(uid, policy string, containers ...string) *runtime.PodRequest {
	spec := &meridianv1.PodSpec{RestartPolicy: policy}
	for _, c := range containers {
		spec.Containers = append(spec.Containers, &meridianv1.Container{Name: c, Image: "app:1"})
	}
	return &runtime.PodRequest{UID: uid, Namespace: "default", Name: uid, Spec: spec, PodIP: "127.5.0.2"}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitPhase(t *testing.T, n *Node, uid, phase string) *meridianv1.PodStatus {
	t.Helper()
	var st *meridianv1.PodStatus
	waitFor(t, 5*time.Second, uid+" "+phase, func() (bool, string) {
		var ok bool
		st, ok = n.Status(uid)
		return ok && st.GetPhase() == phase, fmt.Sprint(st)
	})
	return st
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{FailureRate: -0.1}, {FailureRate: 1.5}, {StartDelay: -1}, {BackoffBase: time.Second, BackoffCap: time.Millisecond},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestLifecycle(t *testing.T) {
	var changes atomic.Int64
	e := newEngine(t, Config{StartDelay: 30 * time.Millisecond, StopDelay: 50 * time.Millisecond,
		OnChange: func(string) { changes.Add(1) }})
	n := e.Node("node-1")
	if e.Node("node-1") != n {
		t.Fatal("Node returned two drivers for one name")
	}
	if n.Name() != Name || n.NodeName() != "node-1" {
		t.Errorf("names: %s %s", n.Name(), n.NodeName())
	}
	if err := n.Start(context.Background(), podRequest("p1", "", "web", "sidecar")); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background(), podRequest("p1", "", "web")); !errors.Is(err, runtime.ErrPodExists) {
		t.Errorf("duplicate Start: err = %v", err)
	}
	if err := n.Start(context.Background(), &runtime.PodRequest{UID: "bad"}); !errors.Is(err, runtime.ErrInvalidPod) {
		t.Errorf("invalid Start: err = %v", err)
	}
	st, ok := n.Status("p1")
	if !ok || st.GetPhase() != runtime.PhasePending || st.GetContainerStatuses()[0].GetReason() != runtime.ReasonContainerCreating {
		t.Fatalf("just started: %v", st)
	}
	st = waitPhase(t, n, "p1", runtime.PhaseRunning)
	if len(st.GetContainerStatuses()) != 2 || st.GetContainerStatuses()[1].GetName() != "sidecar" {
		t.Errorf("container statuses: %v", st.GetContainerStatuses())
	}
	for _, cs := range st.GetContainerStatuses() {
		if cs.GetState() != runtime.StateRunning || !cs.GetReady() {
			t.Errorf("container %s: %v", cs.GetName(), cs)
		}
	}
	if st.GetPodIp() != "127.5.0.2" || st.GetConditions()[2].GetStatus() != "True" {
		t.Errorf("pod ip / Ready: %v", st)
	}
	if got := e.Stats(); got != (Stats{Pods: 1, Running: 1, Ready: 1}) {
		t.Errorf("Stats = %+v", got)
	}
	if got := n.Pods(); fmt.Sprint(got) != "[p1]" {
		t.Errorf("Pods = %v", got)
	}
	// Another node neither sees nor stops the pod.
	other := e.Node("node-2")
	if _, ok := other.Status("p1"); ok {
		t.Error("node-2 sees node-1's pod")
	}
	if err := other.Stop(context.Background(), "p1", 0); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := n.Stop(context.Background(), "p1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 50*time.Millisecond {
		t.Errorf("Stop took %s, want the StopDelay", took)
	}
	if _, ok := n.Status("p1"); ok {
		t.Error("stopped pod still known")
	}
	if err := n.Stop(context.Background(), "p1", 0); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if got := e.Stats(); got != (Stats{}) {
		t.Errorf("Stats after Stop = %+v", got)
	}
	if changes.Load() < 2 {
		t.Errorf("OnChange called %d times", changes.Load())
	}
}

func TestStopGraceAndContext(t *testing.T) {
	e := newEngine(t, Config{StopDelay: time.Hour})
	n := e.Node("n")
	for _, uid := range []string{"a", "b"} {
		if err := n.Start(context.Background(), podRequest(uid, "", "c")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n.Stop(ctx, "a", -1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop bounded by ctx: err = %v", err)
	}
	// A second Stop with a shorter grace ends it.
	if err := n.Stop(context.Background(), "a", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(context.Background(), "b", 0); err != nil {
		t.Fatal(err)
	}
	if got := n.Pods(); len(got) != 0 {
		t.Errorf("Pods = %v", got)
	}
}

func TestRestartPolicies(t *testing.T) {
	e := newEngine(t, Config{FailureRate: 1, BackoffBase: 5 * time.Millisecond, BackoffCap: 20 * time.Millisecond})
	n := e.Node("n")
	for _, policy := range []string{runtime.RestartAlways, runtime.RestartOnFailure, runtime.RestartNever} {
		if err := n.Start(context.Background(), podRequest(policy, policy, "c")); err != nil {
			t.Fatal(err)
		}
	}
	st := waitPhase(t, n, runtime.RestartNever, runtime.PhaseFailed)
	if cs := st.GetContainerStatuses()[0]; cs.GetState() != runtime.StateTerminated || cs.GetExitCode() != 1 || cs.GetRestartCount() != 0 {
		t.Errorf("Never: %v", cs)
	}
	for _, policy := range []string{runtime.RestartAlways, runtime.RestartOnFailure} {
		var sawBackOff bool
		waitFor(t, 5*time.Second, policy+" restarts", func() (bool, string) {
			st, _ := n.Status(policy)
			cs := st.GetContainerStatuses()[0]
			sawBackOff = sawBackOff || cs.GetReason() == runtime.ReasonCrashLoopBackOff
			return cs.GetRestartCount() >= 3 && sawBackOff, fmt.Sprint(cs)
		})
		if st, _ := n.Status(policy); st.GetPhase() != runtime.PhaseRunning {
			t.Errorf("%s crash-looping pod phase %s, want Running", policy, st.GetPhase())
		}
	}
}

func TestBatchPodsComplete(t *testing.T) {
	e := newEngine(t, Config{CompleteAfter: 20 * time.Millisecond})
	n := e.Node("n")
	for _, policy := range []string{runtime.RestartAlways, runtime.RestartOnFailure, runtime.RestartNever} {
		if err := n.Start(context.Background(), podRequest(policy, policy, "c")); err != nil {
			t.Fatal(err)
		}
	}
	waitPhase(t, n, runtime.RestartOnFailure, runtime.PhaseSucceeded)
	st := waitPhase(t, n, runtime.RestartNever, runtime.PhaseSucceeded)
	if cs := st.GetContainerStatuses()[0]; cs.GetReason() != runtime.ReasonCompleted || cs.GetReady() {
		t.Errorf("completed container: %v", cs)
	}
	time.Sleep(50 * time.Millisecond)
	if st, _ := n.Status(runtime.RestartAlways); st.GetPhase() != runtime.PhaseRunning || st.GetContainerStatuses()[0].GetRestartCount() != 0 {
		t.Errorf("service pod: %v", st)
	}
}

// settle starts pods p0..p(n-1) over nodes and returns each pod's restart
// count once every pod runs.
func settle(t *testing.T, cfg Config, pods, nodes int) map[string]int32 {
	t.Helper()
	e := newEngine(t, cfg)
	for i := 0; i < pods; i++ {
		n := e.Node(fmt.Sprintf("node-%d", i%nodes))
		if err := n.Start(context.Background(), podRequest(fmt.Sprintf("p%d", i), "", "c")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "every pod running", func() (bool, string) {
		s := e.Stats()
		return s.Running == pods && s.Ready == pods, fmt.Sprintf("%+v", s)
	})
	out := make(map[string]int32, pods)
	for i := 0; i < nodes; i++ {
		n := e.Node(fmt.Sprintf("node-%d", i))
		for _, uid := range n.Pods() {
			st, _ := n.Status(uid)
			out[uid] = st.GetContainerStatuses()[0].GetRestartCount()
		}
	}
	return out
}

func TestDeterministicFailures(t *testing.T) {
	cfg := Config{Seed: 42, FailureRate: 0.4, StartJitter: 2 * time.Millisecond, BackoffBase: time.Millisecond, BackoffCap: 4 * time.Millisecond}
	a := settle(t, cfg, 300, 7)
	b := settle(t, cfg, 300, 13) // another placement: same outcome per pod
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("same seed, different restart counts")
	}
	var restarted int
	for _, r := range a {
		if r > 0 {
			restarted++
		}
	}
	if restarted < 60 || restarted > 180 {
		t.Errorf("%d of 300 pods restarted with failure rate 0.4", restarted)
	}
	cfg.Seed = 43
	if c := settle(t, cfg, 300, 7); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Error("another seed gave the same restart counts")
	}
}

func TestScaleTenThousandPodsOnAThousandNodes(t *testing.T) {
	const pods, nodes = 10_000, 1_000
	before := goruntime.NumGoroutine()
	e := newEngine(t, Config{
		Seed: 1, StartDelay: 5 * time.Millisecond, StartJitter: 20 * time.Millisecond,
		FailureRate: 0.05, BackoffBase: 5 * time.Millisecond, BackoffCap: 20 * time.Millisecond,
	})
	begin := time.Now()
	for i := 0; i < pods; i++ {
		n := e.Node(fmt.Sprintf("node-%d", i%nodes))
		if err := n.Start(context.Background(), podRequest(fmt.Sprintf("pod-%d", i), "", "app")); err != nil {
			t.Fatal(err)
		}
	}
	if g := goruntime.NumGoroutine() - before; g > 1 {
		t.Errorf("%d goroutines for %d pods, want the engine's one", g, pods)
	}
	waitFor(t, 20*time.Second, "every pod running", func() (bool, string) {
		s := e.Stats()
		return s.Running == pods && s.Ready == pods, fmt.Sprintf("%+v", s)
	})
	t.Logf("%d pods on %d nodes running after %s", pods, nodes, time.Since(begin))
	if got := len(e.Node("node-7").Pods()); got != pods/nodes {
		t.Errorf("node-7 has %d pods, want %d", got, pods/nodes)
	}
	for i := 0; i < nodes; i++ {
		if err := e.Node(fmt.Sprintf("node-%d", i)).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Stats(); got != (Stats{}) {
		t.Errorf("Stats after closing every node = %+v", got)
	}
	if err := e.Node("node-1").Start(context.Background(), podRequest("late", "", "c")); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Start on a closed node: err = %v", err)
	}
}

func TestCloseReleasesStoppers(t *testing.T) {
	e, err := New(Config{StopDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n := e.Node("n")
	if err := n.Start(context.Background(), podRequest("a", "", "c")); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop(context.Background(), "a", -1) }()
	waitFor(t, 5*time.Second, "the stop to begin", func() (bool, string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		p := e.pods["a"]
		return p != nil && p.stopping != nil, ""
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop still blocked after Close")
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestEventHeapOrder(t *testing.T) {
	var h eventHeap
	for _, at := range []int64{5, 3, 9, 1, 7, 3, 8, 2} {
		h.push(event{at: at})
	}
	var got []int64
	for len(h) > 0 {
		got = append(got, h.pop().at)
	}
	if fmt.Sprint(got) != "[1 2 3 3 5 7 8 9]" {
		t.Errorf("popped %v", got)
	}
}
