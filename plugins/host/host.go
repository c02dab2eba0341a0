// Package host runs the hub's out-of-process placement and failover
// plugins (hashicorp/go-plugin over gRPC, contract meridian.plugin.v1) and
// presents each as a framework.Plugin to the placement engine.
//
// The host is what keeps a broken plugin from wedging the hub:
//
//   - it starts only an executable that hashes to its pinned SHA-256, and
//     only a plugin that speaks this hub's API version and accepts its
//     config;
//   - every call carries a deadline (Config.Timeout), and ends at once when
//     the process dies;
//   - a call that gets no valid answer is answered by the plugin's failure
//     mode (fail-open or fail-closed), never with framework.Error;
//   - a crashed plugin, or one that missed several deadlines in a row, is
//     killed and restarted in the background with exponential backoff;
//     while it is down, calls are answered by the failure mode at once.
//
// Lifecycle: New starts every plugin (and fails if any cannot start);
// Plugins gives the engine its plugins; List reports their state for
// `meridian plugin list`; Close kills every process and waits for the
// goroutines that watch them.
package host

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-fed/meridian/policies/framework"
)

// Errors behind a failed call or a refused plugin; test them with
// errors.Is.
var (
	// ErrChecksumMismatch: the executable does not hash to the pinned
	// SHA-256.
	ErrChecksumMismatch = errors.New("plugin checksum mismatch")
	// ErrIncompatible: the plugin speaks no API version this hub speaks, or
	// advertises no capability it knows.
	ErrIncompatible = errors.New("incompatible plugin")
	// ErrUnavailable: the plugin process is not running (restarting, or
	// failing to restart) or died during the call.
	ErrUnavailable = errors.New("plugin not running")
	// ErrTimeout: the plugin did not answer within its deadline.
	ErrTimeout = errors.New("plugin timed out")
	// ErrInvalidAnswer: the plugin answered outside the contract (wrong
	// count or order of results, a score out of range, an unknown code).
	ErrInvalidAnswer = errors.New("invalid plugin answer")
	// ErrClosed: the host has been closed.
	ErrClosed = errors.New("plugin host closed")
)

// Capability is something a plugin can be asked.
type Capability string

// Capabilities, as GetInfo advertises them.
const (
	CapabilityFilter   Capability = "filter"
	CapabilityScore    Capability = "score"
	CapabilityFailover Capability = "failover"
)

// State is where a plugin is in its life.
type State string

// States.
const (
	// StateRunning: the process is up and configured; calls go to it.
	StateRunning State = "Running"
	// StateRestarting: the process exited or was killed (repeated
	// timeouts); a new one starts after the backoff.
	StateRestarting State = "Restarting"
	// StateFailed: the last restart failed (see LastError); the host keeps
	// trying, at most every 10s by default.
	StateFailed State = "Failed"
	// StateStopped: the host was closed.
	StateStopped State = "Stopped"
)

// Info is one plugin as `meridian plugin list` shows it.
type Info struct {
	Name   string
	Path   string
	SHA256 string
	// PluginVersion is the plugin's own release, from GetInfo.
	PluginVersion string
	// APIVersion is the contract version the host and plugin speak.
	APIVersion   string
	Capabilities []Capability
	// ConfigSchema is the JSON Schema of the plugin's config ("" if none).
	ConfigSchema string
	Timeout      time.Duration
	FailureMode  FailureMode
	State        State
	// Restarts counts processes started after the first.
	Restarts int
	// LastError is the last failure: of a call, or why the plugin went
	// down or could not restart.
	LastError string
	// PID is the running process' id; 0 when not running.
	PID int
	// Calls counts calls to the plugin; Failures those answered by the
	// failure mode.
	Calls    int64
	Failures int64
}

// Option changes how the host runs plugins.
type Option func(*options)

type options struct {
	registerer prometheus.Registerer
	// backoffInitial is the wait before the first restart: short, so a
	// plugin that crashed once is back before most placements notice.
	backoffInitial time.Duration
	// backoffMax caps the doubling wait: a plugin that cannot start costs
	// one launch every backoffMax, not a busy loop.
	backoffMax time.Duration
	// stableAfter is how long a process must run for the backoff to start
	// again from backoffInitial when it dies.
	stableAfter time.Duration
	// maxMisses is how many calls in a row may get no answer (a missed
	// deadline, a broken connection) before the process is presumed hung,
	// killed and restarted: one slow call is not enough, a streak is.
	maxMisses int32
	// startTimeout bounds a launch: the handshake, GetInfo and Configure.
	startTimeout time.Duration
	// killGrace is how long Close lets a plugin exit cleanly before it is
	// killed: a healthy plugin exits within milliseconds of go-plugin's
	// shutdown call; one with a wedged handler never does.
	killGrace time.Duration
}

func defaultOptions() options {
	return options{
		backoffInitial: 100 * time.Millisecond,
		backoffMax:     10 * time.Second,
		stableAfter:    30 * time.Second,
		maxMisses:      3,
		startTimeout:   10 * time.Second,
		killGrace:      500 * time.Millisecond,
	}
}

// WithRegisterer registers the host's metrics (meridian_plugin_*) on reg;
// without it they are kept but not exported.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}

// WithRestartBackoff sets the wait before restarting a dead plugin: initial
// the first time, doubling up to max while restarts keep failing or the
// plugin keeps dying young (defaults 100ms, 10s).
func WithRestartBackoff(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.backoffInitial = initial
		}
		if max >= o.backoffInitial {
			o.backoffMax = max
		}
	}
}

// WithMaxConsecutiveTimeouts sets how many calls in a row may get no
// answer (time out, or find the connection broken) before the plugin is
// killed and restarted (default 3).
func WithMaxConsecutiveTimeouts(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxMisses = int32(n)
		}
	}
}

// WithStartTimeout bounds starting a plugin: process start, handshake,
// GetInfo and Configure (default 10s).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.startTimeout = d
		}
	}
}

// Host runs the configured plugins. Its methods are safe for concurrent
// use.
type Host struct {
	instances []*instance
	plugins   []framework.Plugin

	// stop ends the monitors (one per plugin, started by New); wg waits
	// for them.
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New validates cfgs, starts every plugin, checks its API version and
// configures it. It fails, leaving nothing running, if any plugin cannot
// start; errors name the plugin and the config field at fault. log receives
// the host's and the plugins' logs (nil: discarded).
func New(cfgs []Config, log *slog.Logger, opts ...Option) (*Host, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	cfgs, err := withDefaults(cfgs)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &Host{stop: stop}
	for i, cfg := range cfgs {
		in := &instance{cfg: cfg, index: i, log: log.With("plugin", cfg.Name), opts: &o, m: m}
		in.sum, _ = hex.DecodeString(cfg.SHA256) // validated by withDefaults
		if err := in.start(ctx); err != nil {
			stop()
			for _, started := range h.instances {
				g := started.gen.Load()
				started.setStopped()
				g.kill(o.killGrace)
			}
			return nil, fmt.Errorf("failed to start plugin %s: %w", cfg.Name, err)
		}
		h.instances = append(h.instances, in)
	}
	for _, in := range h.instances {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			in.monitor(ctx)
		}()
		h.plugins = append(h.plugins, newPlugin(in))
	}
	return h, nil
}

// Plugins returns one framework.Plugin per configured plugin, in
// configuration order, named as configured. Each implements the engine's
// interfaces for the capabilities the plugin advertised, and only those:
// FilterPlugin and BatchFilterPlugin for "filter", ScorePlugin and
// BatchScorePlugin for "score", FailoverPlugin for "failover".
func (h *Host) Plugins() []framework.Plugin {
	return append([]framework.Plugin(nil), h.plugins...)
}

// List reports every plugin's state, in configuration order.
func (h *Host) List() []Info {
	out := make([]Info, len(h.instances))
	for i, in := range h.instances {
		out[i] = in.info()
	}
	return out
}

// Close kills every plugin process (each gets a short grace period to exit
// cleanly) and waits for them to be gone. Calls after Close are answered by
// the failure mode. Close is idempotent and always returns nil.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.stop()
		h.wg.Wait()
	})
	return nil
}
