package member

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/meridian-fed/meridian/member/agent"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/cronjob"
	"github.com/meridian-fed/meridian/member/controller/daemonset"
	"github.com/meridian-fed/meridian/member/controller/deployment"
	"github.com/meridian-fed/meridian/member/controller/job"
	"github.com/meridian-fed/meridian/member/controller/replicaset"
	"github.com/meridian-fed/meridian/member/controller/statefulset"
	"github.com/meridian-fed/meridian/member/fence"
	"github.com/meridian-fed/meridian/member/fence/watchdog"
	"github.com/meridian-fed/meridian/member/hubsync"
	"github.com/meridian-fed/meridian/member/runtime"
	"github.com/meridian-fed/meridian/member/runtime/exec"
	"github.com/meridian-fed/meridian/member/runtime/ipam"
	"github.com/meridian-fed/meridian/member/runtime/sim"
	"github.com/meridian-fed/meridian/member/scheduler"
	"github.com/meridian-fed/meridian/member/service"
	mstore "github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/apiserver"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"github.com/meridian-fed/meridian/proto/meridian/version"
)

// Member is one running member agent.
type Member struct {
	cfg   Config
	log   *slog.Logger
	db    *mstore.Store
	store storage.Interface
	api   *apiserver.Server
	sim   *sim.Engine     // nil with the exec runtime
	sync  *hubsync.Client // nil when standalone
	lease *hubsync.Lease  // the singleton lease; nil when standalone
	gsp   *gossip.Gossip  // nil without gossip

	// The fence watchdog (docs/failover.md, "Fencing"): nil unless the
	// member has a hub, runs exec and FenceWatchdog is on.
	watchdog  *watchdog.Process
	fenceHook exec.FenceHook

	agents map[string]*agent.Agent // by node name; fixed after Start
	rec    *controller.Recorder    // writes events in the background

	cancel context.CancelFunc // stops everything Start started
	wg     sync.WaitGroup     // the goroutines Start started
	mu     sync.Mutex
	errs   []error // from agents' shutdown; guarded by mu
}

// runner is anything Start runs until the member stops.
type runner interface{ Run(ctx context.Context) }

// Start brings a member up: store, controllers, scheduler, node agents,
// then the API. On failure it undoes what it started.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Member, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid member configuration:\n%w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("member", cfg.Name)
	// m is a local, not the named result: goroutines started below use
	// it, and a failing return sets the result to nil.
	m := &Member{cfg: cfg, log: log, agents: map[string]*agent.Agent{}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	if m.db, err = mstore.Open(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		return nil, fmt.Errorf("failed to open the member store: %w", err)
	}
	m.store = m.db
	if err := ensureNamespace(ctx, m.store, apiserver.DefaultNamespace); err != nil {
		return nil, err
	}
	addrs, err := ipam.New(cfg.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod-cidr: %w", err)
	}

	inf := controller.NewInformerSet(m.store, log)
	rec := controller.NewRecorder(m.store, "member/"+cfg.Name, log)
	m.rec = rec
	runners := []runner{
		replicaset.New(m.store, inf, rec, log),
		deployment.New(m.store, inf, rec, log),
		statefulset.New(m.store, inf, rec, log),
		daemonset.New(m.store, inf, rec, log),
	}
	jobs, err := job.New(m.store, inf, job.Config{Log: log})
	if err != nil {
		return nil, err
	}
	crons, err := cronjob.New(m.store, inf, cronjob.Config{Log: log})
	if err != nil {
		return nil, err
	}
	sched, err := scheduler.New(m.store, inf, scheduler.Config{Log: log})
	if err != nil {
		return nil, err
	}
	svcs, err := service.New(service.Config{Store: m.store, Informers: inf, CIDR: cfg.ServiceCIDR, Recorder: rec, Log: log})
	if err != nil {
		return nil, fmt.Errorf("service-cidr: %w", err)
	}
	runners = append(runners, jobs, crons, sched, svcs)

	// With a hub, singleton pods run only under the member's lease
	// (docs/failover.md, "Fencing").
	var gate agent.Gate
	if cfg.Hub != "" {
		m.lease = hubsync.NewLease(hubsync.LeaseConfig{})
		g := fence.New(m.lease, inf)
		gate = g
		// Real processes outlive a paused agent: a watchdog process kills
		// the fenced pods' groups when the agent misses their deadline.
		if cfg.Runtime != "sim" && cfg.FenceWatchdog {
			if err := m.startWatchdog(g, inf); err != nil {
				return nil, err
			}
		}
	}
	newDriver, err := m.driverFactory()
	if err != nil {
		return nil, err
	}
	for _, n := range cfg.nodes() {
		a, err := agent.New(agent.Config{
			Node: n, Store: m.store, Informers: inf, IPAM: addrs, Recorder: rec, Log: log, ServiceEnv: svcs.Env, Gate: gate,
			NewDriver: func(onChange runtime.ChangeFunc) (runtime.Driver, error) { return newDriver(n.Name, onChange) },
		})
		if err != nil {
			return nil, err
		}
		m.agents[n.Name] = a
	}
	if g, ok := gate.(*fence.Gate); ok {
		runs := make([]func(func(*meridianv1.Pod) bool) bool, 0, len(m.agents))
		for _, a := range m.agents {
			runs = append(runs, a.RunsAny)
		}
		m.lease.SetEnforcer(func(floors map[string]int64) map[string]int64 { return g.Enforced(floors, runs) })
	}

	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.goRun(func() { inf.Run(runCtx) })
	for _, r := range runners {
		m.goRun(func() { r.Run(runCtx) })
	}
	for _, a := range m.agents {
		m.goRun(func() {
			if err := a.Run(runCtx); err != nil {
				m.mu.Lock()
				m.errs = append(m.errs, err)
				m.mu.Unlock()
			}
		})
	}

	reg := prometheus.NewRegistry()
	m.api, err = apiserver.Start(apiserver.Options{
		GRPCListen: cfg.Listen,
		HTTPListen: cfg.HTTPListen,
		Ready: func(ctx context.Context) error {
			if !inf.WaitForSync(ctx) {
				return errors.New("caches not loaded yet")
			}
			return nil
		},
		Registry: reg,
		Logger:   log,
	}, apiserver.NewAdmin(m.store, log), func(s *grpc.Server) {
		meridianv1.RegisterLogServiceServer(s, &logService{m: m})
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start the member API: %w", err)
	}
	if cfg.Hub != "" {
		m.sync, err = hubsync.New(hubsync.Config{
			Hub: cfg.Hub, Cluster: cfg.Name, Region: cfg.Region, Datacenter: cfg.Datacenter, Labels: cfg.Labels,
			APIEndpoint: m.api.GRPCAddr(), Version: version.Version,
			JoinToken: cfg.JoinToken, CAPin: cfg.HubCAPin, CAFile: cfg.HubCAFile,
			StateDir: filepath.Join(cfg.DataDir, "hub"), Store: m.store, Informers: inf,
			HeartbeatInterval: cfg.HeartbeatInterval, Lease: m.lease, Registry: reg, Log: log,
		})
		if err != nil {
			return nil, err
		}
		if err := m.sync.Join(ctx); err != nil {
			return nil, err
		}
		m.goRun(func() { m.sync.Run(runCtx) })
	}
	if cfg.GossipListen != "" {
		if m.gsp, err = m.startGossip(); err != nil {
			return nil, err
		}
	}
	log.Info("member started", "api", m.api.GRPCAddr(), "nodes", len(m.agents), "runtime", cfg.Runtime)
	return m, nil
}

func (m *Member) goRun(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// driverFactory returns how each node's runtime driver is made.
func (m *Member) driverFactory() (func(node string, onChange runtime.ChangeFunc) (runtime.Driver, error), error) {
	switch m.cfg.Runtime {
	case "sim":
		d := &simDispatch{byUID: map[string]runtime.ChangeFunc{}}
		e, err := sim.New(sim.Config{StartDelay: m.cfg.SimStartDelay, FailureRate: m.cfg.SimFailureRate, OnChange: d.notify})
		if err != nil {
			return nil, fmt.Errorf("failed to start the sim runtime: %w", err)
		}
		m.sim = e
		return func(node string, onChange runtime.ChangeFunc) (runtime.Driver, error) {
			return &simNode{Node: e.Node(node), dispatch: d, onChange: onChange}, nil
		}, nil
	default:
		return func(node string, onChange runtime.ChangeFunc) (runtime.Driver, error) {
			d, err := exec.New(exec.Config{
				RootDir:     filepath.Join(m.cfg.DataDir, "nodes", node),
				BackoffBase: m.cfg.CrashLoopBackoff,
				BackoffCap:  max(m.cfg.CrashLoopBackoff, 5*time.Minute),
				OnChange:    onChange,
				Logger:      m.log.With("node", node),
				Fence:       m.fenceHook,
			})
			if err != nil {
				return nil, err
			}
			// Processes a previous agent started (it was killed, say) die
			// before anything starts again: a pod never runs twice.
			orphans, err := d.CleanupOrphans()
			if err != nil {
				m.log.Warn("failed to clean up processes of a previous run", "node", node, "err", err)
			}
			if len(orphans) > 0 {
				m.log.Info("stopped processes left by a previous run", "node", node, "count", len(orphans))
			}
			return d, nil
		}, nil
	}
}

// startWatchdog starts the fence watchdog process over a state file in
// the data dir, publishes the lease's deadline to it on every extension
// and sets the exec runtime's hook that lists the fenced pods' processes.
func (m *Member) startWatchdog(g *fence.Gate, inf *controller.InformerSet) error {
	pub, err := watchdog.NewPublisher(filepath.Join(m.cfg.DataDir, "fence-watchdog.json"))
	if err != nil {
		return err
	}
	m.watchdog, err = watchdog.Spawn(watchdog.SpawnConfig{StateFile: pub.Path(), Log: m.log})
	if err != nil {
		return err
	}
	m.lease.OnExtend(func(until time.Time, margin time.Duration) {
		if err := pub.Extend(watchdog.Deadline(until, margin)); err != nil {
			m.log.Error("failed to publish the fence deadline", "err", err)
		}
	})
	m.fenceHook = g.WatchdogHook(inf, pub, m.watchdog.Running, m.log)
	m.log.Info("fence watchdog started", "pid", m.watchdog.Pid(), "state", pub.Path())
	return nil
}

// Addr is the local API address.
func (m *Member) Addr() string { return m.api.GRPCAddr() }

// HTTPAddr is the address of /healthz, /readyz and /metrics.
func (m *Member) HTTPAddr() string { return m.api.HTTPAddr() }

// Store is the member's object store.
func (m *Member) Store() storage.Interface { return m.store }

// Nodes lists the member's node names.
func (m *Member) Nodes() []string {
	out := make([]string, 0, len(m.agents))
	for n := range m.agents {
		out = append(out, n)
	}
	return out
}

// agentFor returns the agent of a node, or nil.
func (m *Member) agentFor(node string) *agent.Agent { return m.agents[node] }

// startGossip joins the federation's gossip pool as this cluster's node.
func (m *Member) startGossip() (*gossip.Gossip, error) {
	host, portStr, err := net.SplitHostPort(m.cfg.GossipListen)
	if err != nil {
		return nil, fmt.Errorf("gossip-listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip-listen: port %q: %w", portStr, err)
	}
	profile, err := gossip.ProfileNamed(m.cfg.GossipProfile)
	if err != nil {
		return nil, fmt.Errorf("gossip-profile: %w", err)
	}
	g, err := gossip.Start(gossip.Config{
		Name: m.cfg.Name, Role: gossip.RoleMember, Region: m.cfg.Region, Datacenter: m.cfg.Datacenter, Cluster: m.cfg.Name,
		Addresses: map[string]string{"api": m.api.GRPCAddr()}, Version: version.Version,
		BindAddr: host, BindPort: port, Seeds: m.cfg.GossipSeeds,
		PrimaryKey: m.cfg.GossipKey, SecondaryKeys: m.cfg.GossipSecondaryKeys, Profile: profile, Logger: m.log,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start gossip on %s (gossip-listen): %w", m.cfg.GossipListen, err)
	}
	return g, nil
}

// Sync is the member's hub link, or nil when standalone.
func (m *Member) Sync() *hubsync.Client { return m.sync }

// Close stops the member in order: gossip (leaving the pool), the API, then
// the hub link, controllers, scheduler and node agents (which stop every
// pod), then the store.
func (m *Member) Close() error {
	if m.gsp != nil {
		_ = m.gsp.Leave(m.cfg.ShutdownTimeout)
		m.gsp.Close()
	}
	if m.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
		m.api.Stop(ctx)
		cancel()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.lease != nil {
		m.lease.Stop()
	}
	if len(m.agents) > 0 && m.cancel == nil {
		// Start failed before running the agents: their drivers still need closing.
		for _, a := range m.agents {
			a.Driver().Close()
		}
	}
	if m.rec != nil {
		// Events are written in the background: let those of the
		// shutdown (pods stopped) reach the store before it closes.
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
		if err := m.rec.Wait(ctx); err != nil {
			m.log.Warn("events not written before shutdown", "err", err)
		}
		cancel()
	}
	var errs []error
	m.mu.Lock()
	errs = append(errs, m.errs...)
	m.mu.Unlock()
	if m.sim != nil {
		m.sim.Close()
	}
	if m.watchdog != nil {
		// After the agents: their pods are stopped.
		_ = m.watchdog.Close()
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to close the store: %w", err))
		}
	}
	return errors.Join(errs...)
}

func ensureNamespace(ctx context.Context, st storage.Interface, name string) error {
	kind := resource.MustLookup("Namespace")
	_, err := st.Get(ctx, kind, "", name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to read namespace %s: %w", name, err)
	}
	ns := kind.New()
	resource.Meta(ns).Name = name
	if _, _, err := st.Apply(ctx, ns, storage.ApplyOptions{}); err != nil {
		return fmt.Errorf("failed to create namespace %s: %w", name, err)
	}
	return nil
}

// simDispatch routes the sim engine's change callbacks (one for the whole
// engine) to the agent of the node that runs the pod.
type simDispatch struct {
	mu    sync.RWMutex
	byUID map[string]runtime.ChangeFunc // guarded by mu
}

func (d *simDispatch) notify(uid string) {
	d.mu.RLock()
	f := d.byUID[uid]
	d.mu.RUnlock()
	if f != nil {
		f(uid)
	}
}

// simNode is a sim node driver that registers its pods with the dispatcher.
type simNode struct {
	*sim.Node
	dispatch *simDispatch
	onChange runtime.ChangeFunc
}

func (n *simNode) Start(ctx context.Context, req *runtime.PodRequest) error {
	n.dispatch.mu.Lock()
	n.dispatch.byUID[req.UID] = n.onChange
	n.dispatch.mu.Unlock()
	return n.Node.Start(ctx, req)
}

func (n *simNode) Stop(ctx context.Context, uid string, grace time.Duration) error {
	err := n.Node.Stop(ctx, uid, grace)
	n.dispatch.mu.Lock()
	delete(n.dispatch.byUID, uid)
	n.dispatch.mu.Unlock()
	return err
}
