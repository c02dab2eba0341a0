// Package sdk lets a plugin author write a Meridian placement or failover
// plugin in a few lines: fill in a Plugin and call Serve from main. The SDK
// speaks the meridian.plugin.v1 gRPC contract over hashicorp/go-plugin, runs
// Filter once per cluster of each batched request, validates what the
// author's functions answer, and turns errors and panics into gRPC status
// codes the hub understands.
//
//	func main() {
//		sdk.Serve(&sdk.Plugin{
//			Name: "nocanary", Version: "1.0.0",
//			Filter: func(ctx context.Context, w *sdk.Workload, c *sdk.Cluster) sdk.Result {
//				if c.Labels["canary"] == "true" {
//					return sdk.NewResult(sdk.UnschedulableAndUnresolvable, "cluster %s is a canary", c.Name)
//				}
//				return sdk.Result{}
//			},
//		})
//	}
//
// Concurrency: the hub calls a plugin for many workloads at once, so
// Filter, Score and Failover run concurrently with each other. Configure
// never runs concurrently with them, and every call happens after a
// successful Configure: config installed by Configure can be read by the
// other functions without locking.
//
// Authors use only the plain Go types of this package; the generated
// protobuf types stay inside it.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/meridian-fed/meridian/plugins/internal/handshake"
)

// Plugin describes a plugin: who it is, its config, and the capabilities it
// has. Set at least one of Filter, Score and Failover; the SDK serves (and
// GetInfo advertises) exactly the capabilities that are set.
type Plugin struct {
	// Name is the plugin's name ("residency"). Required.
	Name string
	// Version is the plugin's release ("1.0.0"). Required.
	Version string
	// ConfigSchema is a JSON Schema of the config Configure accepts, shown
	// by tools; empty when the plugin takes no config. It must be valid
	// JSON.
	ConfigSchema string
	// Configure validates and installs the config: raw is a JSON object
	// ("{}" when the operator gave none). Return a FieldError (or the
	// error of DecodeConfig) to name the bad field. nil Configure accepts
	// only an empty config.
	Configure func(raw []byte) error
	// Filter judges one cluster. The SDK calls it for every cluster of a
	// batch, in order, with the same workload.
	Filter func(ctx context.Context, w *Workload, c *Cluster) Result
	// Score rates every cluster of a batch from 0 to 100 (higher is
	// better): one score per cluster, in order. Return ErrSkip to say
	// nothing about the workload; any other error fails the call (the hub
	// applies the failure mode).
	Score func(ctx context.Context, w *Workload, clusters []*Cluster) ([]int64, error)
	// Failover decides about a workload about to move off failed clusters.
	// An error fails the call (the hub applies the failure mode).
	Failover func(ctx context.Context, req *FailoverRequest) (Decision, error)
}

// ErrSkip is what Score returns when the plugin has nothing to say about a
// workload: the hub then ignores the plugin for it.
var ErrSkip = errors.New("plugin skips this workload")

// ConfigError is a config that Configure rejects, naming the field.
type ConfigError struct {
	// Field is the path of the bad field in the config, dot-separated
	// ("regions.region-b"); empty when the whole config is wrong.
	Field string
	// Message says what is wrong with it.
	Message string
}

// Error returns "<field>: <message>", or the message alone.
func (e *ConfigError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// FieldError returns a *ConfigError for field.
func FieldError(field, format string, args ...any) error {
	return &ConfigError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// DecodeConfig decodes a JSON config into v strictly: an unknown field or
// a value of the wrong type is a *ConfigError naming the field where the
// decoder knows it.
func DecodeConfig(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &ConfigError{Field: typeErr.Field, Message: fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value)}
		}
		return &ConfigError{Message: err.Error()}
	}
	if dec.More() {
		return &ConfigError{Message: "unexpected data after the config object"}
	}
	return nil
}

// Serve runs the plugin until the hub stops it. Call it from main; it does
// not return. A Plugin that is not valid (no name, no capability, a schema
// that is not JSON) makes Serve print why and exit 1.
func Serve(p *Plugin) {
	s, err := newServer(p, Logger())
	if err != nil {
		fmt.Fprintf(processStderr, "meridian plugin: %v\n", err)
		os.Exit(1)
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake.Config(),
		Plugins:         handshake.PluginSet(s.register),
		GRPCServer:      newGRPCServer,
		// go-plugin's own log lines go to the hub, as JSON it parses.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       p.Name,
			Output:     processStderr,
			JSONFormat: true,
			Level:      hclog.Info,
		}),
	})
}

// maxMessageBytes bounds a request: a batch of 10,000 clusters with many
// labels fits; gRPC's 4 MiB default does not.
const maxMessageBytes = 64 << 20

func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))...)
}

func (p *Plugin) validate() error {
	if p == nil {
		return errors.New("no plugin to serve")
	}
	if strings.TrimSpace(p.Name) == "" {
		return errors.New("plugin has no Name")
	}
	if strings.TrimSpace(p.Version) == "" {
		return fmt.Errorf("plugin %s has no Version", p.Name)
	}
	if p.Filter == nil && p.Score == nil && p.Failover == nil {
		return fmt.Errorf("plugin %s sets none of Filter, Score and Failover", p.Name)
	}
	if p.ConfigSchema != "" && !json.Valid([]byte(p.ConfigSchema)) {
		return fmt.Errorf("plugin %s: ConfigSchema is not valid JSON", p.Name)
	}
	return nil
}

// processStderr is the process's standard error as it was at start:
// go-plugin.Serve later points os.Stderr at a pipe to the host's stdio
// stream, but the host parses structured log lines only on the real one.
var processStderr io.Writer = os.Stderr

// Logger returns a logger whose records show in the hub's log, with their
// level, tagged with the plugin's name.
func Logger() *slog.Logger {
	return slog.New(newHCLogHandler(processStderr))
}

// newHCLogHandler writes slog records as the JSON lines go-plugin's host
// parses (hclog's format: @level, @message, @timestamp).
func newHCLogHandler(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			case slog.LevelKey:
				level, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", hclogLevel(level))
			}
			return a
		},
	})
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
