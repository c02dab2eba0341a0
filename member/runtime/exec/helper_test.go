package exec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	"github.com/meridian-fed/meridian/member/runtime/ipam"
	"github.com/meridian-fed/meridian/member/runtime/procstat"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// helperEnv selects what the test binary does when a test runs it as a
// container's process.
const helperEnv = "MERIDIAN_TEST_HELPER"

// TestMain turns the test binary into the workload of the tests when
// MERIDIAN_TEST_HELPER is set.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper is the workload:
//
//	httpserver  serves on $POD_IP:$PORT: /healthz (500 if the file
//	            "unhealthy" exists in the working dir), /ready (200 if the
//	            file "ready" exists), /whoami, /env?name=X, /file?path=X;
//	            exits 0 on SIGTERM
//	tcpserver   accepts TCP connections on $POD_IP:$PORT
//	exit        prints to stdout and stderr, exits with $EXIT_CODE
//	env         prints its environment and exits 0
//	ignoreterm  ignores SIGTERM and sleeps
//	sleep       sleeps
//	agent       runs a driver with one pod (see helperAgent)
//	spawnchild  starts a "sleep" child, which stays in the helper's process
//	            group, writes the child's pid to child-pid.txt, and sleeps
func runHelper(mode string) int {
	switch mode {
	case "httpserver":
		return helperHTTP()
	case "tcpserver":
		l, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("POD_IP"), os.Getenv("PORT")))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return 1
			}
			c.Close()
		}
	case "exit":
		fmt.Println("stdout: exiting with", os.Getenv("EXIT_CODE"))
		fmt.Fprintln(os.Stderr, "stderr: goodbye")
		code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
		return code
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		fmt.Println("ARGS=" + strings.Join(os.Args[1:], " "))
		return 0
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		if err := os.WriteFile("started", nil, 0o644); err != nil {
			return 1
		}
		time.Sleep(time.Hour)
		return 0
	case "sleep":
		time.Sleep(time.Hour)
		return 0
	case "spawnchild":
		self, _ := os.Executable()
		child := osexec.Command(self)
		child.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.WriteFile("child-pid.txt", []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
			return 1
		}
		time.Sleep(time.Hour)
		return 0
	case "agent":
		return helperAgent()
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// helperAgent is an agent in its own process: it runs one "spawnchild" pod
// under $AGENT_ROOT, writes the container's pid to $AGENT_ROOT/container-pid.txt
// once it runs, and sleeps until it is killed.
func helperAgent() int {
	root := os.Getenv("AGENT_ROOT")
	d, err := New(Config{RootDir: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	self, _ := os.Executable()
	spec := &meridianv1.PodSpec{Containers: []*meridianv1.Container{{
		Name: "main", Command: []string{self}, Env: []*meridianv1.EnvVar{
			{Name: helperEnv, Value: "spawnchild"}, {Name: "GORACE", Value: "atexit_sleep_ms=0"},
		},
	}}}
	if err := d.Start(context.Background(), &runtime.PodRequest{UID: "victim", Name: "victim", Spec: spec}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		if st, ok := d.Status("victim"); ok && st.GetContainerStatuses()[0].GetPid() > 0 {
			pid := st.GetContainerStatuses()[0].GetPid()
			if err := os.WriteFile(filepath.Join(root, "container-pid.txt"), []byte(strconv.Itoa(int(pid))), 0o644); err != nil {
				return 1
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(time.Hour)
	return 0
}

func helperHTTP() int {
	addr := net.JoinHostPort(os.Getenv("POD_IP"), os.Getenv("PORT"))
	exists := func(f string) bool { _, err := os.Stat(f); return err == nil }
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if exists("unhealthy") {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !exists("ready") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s %s", os.Getenv("POD_NAME"), os.Getenv("POD_IP"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	fmt.Println("listening on", addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("got SIGTERM")
		_ = srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	return 0
}

// testIPs hands out pod addresses to every test of the package.
var testIPs = func() *ipam.Allocator {
	a, err := ipam.New("127.77.0.0/16")
	if err != nil {
		panic(err)
	}
	return a
}()

var uidSeq atomic.Int64

// newUID returns a UID unique within the test binary.
func newUID(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), uidSeq.Add(1))
}

// testConfig is a driver configuration with short timings.
func testConfig(t *testing.T) Config {
	return Config{
		RootDir:       t.TempDir(),
		BackoffBase:   50 * time.Millisecond,
		BackoffCap:    time.Second,
		ProbeSecond:   50 * time.Millisecond,
		ShutdownGrace: 2 * time.Second,
	}
}

// newDriver starts a driver that the test closes at its end.
func newDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// helperContainer is a container that runs the test binary in mode.
func helperContainer(t *testing.T, name, mode string, env ...string) *meridianv1.Container {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &meridianv1.Container{Name: name, Command: []string{self}}
	c.Env = append(c.Env, &meridianv1.EnvVar{Name: helperEnv, Value: mode},
		// A race-enabled binary otherwise sleeps 1 s on exit.
		&meridianv1.EnvVar{Name: "GORACE", Value: "atexit_sleep_ms=0"})
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		c.Env = append(c.Env, &meridianv1.EnvVar{Name: k, Value: v})
	}
	return c
}

// startPod starts a pod with the given spec on a fresh address and returns
// its request.
func startPod(t *testing.T, d *Driver, spec *meridianv1.PodSpec) *runtime.PodRequest {
	t.Helper()
	uid := newUID(t)
	ip, err := testIPs.Allocate(uid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testIPs.Release(uid) })
	req := &runtime.PodRequest{UID: uid, Namespace: "default", Name: "pod-" + strconv.FormatInt(uidSeq.Load(), 10), Spec: spec, PodIP: ip.String()}
	if err := d.Start(context.Background(), req); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return req
}

// waitFor polls cond every few milliseconds until it holds or timeout
// passes, then fails the test with cond's last explanation.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
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
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits until the pod's status satisfies cond and returns it.
func waitStatus(t *testing.T, d *Driver, uid string, timeout time.Duration, what string, cond func(*meridianv1.PodStatus) bool) *meridianv1.PodStatus {
	t.Helper()
	var last *meridianv1.PodStatus
	waitFor(t, timeout, what, func() (bool, string) {
		st, ok := d.Status(uid)
		if !ok {
			return false, "pod unknown to the driver"
		}
		last = st
		return cond(st), describe(st)
	})
	return last
}

func describe(st *meridianv1.PodStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%q", st.GetPhase(), st.GetReason())
	for _, c := range st.GetContainerStatuses() {
		fmt.Fprintf(&b, " [%s state=%s reason=%q msg=%q ready=%v restarts=%d exit=%d pid=%d]",
			c.GetName(), c.GetState(), c.GetReason(), c.GetMessage(), c.GetReady(), c.GetRestartCount(), c.GetExitCode(), c.GetPid())
	}
	return b.String()
}

func running(st *meridianv1.PodStatus) bool {
	return st.GetPhase() == runtime.PhaseRunning && len(st.GetContainerStatuses()) > 0 &&
		st.GetContainerStatuses()[0].GetState() == runtime.StateRunning
}

func podReady(st *meridianv1.PodStatus) bool {
	for _, c := range st.GetConditions() {
		if c.GetType() == runtime.ConditionReady {
			return c.GetStatus() == "True"
		}
	}
	return false
}

// processAlive reports whether pid is a live process (a zombie is dead).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	st, err := procstat.Read(pid)
	return err == nil && !st.Zombie()
}

// httpGet fetches a URL with a short timeout.
func httpGet(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), nil
}

func intPort(n int32) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: n}}
}

func namedPort(s string) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: s}}
}

// recorder keeps every status the driver reports through OnChange.
type recorder struct {
	d     *Driver
	ready chan struct{}
	mu    sync.Mutex
	seen  []*meridianv1.PodStatus // guarded by mu
}

// newRecordedDriver starts a driver whose status changes are recorded.
func newRecordedDriver(t *testing.T, cfg Config) (*Driver, *recorder) {
	t.Helper()
	r := &recorder{ready: make(chan struct{})}
	cfg.OnChange = func(uid string) {
		<-r.ready
		if st, ok := r.d.Status(uid); ok {
			r.mu.Lock()
			r.seen = append(r.seen, st)
			r.mu.Unlock()
		}
	}
	r.d = newDriver(t, cfg)
	close(r.ready)
	return r.d, r
}

// statuses returns what was recorded so far.
func (r *recorder) statuses() []*meridianv1.PodStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*meridianv1.PodStatus(nil), r.seen...)
}

// sawReason reports whether the first container ever had reason.
func (r *recorder) sawReason(reason string) bool {
	for _, st := range r.statuses() {
		if st.GetContainerStatuses()[0].GetReason() == reason {
			return true
		}
	}
	return false
}
