package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// memberProcess is a `meridian member --standalone` running as its own process.
type memberProcess struct {
	cmd        *exec.Cmd
	api        string
	httpAddr   string
	gossipAddr string
	done       chan error
	cli        meridianv1.AdminServiceClient
}

func startMemberProcess(t testing.TB, dataDir, api, podCIDR string, extra ...string) *memberProcess {
	t.Helper()
	p := &memberProcess{api: api, httpAddr: "127.0.0.1:" + freePort(t), done: make(chan error, 1)}
	args := append([]string{"member", "--standalone", "--name", "e2e", "--data-dir", dataDir,
		"--listen", p.api, "--http-listen", p.httpAddr, "--pod-cidr", podCIDR, "--log-level", "warn"}, extra...)
	p.cmd = exec.Command(meridianBinary(t), args...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	waitReady(t, p.httpAddr, p.done)
	conn, err := grpc.NewClient(p.api, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.cli = meridianv1.NewAdminServiceClient(conn)
	return p
}

func waitReady(t testing.TB, httpAddr string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("process exited before it was ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready after 30s")
		}
	}
}

func (p *memberProcess) stop(t testing.TB) {
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Error("member did not stop within 30s of SIGTERM")
	}
}

func (p *memberProcess) kill9(t testing.TB) {
	_ = p.cmd.Process.Kill()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("member did not die after SIGKILL")
	}
}

func (p *memberProcess) pods(t testing.TB, ns string) []*meridianv1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.cli.List(ctx, &meridianv1.ListRequest{Kind: "pods", Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	var out []*meridianv1.Pod
	for _, it := range resp.GetItems() {
		out = append(out, it.GetPod())
	}
	return out
}

func (p *memberProcess) apply(t testing.TB, objs ...resource.Object) {
	t.Helper()
	for _, o := range objs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.cli.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(o)})
		cancel()
		if err != nil {
			t.Fatalf("apply %s: %v", o.GetMetadata().GetName(), err)
		}
	}
}

func running(ps []*meridianv1.Pod) int {
	n := 0
	for _, p := range ps {
		if p.GetStatus().GetPhase() == "Running" && p.GetMetadata().GetDeletionTimestamp() == nil {
			n++
		}
	}
	return n
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// processesOf counts live processes whose environment says they belong to
// the pod ns/name (every container gets POD_NAMESPACE and POD_NAME).
func processesOf(ns, name string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := bytes.Split(env, []byte{0})
		var gotNS, gotName bool
		for _, v := range vars {
			gotNS = gotNS || string(v) == "POD_NAMESPACE="+ns
			gotName = gotName || string(v) == "POD_NAME="+name
		}
		if gotNS && gotName {
			n++
		}
	}
	return n
}

func sleeper(ns string) (*meridianv1.Namespace, *meridianv1.StatefulSet, *meridianv1.Deployment) {
	labels := func(app string) map[string]string { return map[string]string{"app": app} }
	tmpl := func(app string) *meridianv1.PodTemplateSpec {
		return &meridianv1.PodTemplateSpec{
			Metadata: &meridianv1.ObjectMeta{Labels: labels(app)},
			Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{
				Name: "main", Command: []string{"sleep", "3600"},
			}}},
		}
	}
	r3, r2 := int32(3), int32(2)
	return &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: ns}},
		&meridianv1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet",
			Metadata: &meridianv1.ObjectMeta{Name: "kv", Namespace: ns},
			Spec:     &meridianv1.StatefulSetSpec{Replicas: &r3, ServiceName: "kv", Selector: &meridianv1.LabelSelector{MatchLabels: labels("kv")}, Template: tmpl("kv")}},
		&meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment",
			Metadata: &meridianv1.ObjectMeta{Name: "web", Namespace: ns},
			Spec:     &meridianv1.DeploymentSpec{Replicas: &r2, Selector: &meridianv1.LabelSelector{MatchLabels: labels("web")}, Template: tmpl("web")}}
}

// TestMemberSurvivesKill9 kills the member agent with SIGKILL and restarts
// it: every object is still stored, and every pod runs again exactly once —
// never two processes for one StatefulSet pod.
func TestMemberSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	api := "127.0.0.1:" + freePort(t)
	cidr := "127.77.0.0/16"
	ns := fmt.Sprintf("e2e-%d", os.Getpid())
	m := startMemberProcess(t, dir, api, cidr)
	n, sts, d := sleeper(ns)
	m.apply(t, n, sts, d)
	waitFor(t, "5 running pods", 60*time.Second, func() bool { return running(m.pods(t, ns)) == 5 })
	before := map[string]string{}
	for _, p := range m.pods(t, ns) {
		before[p.GetMetadata().GetName()] = p.GetMetadata().GetUid()
	}

	m.kill9(t)
	// The containers die with the agent (parent-death signal).
	waitFor(t, "the pods' processes to die with the agent", 10*time.Second, func() bool {
		for name := range before {
			if processesOf(ns, name) != 0 {
				return false
			}
		}
		return true
	})

	m2 := startMemberProcess(t, dir, api, cidr)
	waitFor(t, "5 running pods after the restart", 60*time.Second, func() bool { return running(m2.pods(t, ns)) == 5 })
	after := m2.pods(t, ns)
	if len(after) != 5 {
		t.Fatalf("%d pods after the restart, want 5", len(after))
	}
	for _, p := range after {
		name := p.GetMetadata().GetName()
		if strings.HasPrefix(name, "kv-") && before[name] != p.GetMetadata().GetUid() {
			t.Errorf("statefulset pod %s was recreated (uid %s → %s); it should have been restarted in place", name, before[name], p.GetMetadata().GetUid())
		}
		if c := processesOf(ns, name); c != 1 {
			t.Errorf("pod %s has %d processes, want exactly 1", name, c)
		}
	}
	for _, name := range []string{"kv-0", "kv-1", "kv-2"} {
		if _, ok := before[name]; !ok {
			t.Errorf("statefulset pod %s missing before the kill", name)
		}
	}
	// Nothing in the store was lost.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range []struct{ kind, name string }{{"statefulset", "kv"}, {"deployment", "web"}} {
		if _, err := m2.cli.Get(ctx, &meridianv1.GetRequest{Kind: k.kind, Namespace: ns, Name: k.name}); err != nil {
			t.Errorf("%s %s lost: %v", k.kind, k.name, err)
		}
	}
}

// BenchmarkApplyTo100ExecPodsRunning measures, on one member with the exec
// runtime, the time from applying a Deployment of 100 replicas (real `sleep`
// processes) to all 100 pods Running.
//
//	go test ./test/e2e -run '^$' -bench BenchmarkApplyTo100ExecPodsRunning -benchtime 3x
func BenchmarkApplyTo100ExecPodsRunning(b *testing.B) {
	m := startMemberProcess(b, b.TempDir(), "127.0.0.1:"+freePort(b), "127.78.0.0/16", "--node-count", "4")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		ns := fmt.Sprintf("bench-%d", i)
		n, _, d := sleeper(ns)
		r := int32(100)
		d.Spec.Replicas = &r
		m.apply(b, n)
		start := time.Now()
		m.apply(b, d)
		waitFor(b, "100 running pods", 120*time.Second, func() bool { return running(m.pods(b, ns)) == 100 })
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-100-running")
}

// BenchmarkMemberIdleRSS reports the resident memory of an idle member agent
// (exec runtime, 3 nodes, no pods).
//
//	go test ./test/e2e -run '^$' -bench BenchmarkMemberIdleRSS -benchtime 3x
func BenchmarkMemberIdleRSS(b *testing.B) {
	var total float64
	for i := 0; i < b.N; i++ {
		m := startMemberProcess(b, b.TempDir(), "127.0.0.1:"+freePort(b), "127.79.0.0/16", "--node-count", "3")
		time.Sleep(2 * time.Second) // an idle window to measure, not a synchronisation
		rss, err := rssMiB(m.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		total += rss
		m.stop(b)
	}
	b.ReportMetric(total/float64(b.N), "RSS-MiB")
}

// BenchmarkSimPods runs a member with the sim runtime on 1,000 simulated
// nodes, applies one Deployment of 10,000 replicas, and reports pods/s from
// apply to all Running, and the member's RSS growth per 1,000 pods.
//
//	go test ./test/e2e -run '^$' -bench BenchmarkSimPods -benchtime 1x
func BenchmarkSimPods(b *testing.B) {
	const pods = 10000
	for i := 0; i < b.N; i++ {
		m := startMemberProcess(b, b.TempDir(), "127.0.0.1:"+freePort(b), "127.80.0.0/14",
			"--runtime", "sim", "--node-count", "1000", "--node-pods", "110", "--node-cpu", "64", "--node-memory", "256Gi")
		idle, err := rssMiB(m.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		ns := fmt.Sprintf("sim-%d", i)
		n, _, d := sleeper(ns)
		r := int32(pods)
		d.Spec.Replicas = &r
		m.apply(b, n)
		start := time.Now()
		m.apply(b, d)
		// Listing 10,000 pods costs the member real CPU: look twice a second,
		// so that the poll does not slow down what it measures.
		deadline := time.Now().Add(10 * time.Minute)
		for running(m.pods(b, ns)) != pods {
			if time.Now().After(deadline) {
				b.Fatal("not all sim pods running after 10 minutes")
			}
			time.Sleep(500 * time.Millisecond)
		}
		el := time.Since(start)
		rss, err := rssMiB(m.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(pods/el.Seconds(), "pods/s")
		b.ReportMetric((rss-idle)/(pods/1000), "RSS-MiB-per-1000-pods")
		m.stop(b)
	}
}
