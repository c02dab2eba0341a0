package member_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridian-fed/meridian/member"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The test binary doubles as the workload: with MERIDIAN_TEST_WORKLOAD set
// it runs that workload instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("MERIDIAN_TEST_WORKLOAD") {
	case "http":
		// Answers on POD_IP:PORT with its pod name and version; /healthz
		// fails once the file named by FAIL_HEALTH_FILE exists.
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%s %s %d\n", os.Getenv("POD_NAME"), os.Getenv("VERSION"), os.Getpid())
		})
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if f := os.Getenv("FAIL_HEALTH_FILE"); f != "" {
				if _, err := os.Stat(f); err == nil {
					http.Error(w, "unhealthy", http.StatusInternalServerError)
					return
				}
			}
			fmt.Fprintln(w, "ok")
		})
		addr := net.JoinHostPort(os.Getenv("POD_IP"), os.Getenv("PORT"))
		if err := http.ListenAndServe(addr, mux); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "exit":
		fmt.Println("done:", os.Getenv("POD_NAME"))
		os.Exit(0)
	case "env":
		// Prints NAME=value for each name in ENV_NAMES, then sleeps until stopped.
		for _, name := range strings.Fields(os.Getenv("ENV_NAMES")) {
			fmt.Printf("%s=%s\n", name, os.Getenv(name))
		}
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type env struct {
	t   *testing.T
	m   *member.Member
	cli meridianv1.AdminServiceClient
	log meridianv1.LogServiceClient
}

func startMember(t *testing.T, dir string, mutate func(*member.Config)) *env {
	t.Helper()
	cfg := member.DefaultConfig()
	cfg.Standalone = true
	cfg.Name = "test"
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = ""
	cfg.NodeCount = 2
	cfg.NodeMemory = "64Gi"
	cfg.NodeCPU = "64"
	cfg.PodCIDR = fmt.Sprintf("127.%d.0.0/16", 100+os.Getpid()%100)
	cfg.CrashLoopBackoff = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := member.Start(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("start member: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	conn, err := grpc.NewClient(m.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{t: t, m: m, cli: meridianv1.NewAdminServiceClient(conn), log: meridianv1.NewLogServiceClient(conn)}
}

func (e *env) ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.t.Cleanup(cancel)
	return c
}

func (e *env) apply(objs ...resource.Object) {
	e.t.Helper()
	for _, o := range objs {
		if _, err := e.cli.Apply(e.ctx(), &meridianv1.ApplyRequest{Object: resource.MustWrap(o)}); err != nil {
			e.t.Fatalf("apply %s: %v", o.GetMetadata().GetName(), err)
		}
	}
}

func (e *env) pods(selector string) []*meridianv1.Pod {
	e.t.Helper()
	resp, err := e.cli.List(e.ctx(), &meridianv1.ListRequest{Kind: "pods", Namespace: "default", LabelSelector: selector})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*meridianv1.Pod
	for _, it := range resp.GetItems() {
		out = append(out, it.GetPod())
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func (e *env) waitFor(what string, d time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func ready(p *meridianv1.Pod) bool {
	if p.GetMetadata().GetDeletionTimestamp() != nil || p.GetStatus().GetPhase() != "Running" {
		return false
	}
	for _, c := range p.GetStatus().GetConditions() {
		if c.GetType() == "Ready" {
			return c.GetStatus() == "True"
		}
	}
	return false
}

func readyPods(ps []*meridianv1.Pod) []*meridianv1.Pod {
	var out []*meridianv1.Pod
	for _, p := range ps {
		if ready(p) {
			out = append(out, p)
		}
	}
	return out
}

func int32p(i int32) *int32 { return &i }

// httpTemplate is a pod template running the test binary as an HTTP server.
func httpTemplate(app, version string, extraEnv ...*meridianv1.EnvVar) *meridianv1.PodTemplateSpec {
	self, _ := os.Executable()
	labels := map[string]string{"app": app}
	probe := func(path string) *meridianv1.Probe {
		return &meridianv1.Probe{
			HttpGet:       &meridianv1.HTTPGetAction{Path: path, Port: &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: "http"}}},
			PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 1,
		}
	}
	grace := int64(2)
	return &meridianv1.PodTemplateSpec{
		Metadata: &meridianv1.ObjectMeta{Labels: labels},
		Spec: &meridianv1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []*meridianv1.Container{{
				Name:    "web",
				Command: []string{self},
				Env: append([]*meridianv1.EnvVar{
					{Name: "MERIDIAN_TEST_WORKLOAD", Value: "http"},
					{Name: "VERSION", Value: version},
				}, extraEnv...),
				Ports:          []*meridianv1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: probe("/healthz"),
				LivenessProbe:  probe("/healthz"),
			}},
		},
	}
}

func get(url string) (string, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func deploymentOf(name string, replicas int32, tmpl *meridianv1.PodTemplateSpec) *meridianv1.Deployment {
	return &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: int32p(replicas),
			Selector: &meridianv1.LabelSelector{MatchLabels: tmpl.GetMetadata().GetLabels()},
			Template: tmpl,
			Strategy: &meridianv1.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &meridianv1.RollingUpdateDeployment{
				MaxUnavailable: &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: 1}},
				MaxSurge:       &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: 1}},
			}},
		},
	}
}

// TestDeploymentRunsRealProcesses: 3 replicas become 3 processes answering on
// their own POD_IP; a killed one comes back; a rolling update replaces them
// all without ever dropping below 2 ready; every pod's log is readable.
func TestDeploymentRunsRealProcesses(t *testing.T) {
	e := startMember(t, t.TempDir(), nil)
	e.apply(deploymentOf("web", 3, httpTemplate("web", "v1")))

	e.waitFor("3 ready web pods", 30*time.Second, func() bool { return len(readyPods(e.pods("app=web"))) == 3 })
	pods := readyPods(e.pods("app=web"))
	ips := map[string]bool{}
	for _, p := range pods {
		ip := p.GetStatus().GetPodIp()
		ips[ip] = true
		body, err := get("http://" + net.JoinHostPort(ip, "8080") + "/")
		if err != nil || !strings.HasPrefix(body, p.GetMetadata().GetName()+" v1 ") {
			t.Fatalf("pod %s at %s answered %q, %v", p.GetMetadata().GetName(), ip, body, err)
		}
	}
	if len(ips) != 3 {
		t.Fatalf("pods share addresses: %v", ips)
	}

	// Kill one process: the container restarts in place (restartPolicy Always).
	victim := pods[0]
	pid := victim.GetStatus().GetContainerStatuses()[0].GetPid()
	if pid <= 0 {
		t.Fatalf("no pid in status: %v", victim.GetStatus())
	}
	proc, _ := os.FindProcess(int(pid))
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the killed container to be restarted and ready", 30*time.Second, func() bool {
		for _, p := range e.pods("app=web") {
			if p.GetMetadata().GetName() == victim.GetMetadata().GetName() {
				cs := p.GetStatus().GetContainerStatuses()
				return ready(p) && len(cs) == 1 && cs[0].GetRestartCount() >= 1 && cs[0].GetPid() != pid
			}
		}
		return false
	})

	// Logs of a pod are served by the LogService.
	stream, err := e.log.Logs(e.ctx(), &meridianv1.LogsRequest{Namespace: "default", Pod: victim.GetMetadata().GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil && err != io.EOF {
		t.Fatalf("logs: %v", err)
	}

	// Rolling update to v2: never fewer than 2 ready (maxUnavailable 1).
	e.apply(deploymentOf("web", 3, httpTemplate("web", "v2")))
	minReady := 3
	e.waitFor("all pods on v2", 60*time.Second, func() bool {
		ps := e.pods("app=web")
		r := readyPods(ps)
		if len(r) < minReady {
			minReady = len(r)
		}
		v2 := 0
		for _, p := range r {
			if p.GetSpec().GetContainers()[0].GetEnv()[1].GetValue() == "v2" {
				v2++
			}
		}
		return v2 == 3 && len(ps) == 3
	})
	if minReady < 2 {
		t.Errorf("ready pods dropped to %d during the rolling update (maxUnavailable 1 of 3)", minReady)
	}
	for _, p := range readyPods(e.pods("app=web")) {
		body, err := get("http://" + net.JoinHostPort(p.GetStatus().GetPodIp(), "8080") + "/")
		if err != nil || !strings.Contains(body, " v2 ") {
			t.Errorf("pod %s answered %q, %v after the update", p.GetMetadata().GetName(), body, err)
		}
	}
}

// TestLivenessProbeRestartsContainer: a container whose /healthz starts
// failing is killed and restarted.
func TestLivenessProbeRestartsContainer(t *testing.T) {
	e := startMember(t, t.TempDir(), nil)
	flag := filepath.Join(t.TempDir(), "fail")
	e.apply(deploymentOf("sick", 1, httpTemplate("sick", "v1", &meridianv1.EnvVar{Name: "FAIL_HEALTH_FILE", Value: flag})))
	e.waitFor("the pod to be ready", 30*time.Second, func() bool { return len(readyPods(e.pods("app=sick"))) == 1 })
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a restart caused by the liveness probe", 30*time.Second, func() bool {
		ps := e.pods("app=sick")
		return len(ps) == 1 && len(ps[0].GetStatus().GetContainerStatuses()) == 1 && ps[0].GetStatus().GetContainerStatuses()[0].GetRestartCount() >= 1
	})
	os.Remove(flag)
	e.waitFor("the restarted pod to be ready again", 30*time.Second, func() bool { return len(readyPods(e.pods("app=sick"))) == 1 })
}

// TestStatefulSetStartsInOrder: ordinal i starts only after 0..i-1 are ready.
func TestStatefulSetStartsInOrder(t *testing.T) {
	e := startMember(t, t.TempDir(), nil)
	tmpl := httpTemplate("kv", "v1")
	e.apply(&meridianv1.StatefulSet{
		ApiVersion: "apps/v1", Kind: "StatefulSet",
		Metadata: &meridianv1.ObjectMeta{Name: "kv", Namespace: "default"},
		Spec: &meridianv1.StatefulSetSpec{
			Replicas: int32p(3), ServiceName: "kv",
			Selector: &meridianv1.LabelSelector{MatchLabels: tmpl.GetMetadata().GetLabels()},
			Template: tmpl,
		},
	})
	e.waitFor("3 ready kv pods", 60*time.Second, func() bool { return len(readyPods(e.pods("app=kv"))) == 3 })
	ps := readyPods(e.pods("app=kv"))
	created := map[string]time.Time{}
	started := map[string]time.Time{}
	for _, p := range ps {
		created[p.GetMetadata().GetName()] = p.GetMetadata().GetCreationTimestamp().AsTime()
		for _, c := range p.GetStatus().GetConditions() {
			if c.GetType() == "Ready" {
				started[p.GetMetadata().GetName()] = c.GetLastTransitionTime().AsTime()
			}
		}
	}
	for i := 1; i < 3; i++ {
		prev, cur := fmt.Sprintf("kv-%d", i-1), fmt.Sprintf("kv-%d", i)
		if _, ok := created[cur]; !ok {
			t.Fatalf("no pod %s: %v", cur, created)
		}
		if created[cur].Before(started[prev]) {
			t.Errorf("%s was created at %s, before %s was ready at %s", cur, created[cur], prev, started[prev])
		}
	}
}

// TestJobCompletes: a Job of 3 completions runs real processes to success.
func TestJobCompletes(t *testing.T) {
	e := startMember(t, t.TempDir(), nil)
	self, _ := os.Executable()
	labels := map[string]string{"app": "batch"}
	e.apply(&meridianv1.Job{
		ApiVersion: "batch/v1", Kind: "Job",
		Metadata: &meridianv1.ObjectMeta{Name: "batch", Namespace: "default"},
		Spec: &meridianv1.JobSpec{
			Completions: int32p(3), Parallelism: int32p(2),
			Template: &meridianv1.PodTemplateSpec{
				Metadata: &meridianv1.ObjectMeta{Labels: labels},
				Spec: &meridianv1.PodSpec{RestartPolicy: "Never", Containers: []*meridianv1.Container{{
					Name: "work", Command: []string{self}, Env: []*meridianv1.EnvVar{{Name: "MERIDIAN_TEST_WORKLOAD", Value: "exit"}},
				}}},
			},
		},
	})
	e.waitFor("the job to complete", 60*time.Second, func() bool {
		resp, err := e.cli.Get(e.ctx(), &meridianv1.GetRequest{Kind: "job", Namespace: "default", Name: "batch"})
		if err != nil {
			return false
		}
		st := resp.GetObject().GetJob().GetStatus()
		for _, c := range st.GetConditions() {
			if c.GetType() == "Complete" && c.GetStatus() == "True" {
				return st.GetSucceeded() == 3
			}
		}
		return false
	})
}
