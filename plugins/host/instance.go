package host

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/plugins/internal/handshake"
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// instance is one configured plugin: its config, what it said about itself,
// and the process currently serving it (a generation). Calls read the
// current generation without locking; the monitor goroutine replaces it.
type instance struct {
	cfg   Config
	index int    // position in the host's config, for error messages
	sum   []byte // cfg.SHA256, decoded
	log   *slog.Logger
	opts  *options
	m     *metrics

	// Set by the first launch (in New), read-only afterwards: a restarted
	// process must say the same.
	pluginVersion string
	caps          []Capability
	schema        string

	// gen is the running process; nil while the plugin is down.
	gen atomic.Pointer[generation]
	// misses counts calls in a row that got no answer at all (deadline
	// missed, or the connection broken while the process seems alive); the
	// maxMisses-th asks the monitor to replace the process.
	misses   atomic.Int32
	calls    atomic.Int64
	failures atomic.Int64

	mu       sync.Mutex
	state    State  // guarded by mu
	pid      int    // guarded by mu: of the running process, 0 if none
	restarts int    // guarded by mu
	lastErr  string // guarded by mu
}

// generation is one process of a plugin, from launch to kill.
type generation struct {
	client *goplugin.Client
	cmd    *exec.Cmd
	// done ends when the process has exited (go-plugin cancels it).
	done    context.Context
	pid     int
	started time.Time

	base     pluginv1.PluginServiceClient
	filter   pluginv1.FilterServiceClient
	score    pluginv1.ScoreServiceClient
	failover pluginv1.FailoverServiceClient

	// restart is closed (once) to ask the monitor to replace this process;
	// restartReason is written before.
	restartOnce   sync.Once
	restart       chan struct{}
	restartReason string
}

// start launches the first process; New calls it before any monitor runs.
func (in *instance) start(ctx context.Context) error {
	g, info, err := in.launch(ctx)
	if err != nil {
		return err
	}
	in.pluginVersion = info.GetPluginVersion()
	in.caps = capabilitiesFrom(info.GetCapabilities())
	in.schema = info.GetConfigSchema()
	in.setRunning(g, false)
	in.log.Info("plugin started", "pid", g.pid, "version", in.pluginVersion, "capabilities", in.caps)
	return nil
}

// launch verifies the executable, starts it, negotiates the API version and
// configures it. On error nothing is left running.
func (in *instance) launch(ctx context.Context) (_ *generation, _ *pluginv1.GetInfoResponse, err error) {
	if err := in.verify(); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(in.cfg.Path)
	cmd.Env = pluginEnv()
	setParentDeathSignal(cmd)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake.Config(),
		Plugins:          handshake.PluginSet(nil),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: in.sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		// The socket is the user's own, but a certificate pair per process
		// costs little and keeps other local users off it regardless.
		AutoMTLS:     true,
		SkipHostEnv:  true,
		StartTimeout: in.opts.startTimeout,
		Logger:       newHCLogger(in.log),
		SyncStdout:   &lineWriter{log: func(line string) { in.log.Info(line, "stream", "stdout") }},
		SyncStderr:   &lineWriter{log: func(line string) { in.log.Warn(line, "stream", "stderr") }},
	})
	g := &generation{client: client, cmd: cmd, restart: make(chan struct{})}
	defer func() {
		if err != nil {
			g.kill(0)
		}
	}()
	rpc, err := client.Client()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to start %s: %w", in.cfg.Path, err)
	}
	raw, err := rpc.Dispense(handshake.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to connect to the plugin: %w", err)
	}
	conn, ok := raw.(*handshake.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("failed to connect to the plugin: go-plugin dispensed a %T", raw)
	}
	g.done, g.started = conn.Done, time.Now()
	if cmd.Process != nil {
		g.pid = cmd.Process.Pid
	}
	g.base = pluginv1.NewPluginServiceClient(conn.Conn)
	g.filter = pluginv1.NewFilterServiceClient(conn.Conn)
	g.score = pluginv1.NewScoreServiceClient(conn.Conn)
	g.failover = pluginv1.NewFailoverServiceClient(conn.Conn)

	// The handshake calls get the start timeout, not the per-call one: a
	// plugin may read files or warm caches in Configure.
	hctx, cancel := context.WithTimeout(ctx, in.opts.startTimeout)
	defer cancel()
	info, err := g.base.GetInfo(hctx, &pluginv1.GetInfoRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("failed to get the plugin's info: %w", err)
	}
	if !slices.Contains(info.GetApiVersions(), handshake.APIVersion) {
		return nil, nil, fmt.Errorf("%w: the plugin speaks API versions %q, this hub speaks %q",
			ErrIncompatible, info.GetApiVersions(), handshake.APIVersion)
	}
	caps := capabilitiesFrom(info.GetCapabilities())
	switch {
	case len(caps) == 0:
		return nil, nil, fmt.Errorf("%w: the plugin advertises no capability this hub knows (%v)", ErrIncompatible, info.GetCapabilities())
	case in.caps != nil && !slices.Equal(caps, in.caps):
		return nil, nil, fmt.Errorf("%w: the plugin's capabilities changed from %v to %v", ErrIncompatible, in.caps, caps)
	}
	if _, err := g.base.Configure(hctx, &pluginv1.ConfigureRequest{Config: in.cfg.Config, ApiVersion: handshake.APIVersion}); err != nil {
		return nil, nil, in.configureError(err)
	}
	return g, info, nil
}

// verify refuses an executable that does not hash to the pinned SHA-256.
func (in *instance) verify() error {
	f, err := os.Open(in.cfg.Path)
	if err != nil {
		return fmt.Errorf("failed to open the plugin executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("failed to hash the plugin executable: %w", err)
	}
	if sum := h.Sum(nil); subtle.ConstantTimeCompare(sum, in.sum) != 1 {
		return fmt.Errorf("%w: %s has sha256 %x, plugins[%d].sha256 pins %s",
			ErrChecksumMismatch, in.cfg.Path, sum, in.index, in.cfg.SHA256)
	}
	return nil
}

// configureError names the config field a plugin's InvalidArgument names
// (in a google.rpc.BadRequest detail), the way the hub's config file does.
func (in *instance) configureError(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return fmt.Errorf("failed to configure the plugin: %w", err)
	}
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok || len(br.GetFieldViolations()) == 0 {
			continue
		}
		fv := br.GetFieldViolations()[0]
		field := "config"
		if fv.GetField() != "" {
			field += "." + fv.GetField()
		}
		return &ConfigError{Index: in.index, Field: field, Message: fv.GetDescription()}
	}
	return &ConfigError{Index: in.index, Field: "config", Message: st.Message()}
}

// call runs one RPC under the plugin's deadline and records it. A nil
// error means rpc got a valid answer; otherwise the error says why not, for
// the failure mode's reason.
func (in *instance) call(ctx context.Context, method string, rpc func(context.Context, *generation) error) error {
	start := time.Now()
	result, err := in.do(ctx, rpc)
	in.calls.Add(1)
	in.m.calls.WithLabelValues(in.cfg.Name, method, result).Inc()
	in.m.duration.WithLabelValues(in.cfg.Name, method).Observe(time.Since(start).Seconds())
	if err != nil {
		in.failures.Add(1)
		in.mu.Lock()
		in.lastErr = fmt.Sprintf("%s: %v", method, err)
		in.mu.Unlock()
	}
	return err
}

func (in *instance) do(ctx context.Context, rpc func(context.Context, *generation) error) (result string, _ error) {
	g := in.gen.Load()
	if g == nil {
		// Down: answer at once, never wait for a restart.
		return resultDown, in.downError()
	}
	cctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	// A process that dies mid-call ends the call at once.
	stop := context.AfterFunc(g.done, cancel)
	defer stop()

	err := rpc(cctx, g)
	switch {
	case err == nil:
		in.misses.Store(0)
		return resultOK, nil
	case errors.Is(err, ErrInvalidAnswer):
		in.misses.Store(0)
		return resultInvalid, err
	case ctx.Err() != nil:
		// The caller gave up (or its deadline was shorter): not the plugin's
		// fault, not a timeout of its own.
		return resultCanceled, fmt.Errorf("the caller gave up: %w", ctx.Err())
	case g.done.Err() != nil:
		return resultDown, fmt.Errorf("%w: the plugin process exited", ErrUnavailable)
	case errors.Is(cctx.Err(), context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		in.miss(g, fmt.Sprintf("calls in a row missed their %s deadline", in.cfg.Timeout))
		return resultTimeout, fmt.Errorf("%w: no answer within %s", ErrTimeout, in.cfg.Timeout)
	case status.Code(err) == codes.Unavailable:
		// The connection is broken. Usually the process is dying and the
		// monitor is about to see it exit; if it lingers (a child holding
		// its output open keeps go-plugin from noticing the exit), the
		// misses replace it.
		in.miss(g, "calls in a row found the plugin's connection broken")
		return resultDown, fmt.Errorf("%w: %s", ErrUnavailable, status.Convert(err).Message())
	}
	in.misses.Store(0)
	st := status.Convert(err)
	return resultError, fmt.Errorf("the plugin answered %s: %s", st.Code(), st.Message())
}

// miss counts a call that got no answer from g; the maxMisses-th in a row
// condemns g.
func (in *instance) miss(g *generation, what string) {
	if n := in.misses.Add(1); n >= in.opts.maxMisses {
		in.misses.Store(0)
		g.requestRestart(fmt.Sprintf("%d %s", n, what))
	}
}

func (in *instance) downError() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state == StateStopped {
		return ErrClosed
	}
	return fmt.Errorf("%w (%s)", ErrUnavailable, in.state)
}

// monitor owns the plugin's processes after New: it waits for the running
// one to exit or to be condemned (repeated timeouts), kills it and starts
// another with exponential backoff, until ctx ends; then it kills the
// running process and returns.
func (in *instance) monitor(ctx context.Context) {
	backoff := in.opts.backoffInitial
	for {
		g := in.gen.Load()
		var reason string
		select {
		case <-ctx.Done():
			in.setStopped()
			grace := in.opts.killGrace
			if in.misses.Load() > 0 {
				grace = 0 // its last call got no answer: presumed hung, no grace
			}
			g.kill(grace)
			in.log.Info("plugin stopped", "pid", g.pid)
			return
		case <-g.done.Done():
			reason = "the plugin process exited"
		case <-g.restart:
			reason = g.restartReason
		}
		in.setDown(StateRestarting, reason)
		g.kill(0)
		if time.Since(g.started) >= in.opts.stableAfter {
			backoff = in.opts.backoffInitial
		}
		in.log.Warn("plugin down, restarting", "reason", reason, "pid", g.pid, "after", backoff)
		for {
			if !sleep(ctx, backoff) {
				in.setStopped()
				return
			}
			backoff = min(2*backoff, in.opts.backoffMax)
			ng, _, err := in.launch(ctx)
			if err == nil {
				in.setRunning(ng, true)
				in.log.Info("plugin restarted", "pid", ng.pid)
				break
			}
			if ctx.Err() != nil {
				in.setStopped()
				return
			}
			in.setDown(StateFailed, err.Error())
			in.log.Error("failed to restart plugin", "error", err, "retry_after", backoff)
		}
	}
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (in *instance) setRunning(g *generation, restarted bool) {
	in.mu.Lock()
	in.state, in.pid = StateRunning, g.pid
	if restarted {
		in.restarts++
	}
	in.mu.Unlock()
	in.misses.Store(0)
	in.gen.Store(g)
	if restarted {
		in.m.restarts.WithLabelValues(in.cfg.Name).Inc()
	}
	in.m.up.WithLabelValues(in.cfg.Name).Set(1)
}

func (in *instance) setDown(state State, reason string) {
	in.gen.Store(nil)
	in.mu.Lock()
	in.state, in.pid, in.lastErr = state, 0, reason
	in.mu.Unlock()
	in.m.up.WithLabelValues(in.cfg.Name).Set(0)
}

func (in *instance) setStopped() {
	in.gen.Store(nil)
	in.mu.Lock()
	in.state, in.pid = StateStopped, 0
	in.mu.Unlock()
	in.m.up.WithLabelValues(in.cfg.Name).Set(0)
}

// info is the instance's row of List.
func (in *instance) info() Info {
	in.mu.Lock()
	defer in.mu.Unlock()
	return Info{
		Name:          in.cfg.Name,
		Path:          in.cfg.Path,
		SHA256:        in.cfg.SHA256,
		PluginVersion: in.pluginVersion,
		APIVersion:    handshake.APIVersion,
		Capabilities:  slices.Clone(in.caps),
		ConfigSchema:  in.schema,
		Timeout:       in.cfg.Timeout,
		FailureMode:   in.cfg.FailureMode,
		State:         in.state,
		Restarts:      in.restarts,
		LastError:     in.lastErr,
		PID:           in.pid,
		Calls:         in.calls.Load(),
		Failures:      in.failures.Load(),
	}
}

// requestRestart asks the monitor to replace this process (once).
func (g *generation) requestRestart(reason string) {
	g.restartOnce.Do(func() {
		g.restartReason = reason
		close(g.restart)
	})
}

// kill ends the process: with grace > 0 it asks go-plugin to stop it
// cleanly and kills it after grace; with 0 it kills it at once (it is
// hung or already dead). Either way it returns once go-plugin has reaped
// the process and its goroutines are done.
func (g *generation) kill(grace time.Duration) {
	if grace <= 0 {
		g.forceKill()
		g.client.Kill()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.client.Kill()
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.forceKill()
		<-done
	}
}

func (g *generation) forceKill() {
	if g.cmd.Process != nil {
		_ = g.cmd.Process.Kill() // os.ErrProcessDone when it is gone already
	}
}

func capabilitiesFrom(pcs []pluginv1.Capability) []Capability {
	var caps []Capability
	for _, c := range []struct {
		wire pluginv1.Capability
		cap  Capability
	}{
		{pluginv1.Capability_CAPABILITY_FILTER, CapabilityFilter},
		{pluginv1.Capability_CAPABILITY_SCORE, CapabilityScore},
		{pluginv1.Capability_CAPABILITY_FAILOVER, CapabilityFailover},
	} {
		if slices.Contains(pcs, c.wire) {
			caps = append(caps, c.cap)
		}
	}
	return caps
}

// pluginEnv is the environment a plugin starts with: not the hub's, which
// holds tokens and keys, only what a program needs to run (go-plugin adds
// its handshake variables).
func pluginEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
