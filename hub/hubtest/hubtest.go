// Package hubtest starts real hub nodes for tests: embedded etcd in a temp
// dir on free loopback ports, with short election timings.
package hubtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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
