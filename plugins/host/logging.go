package host

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
)

// hclogger routes go-plugin's logs — its own, and the structured log lines
// a plugin writes to its stderr — to the hub's slog logger.
type hclogger struct {
	log  *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*hclogger)(nil)

func newHCLogger(log *slog.Logger) *hclogger { return &hclogger{log: log} }

// slogLevel maps hclog's levels to slog's; Trace sits below Debug.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Log logs at level, with the logger's name and implied args; the other
// hclog.Logger methods below map onto it and onto the slog handler's level.
func (l *hclogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lv := slogLevel(level)
	ctx := context.Background()
	if !l.log.Enabled(ctx, lv) {
		return
	}
	all := make([]any, 0, len(l.args)+len(args)+2)
	if l.name != "" {
		all = append(all, "logger", l.name)
	}
	all = append(all, l.args...)
	all = append(all, args...)
	for i := 0; i+1 < len(all); i += 2 {
		// go-plugin logs the executable's path as "plugin"; the hub's
		// logger already names the plugin under that key.
		if all[i] == "plugin" {
			all[i] = "executable"
		}
	}
	l.log.Log(ctx, lv, msg, all...)
}

func (l *hclogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *hclogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *hclogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *hclogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *hclogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *hclogger) enabled(level hclog.Level) bool {
	return l.log.Enabled(context.Background(), slogLevel(level))
}

func (l *hclogger) IsTrace() bool { return l.enabled(hclog.Trace) }
func (l *hclogger) IsDebug() bool { return l.enabled(hclog.Debug) }
func (l *hclogger) IsInfo() bool  { return l.enabled(hclog.Info) }
func (l *hclogger) IsWarn() bool  { return l.enabled(hclog.Warn) }
func (l *hclogger) IsError() bool { return l.enabled(hclog.Error) }

func (l *hclogger) ImpliedArgs() []any { return l.args }

func (l *hclogger) With(args ...any) hclog.Logger {
	return &hclogger{log: l.log, name: l.name, args: append(append([]any(nil), l.args...), args...)}
}

func (l *hclogger) Name() string { return l.name }

func (l *hclogger) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return &hclogger{log: l.log, name: name, args: l.args}
}

func (l *hclogger) ResetNamed(name string) hclog.Logger {
	return &hclogger{log: l.log, name: name, args: l.args}
}

// SetLevel does nothing: the hub's slog handler decides the level.
func (l *hclogger) SetLevel(hclog.Level) {}

// GetLevel returns the lowest level the slog handler lets through.
func (l *hclogger) GetLevel() hclog.Level {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if l.enabled(lv) {
			return lv
		}
	}
	return hclog.Off
}

func (l *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *hclogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &lineWriter{log: func(line string) { l.Log(level, line) }}
}

// lineWriter calls log once per complete line written to it. The plugin's
// plain (unstructured) stdout and stderr reach the hub log through it.
type lineWriter struct {
	log func(line string)

	mu  sync.Mutex
	buf []byte // guarded by mu: a partial line
}

// maxLine bounds a buffered partial line: a plugin writing without
// newlines must not grow the hub's memory.
const maxLine = 64 << 10

// Write buffers p and logs every complete line.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimRight(w.buf[:i], "\r"); len(line) > 0 {
			w.log(string(line))
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.log(string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}
