package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// devMember is one member of the dev federation.
type devMember struct {
	name, region, datacenter string
	podCIDR, serviceCIDR     string
	labels                   string
}

// devTopology is the reference topology: two regions, three datacenters —
// production and a same-city standby in region A, a remote standby in B.
var devTopology = []devMember{
	{name: "dc-a1", region: "region-a", datacenter: "dc-a1", podCIDR: "127.11.0.0/16", serviceCIDR: "127.21.0.0/16", labels: "tier=production"},
	{name: "dc-a2", region: "region-a", datacenter: "dc-a2", podCIDR: "127.12.0.0/16", serviceCIDR: "127.22.0.0/16", labels: "tier=standby"},
	{name: "dc-b1", region: "region-b", datacenter: "dc-b1", podCIDR: "127.13.0.0/16", serviceCIDR: "127.23.0.0/16", labels: "tier=standby"},
}

type devOptions struct {
	dir          string
	portBase     int
	nodes        int
	runtime      string
	readyTimeout time.Duration
	verbose      bool
}

func newDevCommand(cf *clientFlags) *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole federation on this machine: a hub and three members in two regions",
		Long: `Run a local federation: a hub and three members — region-a/dc-a1 (production),
region-a/dc-a2 (same-city standby) and region-b/dc-b1 (remote standby) — as
separate processes on loopback, each member with real exec runtimes and a few
nodes. Members join with tokens and talk to the hub over mutual TLS; gossip is
encrypted. The client context "dev" is written so that every other command
works without flags. Data lives in --dir, which the next run reuses; logs are
in --dir/logs. Ctrl-C stops everything (members stop their pods first).

A workload no policy selects goes to every member (duplicated);
docs/examples/spread.yaml divides one with a PropagationPolicy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), cmd.OutOrStdout(), cf, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", ".meridian-dev", "directory for the dev federation's data and logs")
	f.IntVar(&o.portBase, "port-base", 7700, "first port: the hub uses base..base+4, member i base+10*i..; 0 picks a free range below the ephemeral ports")
	f.IntVar(&o.nodes, "nodes", 2, "nodes per member")
	f.StringVar(&o.runtime, "runtime", "exec", "member runtime: exec (real processes) or sim")
	f.DurationVar(&o.readyTimeout, "ready-timeout", 90*time.Second, "how long to wait for the federation to come up")
	f.BoolVar(&o.verbose, "verbose", false, "copy every process's log to the terminal too")
	return cmd
}

// devProc is one child process of the dev federation.
type devProc struct {
	name string
	cmd  *exec.Cmd
	log  string // its log file
	done chan struct{}
	err  error // after done
}

type devFederation struct {
	spawner chan func() // run on one locked OS thread: see spawn
	out     io.Writer
	opts    devOptions
	exe     string
	dir     string
	mu      sync.Mutex
	procs   []*devProc
	exited  chan *devProc
	ports   func(i int) int
	logsDir string
}

func runDev(ctx context.Context, out io.Writer, cf *clientFlags, o devOptions) (err error) {
	if o.nodes < 1 {
		return errors.New("--nodes: must be at least 1")
	}
	if o.runtime != "exec" && o.runtime != "sim" {
		return fmt.Errorf("--runtime: %q must be exec or sim", o.runtime)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program to start the federation's processes: %w", err)
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	d := &devFederation{out: out, opts: o, exe: exe, dir: dir, exited: make(chan *devProc, 8), logsDir: filepath.Join(dir, "logs"),
		spawner: make(chan func())}
	spawnerDone := make(chan struct{})
	go func() {
		// Linux sends the parent-death signal when the *thread* that
		// started a child exits: start every child from this one locked
		// thread, which lives until the federation has stopped.
		runtime.LockOSThread()
		for f := range d.spawner {
			f()
		}
		close(spawnerDone)
	}()
	defer func() { close(d.spawner); <-spawnerDone }()
	if err := os.MkdirAll(d.logsDir, 0o700); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if d.ports, err = portPlan(o.portBase); err != nil {
		return err
	}
	defer func() {
		if stopErr := d.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	key, err := devGossipKey(filepath.Join(dir, "gossip.key"))
	if err != nil {
		return err
	}

	// The hub.
	hubDir := filepath.Join(dir, "hub")
	hubAPI, hubHTTP, hubGossip := addr(d.ports(0)), addr(d.ports(1)), addr(d.ports(4))
	if err := d.start(ctx, "hub", "hub",
		"--data-dir", hubDir, "--listen", hubAPI, "--http-listen", hubHTTP,
		"--etcd-client-url", "http://"+addr(d.ports(2)), "--etcd-peer-url", "http://"+addr(d.ports(3)),
		"--region", "region-a", "--datacenter", "dc-a1",
		"--gossip-listen", hubGossip, "--gossip-key", key, "--gossip-profile", "dev",
		"--heartbeat-timeout", "3s", "--lease-duration", "4s", "--lease-margin", "1s", "--log-level", "info"); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, o.readyTimeout)
	defer cancel()
	if err := d.waitHTTP(rctx, "hub", "http://"+hubHTTP+"/readyz"); err != nil {
		return err
	}
	caFile := filepath.Join(hubDir, hub.CAFile)
	tokBytes, err := os.ReadFile(filepath.Join(hubDir, hub.AdminTokenFile))
	if err != nil {
		return fmt.Errorf("the hub wrote no admin token in %s (was this --dir made by another hub?): %w", hubDir, err)
	}
	ctxPath, err := cf.path()
	if err != nil {
		return err
	}
	cc, err := readClientConfig(ctxPath)
	if err != nil {
		return err
	}
	cc.upsert(ClientContext{Name: "dev", Server: hubAPI, Namespace: "default", CAFile: caFile, Token: strings.TrimSpace(string(tokBytes))})
	if err := writeClientConfig(ctxPath, cc); err != nil {
		return fmt.Errorf("failed to write the client context %s: %w", ctxPath, err)
	}
	admin := &clientFlags{configPath: ctxPath, context: "dev", timeout: 10 * time.Second}
	c, err := admin.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	fed := meridianv1.NewFederationServiceClient(c.conn)

	// The members: each joins once (a token per first start), then syncs.
	for i, m := range devTopology {
		base := 10 * (i + 1)
		mdir := filepath.Join(dir, m.name)
		args := []string{"member",
			"--name", m.name, "--region", m.region, "--datacenter", m.datacenter, "--labels", m.labels,
			"--data-dir", mdir, "--listen", addr(d.ports(base)), "--http-listen", addr(d.ports(base + 1)),
			"--pod-cidr", m.podCIDR, "--service-cidr", m.serviceCIDR, "--runtime", o.runtime,
			"--node-count", strconv.Itoa(o.nodes), "--node-cpu", "4", "--node-memory", "8Gi",
			"--crash-loop-backoff", "2s",
			"--hub", hubAPI, "--hub-ca-file", caFile, "--heartbeat-interval", "1s",
			"--gossip-listen", addr(d.ports(base + 2)), "--gossip-seeds", hubGossip, "--gossip-key", key, "--gossip-profile", "dev",
			"--log-level", "info"}
		if _, err := os.Stat(filepath.Join(mdir, "hub", "member.crt")); err != nil {
			tok, err := d.joinToken(ctx, c, fed, m.name)
			if err != nil {
				return err
			}
			args = append(args, "--join-token", tok)
		}
		if err := d.start(ctx, m.name, args...); err != nil {
			return err
		}
	}
	for i, m := range devTopology {
		if err := d.waitHTTP(rctx, m.name, "http://"+addr(d.ports(10*(i+1)+1))+"/readyz"); err != nil {
			return err
		}
	}
	if err := d.waitClustersReady(rctx, c); err != nil {
		return err
	}
	d.banner(hubAPI, hubHTTP, hubGossip, ctxPath)

	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstopping the federation (members first, then the hub)...")
		return nil
	case p := <-d.exited:
		return fmt.Errorf("%s exited unexpectedly (%v); the last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 15))
	}
}

// portPlan maps port slots to ports: base+slot, or free ports for base 0.
func portPlan(base int) (func(int) int, error) {
	if base < 0 || base > 65535-40 {
		return nil, fmt.Errorf("--port-base: %d is out of range", base)
	}
	if base > 0 {
		for _, slot := range []int{0, 1, 2, 3, 4, 10, 11, 12, 20, 21, 22, 30, 31, 32} {
			if err := portFree(base + slot); err != nil {
				return nil, fmt.Errorf("--port-base %d: port %d is taken (is another `meridian dev` or `meridian hub` running?): %w", base, base+slot, err)
			}
		}
		return func(slot int) int { return base + slot }, nil
	}
	// Free ports, picked below the kernel's ephemeral range (32768 and up
	// on Linux): a port the kernel handed out for a moment (Listen on :0)
	// may be the local port of the next outgoing connection of any process
	// before a member binds it; a port below that range is only taken by
	// someone who asks for it.
	for range 100 {
		base := 10000 + rand.IntN(32000-10000-40)
		ok := true
		for _, slot := range []int{0, 1, 2, 3, 4, 10, 11, 12, 20, 21, 22, 30, 31, 32} {
			if portFree(base+slot) != nil {
				ok = false
				break
			}
		}
		if ok {
			return func(slot int) int { return base + slot }, nil
		}
	}
	return nil, errors.New("--port-base 0: found no free range of ports between 10000 and 32000")
}

func portFree(port int) error {
	l, err := net.Listen("tcp", addr(port))
	if err != nil {
		return err
	}
	return l.Close()
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// devGossipKey reads the dev federation's gossip key, making it on the
// first run.
func devGossipKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	key, err := gossip.GenerateKey()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("--dir: %w", err)
	}
	return key, nil
}

// start runs one child: this program with args, its output in its log file
// (and on the terminal with --verbose).
func (d *devFederation) start(ctx context.Context, name string, args ...string) error {
	logPath := filepath.Join(d.logsDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "\n==== %s: meridian %s\n", time.Now().Format(time.RFC3339), strings.Join(redactArgs(args), " "))
	cmd := exec.Command(d.exe, args...)
	cmd.Env = append(os.Environ(), "MERIDIAN_CLIENT_CONFIG="+filepath.Join(d.dir, "unused-client.yaml"))
	var w io.Writer = lf
	if d.opts.verbose {
		w = io.MultiWriter(lf, &prefixWriter{prefix: "[" + name + "] ", w: d.out})
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so that the terminal's Ctrl-C reaches only
	// this process, which stops the children in order; and a parent-death
	// signal, so that a killed `meridian dev` leaves no process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.spawn(cmd); err != nil {
		lf.Close()
		return fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &devProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
		select {
		case d.exited <- p:
		default:
		}
	}()
	fmt.Fprintf(d.out, "started %-6s pid %d, log %s\n", name, cmd.Process.Pid, logPath)
	return nil
}

// spawn starts cmd from the spawner's thread.
func (d *devFederation) spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	d.spawner <- func() { errc <- cmd.Start() }
	return <-errc
}

// redactArgs hides secrets in the logged command line.
func redactArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		switch out[i] {
		case "--join-token", "--gossip-key":
			out[i+1] = "<redacted>"
		}
	}
	return out
}

// stop stops the members (which stop their pods), then the hub: SIGTERM,
// then SIGKILL after a grace period.
func (d *devFederation) stop() error {
	d.mu.Lock()
	procs := append([]*devProc(nil), d.procs...)
	d.mu.Unlock()
	var members, hubs []*devProc
	for _, p := range procs {
		if p.name == "hub" {
			hubs = append(hubs, p)
		} else {
			members = append(members, p)
		}
	}
	var errs []error
	for _, group := range [][]*devProc{members, hubs} {
		for _, p := range group {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range group {
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
				errs = append(errs, fmt.Errorf("%s did not stop in 20s and was killed", p.name))
			}
		}
	}
	return errors.Join(errs...)
}

func (d *devFederation) waitHTTP(ctx context.Context, name, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := d.pause(ctx, name); err != nil {
			return err
		}
	}
}

// pause waits a little, failing if the context ends or a child has died.
func (d *devFederation) pause(ctx context.Context, what string) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w (see the logs in %s)", what, ctx.Err(), d.logsDir)
	case p := <-d.exited:
		return fmt.Errorf("%s exited while starting (%v); the last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 15))
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

// joinToken makes a single-use token bound to the member. A Cluster left
// from an earlier run whose member lost its data is deleted first, so that
// the member can join again.
func (d *devFederation) joinToken(ctx context.Context, c *client, fed meridianv1.FederationServiceClient, name string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Delete(cctx, &meridianv1.DeleteRequest{Kind: "clusters", Name: name}); err != nil && status.Code(err) != codes.NotFound {
		return "", fmt.Errorf("remove the stale cluster %s: %w", name, c.explain(err))
	}
	resp, err := fed.CreateJoinToken(cctx, &meridianv1.CreateJoinTokenRequest{TtlSeconds: 600, Cluster: name, SingleUse: true, Description: "meridian dev"})
	if err != nil {
		return "", fmt.Errorf("join token for %s: %w", name, c.explain(err))
	}
	return resp.GetToken(), nil
}

func (d *devFederation) waitClustersReady(ctx context.Context, c *client) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := c.List(cctx, &meridianv1.ListRequest{Kind: "clusters"})
		cancel()
		ready := map[string]bool{}
		if err == nil {
			for _, o := range resp.GetItems() {
				if clusterHealth(o.GetCluster()) == "Ready" {
					ready[o.GetCluster().GetMetadata().GetName()] = true
				}
			}
		}
		all := true
		for _, m := range devTopology {
			all = all && ready[m.name]
		}
		if all {
			return nil
		}
		if err := d.pause(ctx, "every cluster to be Ready"); err != nil {
			return err
		}
	}
}

func (d *devFederation) banner(hubAPI, hubHTTP, hubGossip, ctxPath string) {
	w := d.out
	fmt.Fprintf(w, `
Meridian dev federation is up: a hub and three members, two regions.

  hub                 API %s (TLS, admin token)   metrics http://%s/metrics   gossip %s
`, hubAPI, hubHTTP, hubGossip)
	for i, m := range devTopology {
		base := 10 * (i + 1)
		fmt.Fprintf(w, "  %-8s %-9s API %s (local, plaintext)   metrics http://%s/metrics   pods %s, %d %s node(s)\n",
			m.name, m.region, addr(d.ports(base)), addr(d.ports(base+1)), m.podCIDR, d.opts.nodes, d.opts.runtime)
	}
	fmt.Fprintf(w, `
  data and logs       %s   (the next run reuses it)
  client context      "dev" in %s

Try it in another terminal:
  go run ./cmd/meridian get clusters -o wide
  go run ./cmd/meridian apply -f docs/examples/hello.yaml
  go run ./cmd/meridian get deploy -n hello            # READY is ready/desired over the federation
  go run ./cmd/meridian describe deploy hello -n hello # per cluster
  go run ./cmd/meridian --cluster dc-a1 get pods -n hello -o wide
  go run ./cmd/meridian apply -f docs/examples/spread.yaml   # 6 replicas divided 3/1/2 by policy
  go run ./cmd/meridian describe deploy web -n spread        # the placement and why
  go run ./cmd/meridian cordon dc-b1 ; go run ./cmd/meridian taint dc-b1 maintenance=true:NoExecute

Ctrl-C stops everything.
`, d.dir, ctxPath)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// prefixWriter prefixes every line written to w.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
