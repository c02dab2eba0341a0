package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// federation is a hub process and its member processes on loopback.
type federation struct {
	t         testing.TB
	hub       *hubProcess
	hubDir    string
	hubArgs   []string
	gossipKey string
	hubGossip string
	members   map[string]*memberProcess
}

// startFederation starts a hub with gossip (the dev profile) and
// a short heartbeat timeout; extra flags go last.
func startFederation(t testing.TB, extra ...string) *federation {
	t.Helper()
	key, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &federation{t: t, hubDir: t.TempDir(), gossipKey: key, hubGossip: "127.0.0.1:" + freePort(t), members: map[string]*memberProcess{}}
	f.hubArgs = []string{"--gossip-listen", f.hubGossip, "--gossip-key", key, "--gossip-profile", "dev", "--heartbeat-timeout", "3s",
		"--region", "region-a", "--datacenter", "dc-a1"}
	f.hubArgs = append(f.hubArgs, extra...)
	f.hub = startHubProcess(t, f.hubDir, f.hubArgs...)
	return f
}

// restartHub starts the hub again on the same data and addresses.
func (f *federation) restartHub() {
	f.t.Helper()
	old := f.hub
	p := &hubProcess{dataDir: f.hubDir, api: old.api, httpAddr: old.httpAddr, done: make(chan error, 1)}
	args := append([]string{"hub", "--data-dir", f.hubDir, "--listen", p.api, "--http-listen", p.httpAddr}, etcdArgs(old.cmd.Args)...)
	args = append(args, "--log-level", "warn")
	args = append(args, f.hubArgs...)
	p.cmd = exec.Command(meridianBinary(f.t), args...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	f.t.Cleanup(func() { p.stop(f.t) })
	waitReady(f.t, p.httpAddr, p.done)
	f.hub = p
}

// etcdArgs repeats the etcd URL flags of an earlier hub command line.
func etcdArgs(args []string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--etcd-client-url" || args[i] == "--etcd-peer-url" {
			out = append(out, args[i], args[i+1])
		}
	}
	return out
}

// token makes a join token with the CLI and returns it and the CA pin.
func (f *federation) token(t testing.TB, extra ...string) (token, pin string) {
	t.Helper()
	out, err := runCLI(t, f.hub, "", append([]string{"token", "create"}, extra...)...)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`--join-token (\S+) --hub-ca-pin (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("token create printed no join command:\n%s", out)
	}
	return m[1], m[2]
}

type memberSpec struct {
	name, region, dc, podCIDR string
}

func (f *federation) memberArgs(s memberSpec, dataDir, api, httpAddr, gossipAddr string) []string {
	return []string{"member", "--name", s.name, "--region", s.region, "--datacenter", s.dc,
		"--data-dir", dataDir, "--listen", api, "--http-listen", httpAddr, "--pod-cidr", s.podCIDR,
		"--service-cidr", strings.Replace(s.podCIDR, "127.", "127.1", 1),
		"--node-count", "1", "--hub", f.hub.api, "--heartbeat-interval", "500ms",
		"--gossip-listen", gossipAddr, "--gossip-seeds", f.hubGossip, "--gossip-key", f.gossipKey, "--gossip-profile", "dev",
		"--log-level", "warn"}
}

// startMember starts (or restarts, on the same data and addresses) a
// member process; extra flags go last.
func (f *federation) startMember(t testing.TB, s memberSpec, dataDir string, old *memberProcess, extra ...string) *memberProcess {
	t.Helper()
	p := &memberProcess{done: make(chan error, 1)}
	gossipAddr := "127.0.0.1:" + freePort(t)
	if old != nil {
		p.api, p.httpAddr, gossipAddr = old.api, old.httpAddr, old.gossipAddr
	} else {
		p.api, p.httpAddr = "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	}
	p.gossipAddr = gossipAddr
	p.cmd = exec.Command(meridianBinary(t), append(f.memberArgs(s, dataDir, p.api, p.httpAddr, gossipAddr), extra...)...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	waitReady(t, p.httpAddr, p.done)
	conn, err := grpc.NewClient(p.api, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.cli = meridianv1.NewAdminServiceClient(conn)
	f.members[s.name] = p
	return p
}

// clusters reads every Cluster's health from the hub.
func (f *federation) clusters(t testing.TB) map[string]*meridianv1.Cluster {
	t.Helper()
	out, err := runCLI(t, f.hub, "", "get", "clusters", "-o", "json")
	if err != nil {
		t.Fatalf("get clusters: %v\n%s", err, out)
	}
	got := map[string]*meridianv1.Cluster{}
	for _, o := range decodeList(t, out) {
		if c := o.GetCluster(); c != nil {
			got[c.GetMetadata().GetName()] = c
		}
	}
	return got
}

func clusterHealth(c *meridianv1.Cluster) string {
	for _, cond := range c.GetStatus().GetConditions() {
		if cond.GetType() == "Ready" {
			return cond.GetReason()
		}
	}
	return ""
}

func uids(ps []*meridianv1.Pod) []string {
	var out []string
	for _, p := range ps {
		if p.GetMetadata().GetDeletionTimestamp() == nil {
			out = append(out, p.GetMetadata().GetUid())
		}
	}
	sort.Strings(out)
	return out
}

func sleeperDeploy(replicas int, version string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: fed}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: fed}
data: {VERSION: %q}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper, namespace: fed}
spec:
  replicas: %d
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: ["sleep", "3600"]
`, version, replicas)
}

var topology = []memberSpec{
	{"dc-a1", "region-a", "dc-a1", "127.71.0.0/16"},
	{"dc-a2", "region-a", "dc-a2", "127.72.0.0/16"},
	{"dc-b1", "region-b", "dc-b1", "127.73.0.0/16"},
}

// TestFederationEndToEnd runs a hub and three member processes: join,
// apply, every member runs its replicas; a hub restart and a member
// restart resume without duplicates or losses; bad and expired tokens are
// refused; gossip and the stream detect a killed member.
func TestFederationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	f := startFederation(t)
	dirs := map[string]string{}
	for _, s := range topology {
		tok, pin := f.token(t, "--for-cluster", s.name, "--single-use")
		dirs[s.name] = t.TempDir()
		f.startMember(t, s, dirs[s.name], nil, "--join-token", tok, "--hub-ca-pin", pin)
	}
	waitFor(t, "three Ready clusters", 30*time.Second, func() bool {
		cs := f.clusters(t)
		n := 0
		for _, c := range cs {
			if clusterHealth(c) == "Ready" {
				n++
			}
		}
		return n == 3
	})

	// Apply on the hub: every member runs 2 replicas; the hub sums 6.
	if out, err := runCLI(t, f.hub, sleeperDeploy(2, "v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for _, s := range topology {
		m := f.members[s.name]
		waitFor(t, s.name+" runs 2 replicas", 30*time.Second, func() bool { return running(m.pods(t, "fed")) == 2 })
	}
	waitFor(t, "READY 6/6 on the hub", 30*time.Second, func() bool {
		out, _ := runCLI(t, f.hub, "", "get", "deploy", "sleeper", "-n", "fed")
		return strings.Contains(out, "6/6")
	})
	before := map[string][]string{}
	for _, s := range topology {
		before[s.name] = uids(f.members[s.name].pods(t, "fed"))
	}

	// The hub stops: members keep their pods. It comes back: they resync
	// without restarting a healthy pod; the next change arrives once.
	f.hub.stop(t)
	for _, s := range topology {
		if got := uids(f.members[s.name].pods(t, "fed")); strings.Join(got, ",") != strings.Join(before[s.name], ",") || running(f.members[s.name].pods(t, "fed")) != 2 {
			t.Errorf("%s: pods changed while the hub was down: %v → %v", s.name, before[s.name], got)
		}
	}
	f.restartHub()
	if out, err := runCLI(t, f.hub, sleeperDeploy(3, "v2"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply after the hub restart: %v\n%s", err, out)
	}
	for _, s := range topology {
		m := f.members[s.name]
		waitFor(t, s.name+" runs 3 replicas after the hub restart", 30*time.Second, func() bool { return running(m.pods(t, "fed")) == 3 })
		got := uids(m.pods(t, "fed"))
		for _, u := range before[s.name] {
			if !contains(got, u) {
				t.Errorf("%s: healthy pod %s was restarted by the resync (pods now %v)", s.name, u, got)
			}
		}
		d := memberObject(t, m, "deployments", "fed", "sleeper").GetDeployment()
		if d.GetMetadata().GetGeneration() != 2 {
			t.Errorf("%s: deployment generation %d, want 2 (created once, changed once)", s.name, d.GetMetadata().GetGeneration())
		}
	}

	// A member stops; three changes happen; it comes back and has them all.
	a2 := f.members["dc-a2"]
	a2.stop(t)
	for _, y := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: added, namespace: fed}\ndata: {k: v}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: fed}\ndata: {VERSION: v3}\n",
	} {
		if out, err := runCLI(t, f.hub, y, "apply", "-f", "-"); err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
	}
	if out, err := runCLI(t, f.hub, "", "delete", "configmap", "added", "-n", "fed"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, err := runCLI(t, f.hub, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: fed}\n", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	a2 = f.startMember(t, topology[1], dirs["dc-a2"], a2)
	waitFor(t, "dc-a2 to catch up", 30*time.Second, func() bool {
		return memberHas(t, a2, "configmaps", "fed", "late")
	})
	if memberHas(t, a2, "configmaps", "fed", "added") {
		t.Error("dc-a2 still has a ConfigMap deleted while it was down")
	}
	if v := memberObject(t, a2, "configmaps", "fed", "settings").GetConfigMap().GetData()["VERSION"]; v != "v3" {
		t.Errorf("dc-a2 settings VERSION = %q, want v3", v)
	}
	waitFor(t, "dc-a2 Ready again", 30*time.Second, func() bool { return clusterHealth(f.clusters(t)["dc-a2"]) == "Ready" })

	// Bad, used and expired tokens are refused, and the member says why.
	for _, c := range []struct{ name, token, want string }{
		{"bad-token", "abcdef.0123456789abcdef0123456789abcdef", "unknown"},
		{"malformed-token", "abcdef.0123", "malformed"},
	} {
		_, pin := f.token(t)
		out := memberRefused(t, f, memberSpec{c.name, "region-b", "dc-b9", "127.74.0.0/16"}, c.token, pin)
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: the member's error does not say %s:\n%s", c.name, c.want, out)
		} else {
			t.Logf("%s refused: %s", c.name, lastLine(out))
		}
	}
	expired, pin := f.token(t, "--ttl", "1s")
	waitFor(t, "the token to expire", 10*time.Second, func() bool {
		out, _ := runCLI(t, f.hub, "", "token", "list")
		return strings.Contains(out, "expired")
	})
	if out := memberRefused(t, f, memberSpec{"late-joiner", "region-b", "dc-b9", "127.74.0.0/16"}, expired, pin); !strings.Contains(out, "expired") {
		t.Errorf("expired token: the member's error does not say so:\n%s", out)
	}

	// kill -9 a member: the stream breaks at once (Suspect), gossip
	// declares it dead (Unreachable).
	b1 := f.members["dc-b1"]
	waitFor(t, "every cluster Ready before the kill", 30*time.Second, func() bool {
		cs := f.clusters(t)
		return clusterHealth(cs["dc-a1"]) == "Ready" && clusterHealth(cs["dc-a2"]) == "Ready" && clusterHealth(cs["dc-b1"]) == "Ready"
	})
	start := time.Now()
	b1.kill9(t)
	suspect := time.Duration(0)
	waitFor(t, "dc-b1 Unreachable", 30*time.Second, func() bool {
		h := clusterHealth(f.clusters(t)["dc-b1"])
		if h != "Ready" && suspect == 0 {
			suspect = time.Since(start)
		}
		return h == "Unreachable"
	})
	t.Logf("killed member not Ready after %s", suspect.Round(10*time.Millisecond))
	t.Logf("killed member Unreachable after %s", time.Since(start).Round(10*time.Millisecond))
	out, _ := runCLI(t, f.hub, "", "get", "events", "-n", "default")
	if !strings.Contains(out, "ClusterUnreachable") {
		t.Errorf("no ClusterUnreachable event:\n%s", out)
	}
}

// memberRefused starts a member that must fail to join, and returns its output.
func memberRefused(t testing.TB, f *federation, s memberSpec, token, pin string) string {
	t.Helper()
	dir := t.TempDir()
	args := append(f.memberArgs(s, dir, "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)),
		"--join-token", token, "--hub-ca-pin", pin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, meridianBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Fatalf("member %s joined with a token it should not have:\n%s", s.name, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "hub", "member.crt")); err == nil {
		t.Errorf("member %s kept a certificate after a refused join", s.name)
	}
	return out.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func memberObject(t testing.TB, m *memberProcess, kind, ns, name string) *meridianv1.Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.cli.Get(ctx, &meridianv1.GetRequest{Kind: kind, Namespace: ns, Name: name})
	if err != nil {
		t.Fatalf("member get %s %s/%s: %v", kind, ns, name, err)
	}
	return resp.GetObject()
}

func memberHas(t testing.TB, m *memberProcess, kind, ns, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := m.cli.Get(ctx, &meridianv1.GetRequest{Kind: kind, Namespace: ns, Name: name})
	return err == nil
}

// decodeList reads the JSON of `meridian get KIND -o json`.
func decodeList(t testing.TB, out string) []*meridianv1.Object {
	t.Helper()
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not a JSON list: %v\n%s", err, out)
	}
	var objs []*meridianv1.Object
	for _, raw := range list.Items {
		docs, err := manifest.Decode(raw, "get.json")
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		for _, d := range docs {
			objs = append(objs, resource.MustWrap(d.Object))
		}
	}
	return objs
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// adminClient is the hub's Admin API over TLS with the hub's first admin token.
func adminClient(t testing.TB, h *hubProcess) meridianv1.AdminServiceClient {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(h.dataDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.PoolFromPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	tokText, err := os.ReadFile(filepath.Join(h.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseToken(strings.TrimSpace(string(tokText)))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := pki.ClientTLS(pool, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(h.api, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)), grpc.WithPerRPCCredentials(pki.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return meridianv1.NewAdminServiceClient(conn)
}

// BenchmarkKilledMemberDetection runs a hub and two members as processes
// with the dev gossip profile (what `meridian dev` uses), kills one with
// SIGKILL, and measures how long the hub takes to see it Suspect (not
// Ready) and Unreachable.
//
//	go test ./test/e2e -run '^$' -bench KilledMemberDetection -benchtime 5x
func BenchmarkKilledMemberDetection(b *testing.B) {
	f := startFederation(b)
	admin := adminClient(b, f.hub)
	healthOf := func(name string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := admin.Get(ctx, &meridianv1.GetRequest{Kind: "clusters", Name: name})
		if err != nil {
			return ""
		}
		return clusterHealth(resp.GetObject().GetCluster())
	}
	tok, pin := f.token(b, "--for-cluster", "dc-a1")
	f.startMember(b, topology[0], b.TempDir(), nil, "--join-token", tok, "--hub-ca-pin", pin)
	var suspect, unreachable time.Duration
	for i := 0; i < b.N; i++ {
		s := memberSpec{fmt.Sprintf("victim-%d", i), "region-b", "dc-b1", fmt.Sprintf("127.%d.0.0/16", 30+i%20)}
		tok, pin := f.token(b, "--for-cluster", s.name)
		m := f.startMember(b, s, b.TempDir(), nil, "--join-token", tok, "--hub-ca-pin", pin)
		waitFor(b, s.name+" Ready", 30*time.Second, func() bool { return healthOf(s.name) == "Ready" })
		start := time.Now()
		m.kill9(b)
		var sus time.Duration
		waitFor(b, s.name+" Unreachable", 30*time.Second, func() bool {
			h := healthOf(s.name)
			if h != "Ready" && sus == 0 {
				sus = time.Since(start)
			}
			return h == "Unreachable"
		})
		suspect += sus
		unreachable += time.Since(start)
	}
	b.ReportMetric(suspect.Seconds()/float64(b.N), "suspect-s")
	b.ReportMetric(unreachable.Seconds()/float64(b.N), "unreachable-s")
	b.ReportMetric(0, "ns/op")
}

// TestDevFederation runs `meridian dev` as a user would: it comes up with
// three Ready members, writes the client context, places a workload on
// every member, and Ctrl-C stops every process it started. A second run
// reuses the data.
func TestDevFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := filepath.Join(t.TempDir(), "dev")
	clientCfg := filepath.Join(t.TempDir(), "client.yaml")
	for run := 0; run < 2; run++ {
		cmd := exec.Command(meridianBinary(t), "dev", "--dir", dir, "--port-base", "0", "--runtime", "sim", "--nodes", "1")
		cmd.Env = append(os.Environ(), "MERIDIAN_CLIENT_CONFIG="+clientCfg)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitFor(t, "the dev banner", 90*time.Second, func() bool {
			select {
			case err := <-done:
				t.Fatalf("meridian dev exited: %v\n%s", err, out.String())
			default:
			}
			return strings.Contains(out.String(), "Ctrl-C stops everything")
		})
		cli := func(stdin string, args ...string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := exec.CommandContext(ctx, meridianBinary(t), args...)
			c.Env = append(os.Environ(), "MERIDIAN_CLIENT_CONFIG="+clientCfg)
			c.Stdin = strings.NewReader(stdin)
			b, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("meridian %v: %v\n%s", args, err, b)
			}
			return string(b)
		}
		clusters := cli("", "get", "clusters")
		for _, name := range []string{"dc-a1", "dc-a2", "dc-b1"} {
			if !regexp.MustCompile(name + `\s+region-\w\s+` + name + `\s+Ready`).MatchString(clusters) {
				t.Errorf("run %d: cluster %s is not Ready:\n%s", run, name, clusters)
			}
		}
		if run == 0 {
			cli(sleeperDeploy(1, "v1"), "apply", "-f", "-")
		}
		waitFor(t, "READY 3/3 over the dev federation", 30*time.Second, func() bool {
			return strings.Contains(cli("", "get", "deploy", "-n", "fed"), "3/3")
		})
		if pods := cli("", "--cluster", "dc-b1", "get", "pods", "-n", "fed"); !strings.Contains(pods, "sleeper-") {
			t.Errorf("run %d: dc-b1 runs no sleeper pod:\n%s", run, pods)
		}
		pids := childPIDs(cmd.Process.Pid)
		if len(pids) != 4 {
			t.Errorf("run %d: meridian dev has %d child processes, want 4 (hub + 3 members)", run, len(pids))
		}
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run %d: meridian dev exited with %v after Ctrl-C\n%s", run, err, out.String())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("run %d: meridian dev did not stop within 60s of Ctrl-C", run)
		}
		for _, pid := range pids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				t.Errorf("run %d: process %d outlived meridian dev", run, pid)
			}
		}
	}
}

// childPIDs lists the direct children of a process.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
		var ppid, child int
		if len(fields) > 1 {
			fmt.Sscan(fields[1], &ppid)
		}
		fmt.Sscan(e.Name(), &child)
		if ppid == pid && child > 0 {
			out = append(out, child)
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
