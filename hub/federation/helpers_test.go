package federation_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/member"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const waitTimeout = 30 * time.Second

func testLog() *slog.Logger {
	if os.Getenv("FEDERATION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return c
}

// fed is a hub with an admin client.
type fed struct {
	t     *testing.T
	cfg   hub.Config
	hub   *hub.Hub
	admin meridianv1.AdminServiceClient
	fed   meridianv1.FederationServiceClient
}

func startHub(t *testing.T, mutate func(*hub.Config)) *fed {
	t.Helper()
	cfg := hubtest.Config(t, t.TempDir())
	cfg.HeartbeatTimeout = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	f := &fed{t: t, cfg: cfg}
	f.restartHub()
	return f
}

func (f *fed) restartHub() {
	f.t.Helper()
	f.hub = hubtest.Start(f.t, f.cfg)
	conn := hubtest.Conn(f.t, f.hub)
	f.admin = meridianv1.NewAdminServiceClient(conn)
	f.fed = meridianv1.NewFederationServiceClient(conn)
}

func (f *fed) token(name string) (string, string) {
	f.t.Helper()
	resp, err := f.fed.CreateJoinToken(ctx(f.t), &meridianv1.CreateJoinTokenRequest{Cluster: name, TtlSeconds: 600})
	if err != nil {
		f.t.Fatalf("create token: %v", err)
	}
	return resp.GetToken(), resp.GetCaPin()
}

// memberConfig is a member of the federation with the sim runtime.
func (f *fed) memberConfig(name, region, dc string, n int) member.Config {
	cfg := member.DefaultConfig()
	cfg.Name, cfg.Region, cfg.Datacenter = name, region, dc
	cfg.DataDir = f.t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = ""
	cfg.PodCIDR = fmt.Sprintf("127.%d.0.0/16", 40+n)
	cfg.ServiceCIDR = fmt.Sprintf("127.%d.0.0/16", 60+n)
	cfg.Runtime = "sim"
	cfg.NodeCount = 2
	cfg.Hub = f.hub.Addr()
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.LogLevel = "error"
	return cfg
}

// join starts a member that joins with a fresh token.
func (f *fed) join(cfg member.Config) *member.Member {
	f.t.Helper()
	cfg.JoinToken, cfg.HubCAPin = f.token(cfg.Name)
	return f.startMember(cfg)
}

func (f *fed) startMember(cfg member.Config) *member.Member {
	f.t.Helper()
	cfg.Hub = f.hub.Addr()
	m, err := member.Start(ctx(f.t), cfg, testLog())
	if err != nil {
		f.t.Fatalf("start member %s: %v", cfg.Name, err)
	}
	f.t.Cleanup(func() { m.Close() })
	return m
}

func (f *fed) apply(yaml string) {
	f.t.Helper()
	docs, err := manifest.Decode([]byte(yaml), "test.yaml")
	if err != nil {
		f.t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := f.admin.Apply(ctx(f.t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d.Object)}); err != nil {
			f.t.Fatalf("apply %s: %v", d.Object.GetMetadata().GetName(), err)
		}
	}
}

func (f *fed) get(kind, ns, name string) resource.Object {
	f.t.Helper()
	resp, err := f.admin.Get(ctx(f.t), &meridianv1.GetRequest{Kind: kind, Namespace: ns, Name: name})
	if err != nil {
		f.t.Fatalf("get %s %s/%s: %v", kind, ns, name, err)
	}
	o, _, err := resource.Unwrap(resp.GetObject())
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *fed) cluster(name string) *meridianv1.Cluster {
	return f.get("clusters", "", name).(*meridianv1.Cluster)
}

func health(c *meridianv1.Cluster) string {
	for _, cond := range c.GetStatus().GetConditions() {
		if cond.GetType() == "Ready" {
			return cond.GetReason()
		}
	}
	return ""
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memberGet reads an object from a member's local store.
func memberGet(m *member.Member, kind, ns, name string) (resource.Object, error) {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.Store().Get(c, resource.MustLookup(kind), ns, name)
}

func deployYAML(name string, replicas int, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: demo}
spec:
  replicas: %d
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers:
      - {name: main, image: %s}
`, name, replicas, name, name, image)
}

const nsYAML = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"
