package exec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// In these tests a probe second lasts 50 ms (testConfig).

func TestLivenessHTTPFailureRestarts(t *testing.T) {
	t.Parallel()
	d, rec := newRecordedDriver(t, testConfig(t))
	c := withPorts(helperContainer(t, "web", "httpserver"), 18100)
	c.Ports[0].Name = "http"
	c.LivenessProbe = &meridianv1.Probe{
		HttpGet: &meridianv1.HTTPGetAction{Path: "/healthz", Port: namedPort("http")},
		// Without a delay the probe fails while the server starts, and
		// kills it: that is what initialDelaySeconds is for. 2 s: a loaded
		// CI machine under -race took more than the 0.3 s this once was.
		InitialDelaySeconds: 40,
		PeriodSeconds:       1,
		TimeoutSeconds:      40,
		FailureThreshold:    3,
	}
	started := time.Now()
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{c}})
	st := waitStatus(t, d, req.UID, 10*time.Second, "running", running)
	firstPID := st.GetContainerStatuses()[0].GetPid()
	waitFor(t, 10*time.Second, "the server to listen", func() (bool, string) {
		code, _, err := httpGet("http://" + req.PodIP + ":18100/healthz")
		return err == nil && code == 200, ""
	})
	// Healthy past the initial delay and a few periods: no restart. (A
	// window in which nothing may happen, not a synchronisation.)
	time.Sleep(time.Until(started.Add(2*time.Second + 300*time.Millisecond)))
	if st, _ := d.Status(req.UID); st.GetContainerStatuses()[0].GetRestartCount() != 0 {
		t.Fatalf("healthy container restarted: %s", describe(st))
	}
	dir, _ := d.PodDir(req.UID)
	marker := filepath.Join(dir, "unhealthy")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, req.UID, 10*time.Second, "a restart after the liveness probe fails", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetRestartCount() >= 1
	})
	if !rec.sawReason(runtime.ReasonUnhealthy) {
		t.Error("the container never had reason Unhealthy")
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, d, req.UID, 10*time.Second, "running again", running)
	if pid := st.GetContainerStatuses()[0].GetPid(); pid == firstPID {
		t.Errorf("pid %d unchanged after a liveness restart", pid)
	}
}

func TestReadinessToggles(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	c := withPorts(helperContainer(t, "web", "httpserver"), 18101)
	c.ReadinessProbe = &meridianv1.Probe{
		HttpGet:          &meridianv1.HTTPGetAction{Path: "/ready", Port: intPort(18101)},
		PeriodSeconds:    1,
		TimeoutSeconds:   20,
		FailureThreshold: 1,
		SuccessThreshold: 2,
	}
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{c}})
	waitStatus(t, d, req.UID, 10*time.Second, "running", running)
	time.Sleep(200 * time.Millisecond)
	if st, _ := d.Status(req.UID); st.GetContainerStatuses()[0].GetReady() || podReady(st) {
		t.Fatalf("ready before the probe succeeded: %s", describe(st))
	}
	dir, _ := d.PodDir(req.UID)
	marker := filepath.Join(dir, "ready")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, d, req.UID, 10*time.Second, "ready", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetReady()
	})
	if !podReady(st) {
		t.Errorf("container ready but the pod's Ready condition is not True: %v", st.GetConditions())
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, d, req.UID, 10*time.Second, "not ready", func(st *meridianv1.PodStatus) bool {
		return !st.GetContainerStatuses()[0].GetReady()
	})
	if podReady(st) {
		t.Error("pod Ready after its container became unready")
	}
	if n := st.GetContainerStatuses()[0].GetRestartCount(); n != 0 {
		t.Errorf("a readiness failure restarted the container (%d)", n)
	}
}

func TestExecAndTCPProbes(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))

	// Exec readiness: runs in the pod directory with the container's
	// environment ($(READY_FILE) is expanded).
	execC := helperContainer(t, "main", "sleep", "READY_FILE=ready-now")
	execC.ReadinessProbe = &meridianv1.Probe{
		Exec:           &meridianv1.ExecAction{Command: []string{"test", "-f", "$(READY_FILE)"}},
		PeriodSeconds:  1,
		TimeoutSeconds: 20,
	}
	execPod := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{execC}})

	// TCP readiness on a named port, TCP liveness on a port nobody serves.
	tcpC := withPorts(helperContainer(t, "main", "tcpserver"), 18102)
	tcpC.Ports[0].Name = "svc"
	tcpC.ReadinessProbe = &meridianv1.Probe{TcpSocket: &meridianv1.TCPSocketAction{Port: namedPort("svc")}, PeriodSeconds: 1, TimeoutSeconds: 20}
	tcpPod := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{tcpC}})

	deadC := helperContainer(t, "main", "sleep")
	deadC.LivenessProbe = &meridianv1.Probe{
		TcpSocket:        &meridianv1.TCPSocketAction{Port: intPort(18103)},
		PeriodSeconds:    1,
		TimeoutSeconds:   20,
		FailureThreshold: 2,
	}
	deadPod := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{deadC}})

	waitStatus(t, d, execPod.UID, 10*time.Second, "running", running)
	time.Sleep(150 * time.Millisecond)
	if st, _ := d.Status(execPod.UID); st.GetContainerStatuses()[0].GetReady() {
		t.Fatalf("exec probe passed before its file existed: %s", describe(st))
	}
	dir, _ := d.PodDir(execPod.UID)
	if err := os.WriteFile(filepath.Join(dir, "ready-now"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, execPod.UID, 10*time.Second, "exec probe ready", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetReady() && podReady(st)
	})
	waitStatus(t, d, tcpPod.UID, 10*time.Second, "tcp probe ready", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetReady()
	})
	waitStatus(t, d, deadPod.UID, 10*time.Second, "tcp liveness restart", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetRestartCount() >= 1
	})
}

func TestStartupProbeGatesReadiness(t *testing.T) {
	t.Parallel()
	d := newDriver(t, testConfig(t))
	c := helperContainer(t, "main", "sleep")
	c.StartupProbe = &meridianv1.Probe{
		Exec:             &meridianv1.ExecAction{Command: []string{"test", "-f", "started-up"}},
		PeriodSeconds:    1,
		TimeoutSeconds:   20,
		FailureThreshold: 1000,
	}
	req := startPod(t, d, &meridianv1.PodSpec{Containers: []*meridianv1.Container{c}})
	waitStatus(t, d, req.UID, 10*time.Second, "running", running)
	time.Sleep(150 * time.Millisecond)
	if st, _ := d.Status(req.UID); st.GetContainerStatuses()[0].GetReady() {
		t.Fatalf("ready before the startup probe succeeded: %s", describe(st))
	}
	dir, _ := d.PodDir(req.UID)
	if err := os.WriteFile(filepath.Join(dir, "started-up"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, req.UID, 10*time.Second, "ready after startup", func(st *meridianv1.PodStatus) bool {
		return st.GetContainerStatuses()[0].GetReady()
	})
}

func TestProbeTimingDefaults(t *testing.T) {
	d := &Driver{cfg: Config{ProbeSecond: time.Second}}
	got := d.timing(&meridianv1.Probe{}, probeReadiness)
	want := probeTiming{period: 10 * time.Second, timeout: time.Second, success: 1, failure: 3}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	got = d.timing(&meridianv1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 2, TimeoutSeconds: 3, SuccessThreshold: 4, FailureThreshold: 6}, probeLiveness)
	want = probeTiming{initialDelay: 5 * time.Second, period: 2 * time.Second, timeout: 3 * time.Second, success: 1, failure: 6}
	if got != want {
		t.Errorf("liveness = %+v, want %+v (success forced to 1)", got, want)
	}
}

func TestResolvePort(t *testing.T) {
	ports := []*meridianv1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	tests := []struct {
		in      *meridianv1.IntOrString
		want    int
		wantErr bool
	}{
		{in: intPort(81), want: 81},
		{in: namedPort("http"), want: 8080},
		{in: namedPort("9090"), want: 9090},
		{in: namedPort("grpc"), wantErr: true},
		{in: intPort(0), wantErr: true},
		{in: intPort(70000), wantErr: true},
		{in: nil, wantErr: true},
	}
	for _, tt := range tests {
		got, err := resolvePort(tt.in, ports)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("resolvePort(%v) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
