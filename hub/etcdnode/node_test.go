package etcdnode_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/etcdnode"
	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
)

func TestValidate(t *testing.T) {
	valid := func() etcdnode.Config {
		return etcdnode.Config{
			DataDir:   "/tmp/x",
			ClientURL: "http://127.0.0.1:7702",
			PeerURL:   "http://127.0.0.1:7703",
		}
	}
	tests := []struct {
		name   string
		change func(*etcdnode.Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*etcdnode.Config) {}, ""},
		{"three members", func(c *etcdnode.Config) {
			c.Name = "dc1"
			c.InitialCluster = "dc1=http://127.0.0.1:7703,dc2=http://127.0.0.1:7713,dc3=http://127.0.0.1:7723"
		}, ""},
		{"periodic compaction", func(c *etcdnode.Config) {
			c.AutoCompactionMode = etcdnode.CompactionPeriodic
			c.AutoCompactionRetention = "30m"
		}, ""},
		{"no data dir", func(c *etcdnode.Config) { c.DataDir = "" }, "DataDir is required"},
		{"no client url", func(c *etcdnode.Config) { c.ClientURL = "" }, "ClientURL: is required"},
		{"bad client scheme", func(c *etcdnode.Config) { c.ClientURL = "unix:///tmp/sock" }, "ClientURL: \"unix:///tmp/sock\" must use http or https"},
		{"client url without port", func(c *etcdnode.Config) { c.ClientURL = "http://127.0.0.1" }, "ClientURL: \"http://127.0.0.1\" must name a host and a port"},
		{"peer url does not parse", func(c *etcdnode.Config) { c.PeerURL = "http://[::1" }, "PeerURL: \"http://[::1\" does not parse"},
		{"peer url with path", func(c *etcdnode.Config) { c.PeerURL = "http://127.0.0.1:7703/x" }, "PeerURL: \"http://127.0.0.1:7703/x\" must not have a path"},
		{"self missing from cluster", func(c *etcdnode.Config) {
			c.InitialCluster = "a=http://127.0.0.1:7713,b=http://127.0.0.1:7723"
		}, "InitialCluster: \"a=http://127.0.0.1:7713,b=http://127.0.0.1:7723\" does not list this node as hub=http://127.0.0.1:7703"},
		{"malformed cluster entry", func(c *etcdnode.Config) {
			c.InitialCluster = "hub=http://127.0.0.1:7703,oops"
		}, "InitialCluster: entry \"oops\" must be name=url"},
		{"bad cluster state", func(c *etcdnode.Config) { c.ClusterState = "old" }, "ClusterState \"old\" must be \"new\" or \"existing\""},
		{"election too short", func(c *etcdnode.Config) { c.TickMs, c.ElectionMs = 100, 200 }, "ElectionMs (200) must be at least 5×TickMs (100)"},
		{"bad compaction mode", func(c *etcdnode.Config) { c.AutoCompactionMode = "daily" }, "AutoCompactionMode \"daily\""},
		{"bad revision retention", func(c *etcdnode.Config) { c.AutoCompactionRetention = "1h" }, "AutoCompactionRetention \"1h\" must be a non-negative revision count"},
		{"bad periodic retention", func(c *etcdnode.Config) {
			c.AutoCompactionMode = etcdnode.CompactionPeriodic
			c.AutoCompactionRetention = "soon"
		}, "AutoCompactionRetention \"soon\" must be a duration"},
		{"bad name", func(c *etcdnode.Config) { c.Name = "a=b" }, "Name \"a=b\" must not contain"},
		{"negative timeout", func(c *etcdnode.Config) { c.StartTimeout = -time.Second }, "StartTimeout -1s must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateFillsDefaults(t *testing.T) {
	c := etcdnode.Config{DataDir: "/tmp/x", ClientURL: "http://127.0.0.1:1", PeerURL: "http://127.0.0.1:2"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "hub" || c.TickMs != 100 || c.ElectionMs != 1000 || c.ClusterState != "new" ||
		c.AutoCompactionMode != "revision" || c.AutoCompactionRetention != "100000" ||
		c.InitialCluster != "hub=http://127.0.0.1:2" {
		t.Fatalf("defaults not filled in: %+v", c)
	}
}

func TestSingleNodeRestartKeepsData(t *testing.T) {
	n := etcdnodetest.StartNode(t)
	ctx := context.Background()

	cli := etcdnodetest.Client(t, n.Endpoints())
	if _, err := cli.Put(ctx, "/k", "v1"); err != nil {
		t.Fatal(err)
	}
	_ = cli.Close()
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	n2 := etcdnodetest.StartConfig(t, n.Config())
	cli2 := etcdnodetest.Client(t, n2.Endpoints())
	resp, err := cli2.Get(ctx, "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("after restart /k = %v, want v1", resp.Kvs)
	}
}

func TestThreeNodeCluster(t *testing.T) {
	ports, err := etcdnodetest.FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"dc1", "dc2", "dc3"}
	var members []string
	for i, name := range names {
		members = append(members, fmt.Sprintf("%s=http://127.0.0.1:%d", name, ports[2*i+1]))
	}
	cfgs := make([]etcdnode.Config, len(names))
	for i, name := range names {
		cfgs[i] = etcdnode.Config{
			Name:           name,
			DataDir:        t.TempDir(),
			ClientURL:      fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:        fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			InitialCluster: strings.Join(members, ","),
			TickMs:         10,
			ElectionMs:     50,
			StartTimeout:   20 * time.Second,
			UnsafeNoFsync:  true,
			Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
	}

	// Each Start waits for a quorum, so the three must start together.
	nodes := make([]*etcdnode.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Go(func() { nodes[i], errs[i] = etcdnode.Start(context.Background(), cfgs[i]) })
	}
	wg.Wait()
	for i, n := range nodes {
		if n != nil {
			t.Cleanup(func() {
				if err := n.Close(); err != nil {
					t.Errorf("close %s: %v", n.Name(), err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatalf("start %s: %v", names[i], errs[i])
		}
	}

	ctx := context.Background()
	c1 := etcdnodetest.Client(t, nodes[0].Endpoints())
	c3 := etcdnodetest.Client(t, nodes[2].Endpoints())
	ml, err := c1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 3 {
		t.Fatalf("member list has %d members, want 3", len(ml.Members))
	}
	if _, err := c1.Put(ctx, "/written/on", "dc1"); err != nil {
		t.Fatal(err)
	}
	resp, err := c3.Get(ctx, "/written/on")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "dc1" {
		t.Fatalf("read on dc3 = %v, want dc1", resp.Kvs)
	}

	// Losing one datacenter keeps a quorum: dc3 still takes writes.
	if err := nodes[0].Close(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c3.Put(wctx, "/written/on", "dc3"); err != nil {
		t.Fatalf("write after losing dc1: %v", err)
	}
	c2 := etcdnodetest.Client(t, nodes[1].Endpoints())
	resp, err = c2.Get(wctx, "/written/on")
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Kvs[0].Value) != "dc3" {
		t.Fatalf("read on dc2 = %q, want dc3", resp.Kvs[0].Value)
	}
}

func TestStartWithoutQuorumTimesOutAndCleansUp(t *testing.T) {
	cfg, err := etcdnodetest.NewConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	others, err := etcdnodetest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InitialCluster = fmt.Sprintf("%s=%s,b=http://127.0.0.1:%d,c=http://127.0.0.1:%d", cfg.Name, cfg.PeerURL, others[0], others[1])
	cfg.StartTimeout = 300 * time.Millisecond

	n, err := etcdnode.Start(context.Background(), cfg)
	if err == nil {
		_ = n.Close()
		t.Fatal("Start without a quorum succeeded")
	}
	if !strings.Contains(err.Error(), "not ready after 300ms") {
		t.Fatalf("Start = %v, want a timeout error", err)
	}
	// The deferred cleanup released the listeners.
	for _, raw := range []string{cfg.ClientURL, cfg.PeerURL} {
		u, _ := url.Parse(raw)
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			t.Fatalf("port of %s still bound after a failed Start: %v", raw, err)
		}
		_ = l.Close()
	}
}

func TestStartReportsBusyPort(t *testing.T) {
	cfg, err := etcdnodetest.NewConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cfg.ClientURL)
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	n, err := etcdnode.Start(context.Background(), cfg)
	if err == nil {
		_ = n.Close()
		t.Fatal("Start on a busy port succeeded")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start = %v, want EADDRINUSE", err)
	}
}

func TestStartHonoursContext(t *testing.T) {
	cfg, err := etcdnodetest.NewConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	others, err := etcdnodetest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InitialCluster = fmt.Sprintf("%s=%s,b=http://127.0.0.1:%d,c=http://127.0.0.1:%d", cfg.Name, cfg.PeerURL, others[0], others[1])
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if n, err := etcdnode.Start(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		if n != nil {
			_ = n.Close()
		}
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
}
