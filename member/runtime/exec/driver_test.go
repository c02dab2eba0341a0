package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestPodsShareAPortOnTheirOwnAddresses(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	spec := &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		withPorts(helperContainer(t, "web", "httpserver"), 18080),
	}}
	a := startPod(t, d, spec)
	b := startPod(t, d, spec)
	for _, req := range []*runtime.PodRequest{a, b} {
		waitStatus(t, d, req.UID, 10*time.Second, "running", running)
		url := fmt.Sprintf("http://%s:18080/whoami", req.PodIP)
		var body string
		waitFor(t, 10*time.Second, "an answer from "+url, func() (bool, string) {
			code, got, err := httpGet(url)
			body = got
			return err == nil && code == 200, fmt.Sprint(code, err)
		})
		if want := req.Name + " " + req.PodIP; body != want {
			t.Errorf("%s answered %q, want %q", url, body, want)
		}
	}
	path, err := d.LogPath(a.UID, "web")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the server's log line", func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "listening on "+a.PodIP+":18080"), string(b)
	})
}

func TestEnvironmentAndFiles(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	c := withPorts(helperContainer(t, "main", "env",
		"GREETING=hello $(POD_NAME)",
		"ESCAPED=$$(POD_NAME)",
		"UNDEFINED=$(NOPE)",
		"OVERRIDE=from-container",
	), 9000, 9001)
	c.Env = append(c.Env,
		&meridianv1.EnvVar{Name: "FROM_SECRET", ValueFrom: &meridianv1.EnvVarSource{SecretKeyRef: &meridianv1.KeySelector{Name: "s", Key: "k"}}},
		&meridianv1.EnvVar{Name: "MY_IP", ValueFrom: &meridianv1.EnvVarSource{FieldRef: &meridianv1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		&meridianv1.EnvVar{Name: "DERIVED", Value: "secret=$(FROM_SECRET)"},
	)
	c.Args = []string{"$(GREETING)", "$(PORT)"}
	uid := newUID(t)
	req := &runtime.PodRequest{
		UID: uid, Namespace: "team", Name: "envpod", PodIP: "127.77.200.1",
		Spec: &meridianv1.PodSpec{RestartPolicy: runtime.RestartNever, Containers: []*meridianv1.Container{c}},
		Env:  []string{"SERVICE_HOST=127.1.0.9", "OVERRIDE=from-agent"},
		ContainerEnv: map[string][]string{"main": {
			"FROM_SECRET=s3cret", "FROM_CONFIGMAP=cm-value",
		}},
		Files: map[string][]byte{"config/app.conf": []byte("key=value\n")},
	}
	if err := d.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, uid, 10*time.Second, "Succeeded", func(st *meridianv1.PodStatus) bool {
		return st.GetPhase() == runtime.PhaseSucceeded
	})
	path, _ := d.LogPath(uid, "main")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string)
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	want := map[string]string{
		"POD_NAME":       "envpod",
		"POD_NAMESPACE":  "team",
		"POD_IP":         "127.77.200.1",
		"HOSTNAME":       "envpod",
		"PORT":           "9000",
		"GREETING":       "hello envpod",
		"ESCAPED":        "$(POD_NAME)",
		"UNDEFINED":      "$(NOPE)",
		"OVERRIDE":       "from-container",
		"SERVICE_HOST":   "127.1.0.9",
		"FROM_SECRET":    "s3cret",
		"FROM_CONFIGMAP": "cm-value",
		"MY_IP":          "127.77.200.1",
		"DERIVED":        "secret=s3cret",
		"ARGS":           "hello envpod 9000",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	dir, _ := d.PodDir(uid)
	if got["HOME"] != dir {
		t.Errorf("HOME = %q, want the pod dir %q", got["HOME"], dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config", "app.conf")); err != nil || string(b) != "key=value\n" {
		t.Errorf("pod file = %q, %v", b, err)
	}
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy       string
		exitCode     string
		wantPhase    string
		wantRestarts bool
		wantReason   string
	}{
		{policy: runtime.RestartAlways, exitCode: "0", wantPhase: runtime.PhaseRunning, wantRestarts: true},
		{policy: runtime.RestartAlways, exitCode: "3", wantPhase: runtime.PhaseRunning, wantRestarts: true},
		{policy: runtime.RestartOnFailure, exitCode: "0", wantPhase: runtime.PhaseSucceeded, wantReason: runtime.ReasonCompleted},
		{policy: runtime.RestartOnFailure, exitCode: "4", wantPhase: runtime.PhaseRunning, wantRestarts: true},
		{policy: runtime.RestartNever, exitCode: "0", wantPhase: runtime.PhaseSucceeded, wantReason: runtime.ReasonCompleted},
		{policy: runtime.RestartNever, exitCode: "5", wantPhase: runtime.PhaseFailed, wantReason: runtime.ReasonError},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"-exit"+tt.exitCode, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, testConfig(t))
			req := startPod(t, d, &meridianv1.PodSpec{RestartPolicy: tt.policy, Containers: []*meridianv1.Container{
				helperContainer(t, "main", "exit", "EXIT_CODE="+tt.exitCode),
			}})
			if tt.wantRestarts {
				st := waitStatus(t, d, req.UID, 10*time.Second, "two restarts", func(st *meridianv1.PodStatus) bool {
					return st.GetContainerStatuses()[0].GetRestartCount() >= 2
				})
				if st.GetPhase() != tt.wantPhase {
					t.Errorf("phase = %s, want %s", st.GetPhase(), tt.wantPhase)
				}
				return
			}
			st := waitStatus(t, d, req.UID, 10*time.Second, tt.wantPhase, func(st *meridianv1.PodStatus) bool {
				return st.GetPhase() == tt.wantPhase
			})
			cs := st.GetContainerStatuses()[0]
			if cs.GetState() != runtime.StateTerminated || cs.GetReason() != tt.wantReason || fmt.Sprint(cs.GetExitCode()) != tt.exitCode {
				t.Errorf("container = %s, want Terminated/%s exit %s", describe(st), tt.wantReason, tt.exitCode)
			}
			// Give a wrong restart a chance to happen, then check it did not.
			time.Sleep(200 * time.Millisecond)
			st, _ = d.Status(req.UID)
			if n := st.GetContainerStatuses()[0].GetRestartCount(); n != 0 {
				t.Errorf("restartCount = %d, want 0", n)
			}
		})
	}
}

func TestLogsAppendAcrossRestarts(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		helperContainer(t, "main", "exit", "EXIT_CODE=1"),
	}})
	waitStatus(t, d, req.UID, 10*time.Second, "three restarts", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetRestartCount() >= 3
	})
	path, _ := d.LogPath(req.UID, "main")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{
		`--- meridian: starting container "main" (restart 0)`,
		`--- meridian: starting container "main" (restart 1)`,
		`--- meridian: starting container "main" (restart 2)`,
		"stdout: exiting with 1", "stderr: goodbye",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "stdout: exiting with 1"); n < 3 {
		t.Errorf("log has %d runs' output, want at least 3", n)
	}
}

func TestCrashLoopBackOffGrows(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.BackoffBase = 100 * time.Millisecond
	cfg.BackoffCap = 10 * time.Second
	d, rec := newRecordedDriver(t, cfg)
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		helperContainer(t, "main", "exit", "EXIT_CODE=1"),
	}})
	waitFor(t, 15*time.Second, "the fourth restart recorded", func() (bool, string) {
		for _, st := range rec.statuses() {
			cs := st.GetContainerStatuses()[0]
			if cs.GetRestartCount() >= 4 && cs.GetState() == runtime.StateRunning {
				return true, ""
			}
		}
		st, _ := d.Status(req.UID)
		return false, describe(st)
	})
	// For each run, when it started; for each ended run, when it finished.
	started := make(map[int32]time.Time)
	finished := make(map[int32]time.Time)
	seen := rec.statuses()
	for _, st := range seen {
		cs := st.GetContainerStatuses()[0]
		switch cs.GetState() {
		case runtime.StateRunning:
			started[cs.GetRestartCount()] = cs.GetStartedAt().AsTime()
		case runtime.StateTerminated:
			finished[cs.GetRestartCount()] = cs.GetFinishedAt().AsTime()
		}
	}
	sawBackOff := rec.sawReason(runtime.ReasonCrashLoopBackOff)
	if !sawBackOff {
		t.Error("never saw reason CrashLoopBackOff")
	}
	// Restart n waits Backoff.Delay(n): 0, 100ms, 200ms, 400ms.
	for n := int32(2); n <= 4; n++ {
		s, f := started[n], finished[n-1]
		if s.IsZero() || f.IsZero() {
			t.Fatalf("missing observation of restart %d: %v", n, seen)
		}
		want := runtime.Backoff{Base: cfg.BackoffBase, Cap: cfg.BackoffCap}.Delay(int(n))
		if gap := s.Sub(f); gap < want {
			t.Errorf("restart %d came %s after the exit, want at least %s", n, gap, want)
		}
	}
}

func TestStopSendsSIGTERMThenSIGKILL(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	stubborn := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		helperContainer(t, "main", "ignoreterm"),
	}})
	polite := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		withPorts(helperContainer(t, "main", "httpserver"), 18081),
	}})
	stubbornDir, _ := d.PodDir(stubborn.UID)
	var pids []int
	for _, req := range []*runtime.PodRequest{stubborn, polite} {
		st := waitStatus(t, d, req.UID, 10*time.Second, "running", running)
		pids = append(pids, int(st.GetContainerStatuses()[0].GetPid()))
	}
	// The stubborn helper ignores SIGTERM only once it has said so.
	waitFor(t, 10*time.Second, "the helper to ignore SIGTERM", func() (bool, string) {
		_, err := os.Stat(filepath.Join(stubbornDir, "started"))
		return err == nil, fmt.Sprint(err)
	})
	waitFor(t, 10*time.Second, "the http helper to listen", func() (bool, string) {
		_, _, err := httpGet("http://" + polite.PodIP + ":18081/healthz")
		return err == nil, fmt.Sprint(err)
	})

	// A process that exits on SIGTERM is not made to wait for its grace
	// period (a long one, so that a loaded machine does not matter).
	const politeGrace = 10 * time.Second
	begin := time.Now()
	if err := d.Stop(context.Background(), polite.UID, politeGrace); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took >= politeGrace {
		t.Errorf("stopping a process that exits on SIGTERM took %s, want less than the grace %s", took, politeGrace)
	}
	const grace = 500 * time.Millisecond
	begin = time.Now()
	if err := d.Stop(context.Background(), stubborn.UID, grace); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < grace {
		t.Errorf("a process that ignores SIGTERM stopped after %s, before the grace %s", took, grace)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("pid %d still alive after Stop", pid)
		}
	}
	// Stop is idempotent and the driver forgets the pods.
	if err := d.Stop(context.Background(), stubborn.UID, grace); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, ok := d.Status(stubborn.UID); ok {
		t.Error("Status still knows a stopped pod")
	}
	if pods := d.Pods(); len(pods) != 0 {
		t.Errorf("Pods() = %v after stopping both", pods)
	}
	if _, err := os.Stat(stubbornDir); !os.IsNotExist(err) {
		t.Errorf("pod dir not removed: %v", err)
	}
}

func TestStopBoundedByContext(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		helperContainer(t, "main", "ignoreterm"),
	}})
	st := waitStatus(t, d, req.UID, 10*time.Second, "running", running)
	dir, _ := d.PodDir(req.UID)
	waitFor(t, 10*time.Second, "the helper to ignore SIGTERM", func() (bool, string) {
		_, err := os.Stat(filepath.Join(dir, "started"))
		return err == nil, fmt.Sprint(err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx, req.UID, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a short context: err = %v, want DeadlineExceeded", err)
	}
	// A second Stop shortens the first one's grace period.
	begin := time.Now()
	if err := d.Stop(context.Background(), req.UID, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Stop with grace 0 after one with an hour took %s", took)
	}
	if pid := int(st.GetContainerStatuses()[0].GetPid()); processAlive(pid) {
		t.Errorf("pid %d alive after Stop", pid)
	}
}

func TestCloseLeavesNoProcessAlive(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ShutdownGrace = 300 * time.Millisecond
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var reqs []*runtime.PodRequest
	for _, mode := range []string{"sleep", "ignoreterm", "spawnchild", "httpserver"} {
		c := withPorts(helperContainer(t, "main", mode), 18082)
		reqs = append(reqs, startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{c}}))
	}
	var pids []int
	for _, req := range reqs {
		st := waitStatus(t, d, req.UID, 10*time.Second, "running", running)
		pids = append(pids, int(st.GetContainerStatuses()[0].GetPid()))
	}
	// The grandchild of the spawnchild pod, in its process group.
	dir, _ := d.PodDir(reqs[2].UID)
	waitFor(t, 10*time.Second, "the grandchild's pid", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dir, "child-pid.txt"))
		if err != nil {
			return false, err.Error()
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil {
			return false, err.Error()
		}
		pids = append(pids, pid)
		return true, ""
	})
	ignoreDir, _ := d.PodDir(reqs[1].UID)
	waitFor(t, 10*time.Second, "the helper to ignore SIGTERM", func() (bool, string) {
		_, err := os.Stat(filepath.Join(ignoreDir, "started"))
		return err == nil, fmt.Sprint(err)
	})
	for _, pid := range pids {
		if !processAlive(pid) {
			t.Fatalf("pid %d not alive before Close", pid)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("pid %d alive after Close", pid)
		}
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.Start(context.Background(), &runtime.PodRequest{UID: "late", Spec: &meridianv1.PodSpec{
		Containers: []*meridianv1.Container{{Name: "c", Command: []string{"true"}}},
	}}); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Start after Close: err = %v, want ErrClosed", err)
	}
}

func TestImageOnlyContainer(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		{Name: "nginx", Image: "nginx:1.27"},
		helperContainer(t, "sidecar", "sleep"),
	}})
	st := waitStatus(t, d, req.UID, 10*time.Second, "the sidecar running", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[1].GetState() == runtime.StateRunning
	})
	cs := st.GetContainerStatuses()[0]
	if cs.GetState() != runtime.StateWaiting || cs.GetReason() != runtime.ReasonImageNotSupported {
		t.Errorf("image-only container: %s", describe(st))
	}
	for _, want := range []string{"nginx:1.27", "runs commands, not images", "set command"} {
		if !strings.Contains(cs.GetMessage(), want) {
			t.Errorf("message %q lacks %q", cs.GetMessage(), want)
		}
	}
	if st.GetPhase() != runtime.PhasePending || st.GetReason() != runtime.ReasonImageNotSupported {
		t.Errorf("pod phase/reason = %s/%s, want Pending/%s", st.GetPhase(), st.GetReason(), runtime.ReasonImageNotSupported)
	}
	if podReady(st) {
		t.Error("pod with an image-only container is Ready")
	}
}

func TestStartValidation(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	ok := &meridianv1.PodSpec{Containers: []*meridianv1.Container{helperContainer(t, "main", "sleep")}}
	tests := []struct {
		name string
		req  *runtime.PodRequest
	}{
		{"no spec", &runtime.PodRequest{UID: "a"}},
		{"empty uid", &runtime.PodRequest{Spec: ok}},
		{"uid with slash", &runtime.PodRequest{UID: "a/b", Spec: ok}},
		{"dot-dot uid", &runtime.PodRequest{UID: "..", Spec: ok}},
		{"no containers", &runtime.PodRequest{UID: "a", Spec: &meridianv1.PodSpec{}}},
		{"bad policy", &runtime.PodRequest{UID: "a", Spec: &meridianv1.PodSpec{RestartPolicy: "Sometimes", Containers: ok.Containers}}},
		{"duplicate names", &runtime.PodRequest{UID: "a", Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{
			{Name: "x", Command: []string{"true"}}, {Name: "x", Command: []string{"true"}},
		}}}},
		{"escaping file", &runtime.PodRequest{UID: "a", Spec: ok, Files: map[string][]byte{"../x": nil}}},
		{"absolute file", &runtime.PodRequest{UID: "a", Spec: ok, Files: map[string][]byte{"/etc/x": nil}}},
	}
	for _, tt := range tests {
		if err := d.Start(context.Background(), tt.req); !errors.Is(err, runtime.ErrInvalidPod) {
			t.Errorf("%s: err = %v, want ErrInvalidPod", tt.name, err)
		}
	}
	req := startPod(t, d, ok)
	if err := d.Start(context.Background(), req); !errors.Is(err, runtime.ErrPodExists) {
		t.Errorf("second Start: err = %v, want ErrPodExists", err)
	}
	if got := d.Pods(); len(got) != 1 || got[0] != req.UID {
		t.Errorf("Pods() = %v, want [%s]", got, req.UID)
	}
	// The driver keeps its own copy of the spec.
	ok.Containers[0].Command = []string{"/nonexistent"}
	st := waitStatus(t, d, req.UID, 10*time.Second, "running", running)
	if st.GetContainerStatuses()[0].GetRestartCount() != 0 {
		t.Errorf("changing the caller's spec affected the pod: %s", describe(st))
	}
}

func TestStartErrorIsRetriedWithBackOff(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{
		{Name: "main", Command: []string{"no-such-command-meridian"}},
	}})
	st := waitStatus(t, d, req.UID, 10*time.Second, "a back-off", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetReason() == runtime.ReasonCrashLoopBackOff
	})
	msg := st.GetContainerStatuses()[0].GetMessage()
	for _, want := range []string{runtime.ReasonStartError, "no-such-command-meridian"} {
		if !strings.Contains(msg, want) {
			t.Errorf("back-off message %q lacks %q", msg, want)
		}
	}
}

func TestInitContainers(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	good := startPod(t, d, &meridianv1.PodSpec{
		RestartPolicy:  runtime.RestartNever,
		InitContainers: []*meridianv1.Container{{Name: "init", Command: []string{"touch", "init-done"}}},
		Containers:     []*meridianv1.Container{{Name: "main", Command: []string{"test", "-f", "init-done"}}},
	})
	bad := startPod(t, d, &meridianv1.PodSpec{
		RestartPolicy:  runtime.RestartNever,
		InitContainers: []*meridianv1.Container{{Name: "init", Command: []string{"false"}}},
		Containers:     []*meridianv1.Container{helperContainer(t, "main", "sleep")},
	})
	waitStatus(t, d, good.UID, 10*time.Second, "Succeeded", func(st *meridianv1.PodStatus) bool {
		return st.GetPhase() == runtime.PhaseSucceeded
	})
	st := waitStatus(t, d, bad.UID, 10*time.Second, "Failed", func(st *meridianv1.PodStatus) bool {
		return st.GetPhase() == runtime.PhaseFailed
	})
	if st.GetReason() != runtime.ReasonInitFailed || st.GetContainerStatuses()[0].GetState() != runtime.StateWaiting {
		t.Errorf("failed init: %s", describe(st))
	}
}

func withPorts(c *meridianv1.Container, ports ...int32) *meridianv1.Container {
	for i, p := range ports {
		c.Ports = append(c.Ports, &meridianv1.ContainerPort{Name: fmt.Sprintf("p%d", i), ContainerPort: p})
	}
	return c
}
