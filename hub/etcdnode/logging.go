package etcdnode

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that hands etcd's zap logs to the hub's slog
// logger, so that the hub has one log stream. It passes errors only (etcd
// at LogLevel "error"), and once the node is closing it demotes them to
// debug: etcd reports every listener it shuts down as a failed server
// ("use of closed network connection", "http: Server closed"), which is
// expected then and only noise.
type slogCore struct {
	log     *slog.Logger
	closing *atomic.Bool
	fields  []zapcore.Field
}

var _ zapcore.Core = (*slogCore)(nil)

// harmless lists etcd error messages that are not errors. They are logged
// at debug level.
var harmless = map[string]bool{
	// Logged by every fresh node until the first raft term is committed to
	// the backend; the storage version monitor retries and succeeds.
	"failed to update storage version": true,
}

// newZapLogger returns a zap logger writing to log.
func newZapLogger(log *slog.Logger, closing *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{log: log, closing: closing})
}

// Enabled passes errors and worse, as etcd's LogLevel "error" would.
func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.ErrorLevel }

// With returns a core that adds fields to every entry.
func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	cp := *c
	cp.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	return &cp
}

// Check adds the core to the entry if its level is enabled.
func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write logs one entry through slog.
func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slog.LevelError
	if c.closing.Load() || harmless[e.Message] {
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if !c.log.Enabled(ctx, level) {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, fmt.Sprint(enc.Fields[k])))
	}
	c.log.LogAttrs(ctx, level, "etcd: "+e.Message, attrs...)
	return nil
}

// Sync has nothing to flush: slog handlers write synchronously.
func (c *slogCore) Sync() error { return nil }
