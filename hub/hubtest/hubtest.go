// Package hubtest starts real hub nodes for tests: embedded etcd in a temp
// dir on free loopback ports, with short election timings.
package hubtest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// FreePort returns a loopback port that was free a moment ago, for a
// process that listens on it later. It is taken below the kernel's
// ephemeral range (ip_local_port_range, 32768 and up by default): a port
// the kernel hands out for ":0" can be handed to any outgoing connection
// of the machine's other tests between now and the listen, which then
// fails with "address already in use". Ports are chosen at random, and
// never twice by one test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := freePortLow + rand.IntN(freePortHigh-freePortLow)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatalf("failed to find a free port in [%d, %d)", freePortLow, freePortHigh)
	return 0
}

// The range FreePort picks from: below the default ephemeral range.
const (
	freePortLow  = 20000
	freePortHigh = 32000
)

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Config returns a hub config for a single embedded node in dataDir, on free
// loopback ports.
func Config(t testing.TB, dataDir string) hub.Config {
	cfg := hub.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.EtcdClientURL = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	cfg.EtcdPeerURL = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	cfg.EtcdTickMs, cfg.EtcdElectionMs = 10, 50
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.LogLevel = "error"
	return cfg
}

// Start starts a hub with cfg and stops it when the test ends.
func Start(t testing.TB, cfg hub.Config) *hub.Hub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := hub.Start(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatalf("failed to start hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Conn dials the hub's API over TLS with an admin client certificate from
// the federation CA (valid on every hub node); it closes when the test ends.
func Conn(t testing.TB, h *hub.Hub) *grpc.ClientConn {
	t.Helper()
	kp, err := h.CA().IssueClient(pki.Identity{Name: "test-admin", Role: pki.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatalf("failed to issue an admin certificate: %v", err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := pki.ClientTLS(h.CA().Pool(), &cert, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(h.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatalf("failed to dial %s: %v", h.Addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Client is the hub's Admin API, as an administrator.
func Client(t testing.TB, h *hub.Hub) meridianv1.AdminServiceClient {
	t.Helper()
	return meridianv1.NewAdminServiceClient(Conn(t, h))
}
