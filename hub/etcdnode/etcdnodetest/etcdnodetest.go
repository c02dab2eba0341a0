// Package etcdnodetest starts real embedded etcd nodes for tests of other
// packages: in t.TempDir(), on free loopback ports, with the fast ticks
// (TickMs=10, ElectionMs=50) that bring a node up in tens of milliseconds,
// and closed by t.Cleanup.
//
//	endpoints := etcdnodetest.Start(t)
//	cli := etcdnodetest.Client(t, endpoints)
package etcdnodetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meridian-fed/meridian/hub/etcdnode"
)

// startAttempts bounds the retries when a port picked by FreePort was taken
// by someone else before etcd bound it.
const startAttempts = 5

// Start starts a single-node etcd and returns its client endpoints. The node
// is closed when the test ends.
func Start(t testing.TB) []string {
	t.Helper()
	return StartNode(t).Endpoints()
}

// StartNode is Start for tests that need the node itself (to close and
// restart it, say). Restart a closed node with StartConfig(t, node.Config()).
func StartNode(t testing.TB) *Node {
	t.Helper()
	var lastErr error
	for range startAttempts {
		cfg, err := NewConfig(t)
		if err != nil {
			t.Fatalf("etcdnodetest: %v", err)
		}
		n, err := start(t, cfg)
		if err == nil {
			return n
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	t.Fatalf("etcdnodetest: %v", lastErr)
	return nil
}

// StartConfig starts a node from cfg and registers Cleanup: a Config from
// NewConfig with some field changed, or the Config of a closed node, to
// restart it on the same data directory and ports.
func StartConfig(t testing.TB, cfg etcdnode.Config) *Node {
	t.Helper()
	n, err := start(t, cfg)
	if err != nil {
		t.Fatalf("etcdnodetest: %v", err)
	}
	return n
}

// Node is a started node together with the Config that started it.
type Node struct {
	*etcdnode.Node
	cfg etcdnode.Config
}

// Config returns the configuration the node was started with.
func (n *Node) Config() etcdnode.Config { return n.cfg }

func start(t testing.TB, cfg etcdnode.Config) (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	en, err := etcdnode.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := en.Close(); err != nil {
			t.Errorf("etcdnodetest: %v", err)
		}
	})
	return &Node{Node: en, cfg: cfg}, nil
}

// NewConfig returns the configuration of a fresh single test node: a data
// directory under t.TempDir(), two free loopback ports, fast ticks and no
// fsync. Change it (InitialCluster, Name, ...) before passing it to
// etcdnode.Start to build clusters.
func NewConfig(t testing.TB) (etcdnode.Config, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return etcdnode.Config{}, err
	}
	return etcdnode.Config{
		Name:         "test",
		DataDir:      filepath.Join(t.TempDir(), "etcd"),
		ClientURL:    fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:      fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		TickMs:       10,
		ElectionMs:   50,
		StartTimeout: 20 * time.Second,
		CloseTimeout: 10 * time.Second,
		// Tests throw the data away; fsync only costs time here.
		UnsafeNoFsync: true,
		// Real trouble only: not the "ready"/"closed" lines of every node.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, nil
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago: each is bound on 127.0.0.1:0, read and released. Another process can
// take one before it is used, so callers retry on EADDRINUSE.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var listeners []net.Listener
	// Keep them all bound until every one is picked, so they differ.
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("failed to find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Client returns a client of the given endpoints, closed when the test ends.
func Client(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// The client logs every retried call (a Compact of an old revision,
		// say) at warn; tests check errors themselves.
		Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdnodetest: failed to create client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
