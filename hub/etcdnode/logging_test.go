package etcdnode

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

func TestZapLogsReachSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	closing := new(atomic.Bool)
	lg := newZapLogger(log, closing).With(zap.String("member", "dc1"))

	lg.Info("chatty")
	lg.Warn("slow fdatasync")
	lg.Error("failed to serve", zap.Error(errors.New("boom")), zap.Int("port", 7702))
	lg.Error("failed to update storage version")
	closing.Store(true)
	lg.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("http: Server closed")))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (errors only):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`level=ERROR msg="etcd: failed to serve" error=boom member=dc1 port=7702`,
		`level=DEBUG msg="etcd: failed to update storage version" member=dc1`,
		`level=DEBUG msg="etcd: setting up serving from embedded etcd failed." error="http: Server closed" member=dc1`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %s\nwant it to contain %s", i, lines[i], want)
		}
	}
}
