package exec

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Probe defaults, as in Kubernetes (in probe seconds, see
// Config.ProbeSecond).
const (
	defaultPeriodSeconds    = 10
	defaultTimeoutSeconds   = 1
	defaultFailureThreshold = 3
	defaultSuccessThreshold = 1
)

// probeOutputLimit bounds how much of an exec probe's output is kept for the
// failure message.
const probeOutputLimit = 1024

// probeKind names what a probe decides.
type probeKind string

const (
	probeStartup   probeKind = "startup"
	probeLiveness  probeKind = "liveness"
	probeReadiness probeKind = "readiness"
)

// probeTiming is a probe's schedule and thresholds, defaults applied.
type probeTiming struct {
	initialDelay, period, timeout time.Duration
	success, failure              int
}

func (d *Driver) timing(pr *meridianv1.Probe, kind probeKind) probeTiming {
	sec := d.cfg.ProbeSecond
	orDefault := func(v, def int32) int32 {
		if v <= 0 {
			return def
		}
		return v
	}
	t := probeTiming{
		initialDelay: time.Duration(max(pr.GetInitialDelaySeconds(), 0)) * sec,
		period:       time.Duration(orDefault(pr.GetPeriodSeconds(), defaultPeriodSeconds)) * sec,
		timeout:      time.Duration(orDefault(pr.GetTimeoutSeconds(), defaultTimeoutSeconds)) * sec,
		success:      int(orDefault(pr.GetSuccessThreshold(), defaultSuccessThreshold)),
		failure:      int(orDefault(pr.GetFailureThreshold(), defaultFailureThreshold)),
	}
	if kind != probeReadiness {
		t.success = 1 // Kubernetes requires 1 for liveness and startup probes
	}
	return t
}

// startProbes starts one goroutine per probe of c for the current run. They
// are owned by runOnce, which cancels ctx and waits on wg when the run ends.
// Liveness and readiness probes start once the startup probe (if any) has
// succeeded. A failing liveness or startup probe sends its reason on
// unhealthy (buffered; only the first is kept).
func (d *Driver) startProbes(ctx context.Context, wg *sync.WaitGroup, p *pod, c *container, env *envList, dir string, unhealthy chan<- string) {
	kill := func(msg string) {
		select {
		case unhealthy <- msg:
		default:
		}
	}
	started := make(chan struct{})
	if sp := c.spec.GetStartupProbe(); sp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runProbe(ctx, sp, probeStartup, p, c, env, dir, func(ok bool, msg string) bool {
				if !ok {
					kill("startup probe failed: " + msg)
					return true
				}
				close(started)
				if c.spec.GetReadinessProbe() == nil {
					d.update(p, func() { c.st.ready = true })
				}
				return true
			})
		}()
	} else {
		close(started)
	}
	afterStart := func(pr *meridianv1.Probe, kind probeKind, report func(bool, string) bool) {
		if pr == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-started:
			case <-ctx.Done():
				return
			}
			d.runProbe(ctx, pr, kind, p, c, env, dir, report)
		}()
	}
	afterStart(c.spec.GetLivenessProbe(), probeLiveness, func(ok bool, msg string) bool {
		if ok {
			return false
		}
		kill("liveness probe failed: " + msg)
		return true
	})
	afterStart(c.spec.GetReadinessProbe(), probeReadiness, func(ok bool, msg string) bool {
		d.update(p, func() {
			c.st.ready = ok
			if ok {
				c.st.message = ""
			} else {
				c.st.message = "readiness probe failed: " + msg
			}
		})
		return false
	})
}

// runProbe checks pr on its schedule until ctx ends or report returns true.
// report is called when the probe reaches its success threshold (ok) or its
// failure threshold (not ok), once per crossing.
func (d *Driver) runProbe(ctx context.Context, pr *meridianv1.Probe, kind probeKind, p *pod, c *container, env *envList, dir string, report func(ok bool, msg string) (done bool)) {
	t := d.timing(pr, kind)
	if t.initialDelay > 0 {
		timer := time.NewTimer(t.initialDelay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
	ticker := time.NewTicker(t.period)
	defer ticker.Stop()
	successes, failures := 0, 0
	for {
		ok, msg := d.check(ctx, pr, t.timeout, p, c, env, dir)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
			if successes == t.success && report(true, "") {
				return
			}
		} else {
			successes, failures = 0, failures+1
			if failures == t.failure && report(false, msg) {
				return
			}
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}

// check runs one probe attempt.
func (d *Driver) check(ctx context.Context, pr *meridianv1.Probe, timeout time.Duration, p *pod, c *container, env *envList, dir string) (bool, string) {
	switch {
	case pr.GetExec() != nil:
		return d.execCheck(ctx, pr.GetExec(), timeout, env, dir)
	case pr.GetHttpGet() != nil:
		return d.httpCheck(ctx, pr.GetHttpGet(), timeout, p.req.ip, c.spec.GetPorts())
	case pr.GetTcpSocket() != nil:
		return tcpCheck(ctx, pr.GetTcpSocket(), timeout, p.req.ip, c.spec.GetPorts())
	default:
		return false, "probe has no exec, httpGet or tcpSocket action"
	}
}

// execCheck runs the probe's command in the container's directory and
// environment, in its own process group, killed at the timeout.
func (d *Driver) execCheck(ctx context.Context, a *meridianv1.ExecAction, timeout time.Duration, env *envList, dir string) (bool, string) {
	if len(a.GetCommand()) == 0 {
		return false, "exec probe has no command"
	}
	m := env.mapping()
	argv := make([]string, 0, len(a.GetCommand()))
	for _, s := range a.GetCommand() {
		argv = append(argv, Expand(s, m))
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return false, err.Error()
	}
	out := &limitedBuffer{limit: probeOutputLimit}
	cmd := &osexec.Cmd{Path: path, Args: argv, Env: env.environ(), Dir: dir, Stdout: out, Stderr: out,
		// Bounds Wait if a grandchild keeps the output pipe open.
		WaitDelay: time.Second}
	if err := d.spawner.start(cmd); err != nil {
		return false, err.Error()
	}
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var waitErr error
	timedOut := false
	select {
	case waitErr = <-waitCh:
	case <-timer.C:
		timedOut = true
	case <-ctx.Done():
		timedOut = true
	}
	// Whatever happened, nothing of the probe may keep running.
	_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	if timedOut {
		<-waitCh
		return false, fmt.Sprintf("command %q timed out after %s", argv[0], timeout)
	}
	if waitErr != nil {
		return false, fmt.Sprintf("command %q failed: %v: %s", argv[0], waitErr, strings.TrimSpace(out.String()))
	}
	return true, ""
}

// httpCheck sends a GET; a 2xx or 3xx answer is success. Redirects are not
// followed.
func (d *Driver) httpCheck(ctx context.Context, a *meridianv1.HTTPGetAction, timeout time.Duration, podIP string, ports []*meridianv1.ContainerPort) (bool, string) {
	port, err := resolvePort(a.GetPort(), ports)
	if err != nil {
		return false, err.Error()
	}
	scheme := strings.ToLower(a.GetScheme())
	if scheme == "" {
		scheme = "http"
	}
	path := a.GetPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(probeHost(a.GetHost(), podIP), strconv.Itoa(port)) + path
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, fmt.Sprintf("failed to build request: %v", err)
	}
	req.Header.Set("User-Agent", "meridian-probe/1")
	for _, h := range a.GetHttpHeaders() {
		if strings.EqualFold(h.GetName(), "Host") {
			req.Host = h.GetValue()
			continue
		}
		req.Header.Add(h.GetName(), h.GetValue())
	}
	resp, err := d.probeClient.Do(req)
	if err != nil {
		return false, fmt.Sprintf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("GET %s: status %d", url, resp.StatusCode)
	}
	return true, ""
}

// tcpCheck opens a TCP connection; connecting is success.
func tcpCheck(ctx context.Context, a *meridianv1.TCPSocketAction, timeout time.Duration, podIP string, ports []*meridianv1.ContainerPort) (bool, string) {
	port, err := resolvePort(a.GetPort(), ports)
	if err != nil {
		return false, err.Error()
	}
	addr := net.JoinHostPort(probeHost(a.GetHost(), podIP), strconv.Itoa(port))
	dialer := net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, fmt.Sprintf("connect %s: %v", addr, err)
	}
	conn.Close()
	return true, ""
}

// probeHost is the probe's host, else the pod's address, else 127.0.0.1.
func probeHost(host, podIP string) string {
	switch {
	case host != "":
		return host
	case podIP != "":
		return podIP
	default:
		return "127.0.0.1"
	}
}

// resolvePort returns a probe's port: a number, or the name of one of the
// container's ports.
func resolvePort(v *meridianv1.IntOrString, ports []*meridianv1.ContainerPort) (int, error) {
	if v == nil {
		return 0, errors.New("probe has no port")
	}
	switch x := v.GetValue().(type) {
	case *meridianv1.IntOrString_IntVal:
		if x.IntVal <= 0 || x.IntVal > 65535 {
			return 0, fmt.Errorf("probe port %d is out of range", x.IntVal)
		}
		return int(x.IntVal), nil
	case *meridianv1.IntOrString_StrVal:
		for _, p := range ports {
			if p.GetName() == x.StrVal && p.GetContainerPort() > 0 {
				return int(p.GetContainerPort()), nil
			}
		}
		if n, err := strconv.Atoi(x.StrVal); err == nil && n > 0 && n <= 65535 {
			return n, nil
		}
		return 0, fmt.Errorf("probe port %q names no port of the container", x.StrVal)
	default:
		return 0, errors.New("probe has no port")
	}
}

// newProbeClient returns the HTTP client of probes: no keep-alive (each probe
// is a fresh connection, as the kubelet does), no proxy, no redirects, and
// no certificate verification for HTTPS probes, which check liveness, not
// identity (the kubelet does the same).
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DisableKeepAlives: true,
			Proxy:             nil,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see the function's comment
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// limitedBuffer keeps the first limit bytes written to it and discards the
// rest. It is safe for concurrent use (stdout and stderr share it).
type limitedBuffer struct {
	limit int
	mu    sync.Mutex
	buf   bytes.Buffer // guarded by mu
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
