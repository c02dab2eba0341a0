// Package hubsync is a member's side of the federation protocol
// (docs/federation.md, meridian.v1.FederationService): it joins the hub
// once with a join token (Join), then keeps one Sync stream open (Run). Over
// the stream it applies the Works the hub sends to the member's local store,
// persists the hub revision it has applied, acknowledges it, and reports
// the status of what it applied and the member's capacity.
//
//	Join:  NewCSR ─▶ JoinClientTLS(pin) ─▶ Join(token, csr) ─▶ CheckPin(ca) ─▶ ca.crt, member.crt, member.key
//	Run:   ClientTLS(ca, cert) ─▶ Sync: hello{hub_id, revision} ─▶
//	         ◀─ snapshot | changes ─▶ Store.Apply / Delete ─▶ sync-state.json ─▶ ack{revision}
//	         status (watch of hub-managed objects, coalesced) ─▶  heartbeat (nodes, pods) ─▶
package hubsync

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Files in Config.StateDir.
const (
	// CAFile is the federation CA the member trusts (PEM), from the Join
	// response, checked against the pin.
	CAFile = "ca.crt"
	// CertFile is the member certificate and its chain (PEM).
	CertFile = "member.crt"
	// KeyFile is the member's private key (PEM, mode 0600). It never leaves
	// the member.
	KeyFile = "member.key"
	// StateFile is the last hub revision applied: {"hub_id", "revision"}.
	StateFile = "sync-state.json"
)

// Defaults of Config.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultStatusInterval    = 200 * time.Millisecond
	DefaultStatusQuiet       = 20 * time.Millisecond
	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	// MaxRecvMsgSize bounds one message from the hub (a snapshot chunk of
	// up to 500 Works).
	MaxRecvMsgSize = 64 << 20
)

// Config configures a Client. Errors of New name the member's flag of the
// field at fault (hub, name, join-token, hub-ca-pin, hub-ca-file).
type Config struct {
	// Hub is the hub API address, host:port (required); several, comma
	// separated, for a multi-node hub: the member uses one at a time and
	// moves to the next when it cannot reach it or loses its stream.
	Hub string
	// Cluster is this member's cluster name (required): the name in its
	// certificate and in every SyncHello.
	Cluster string
	// Region and Datacenter place the member; required to join.
	Region, Datacenter string
	// Labels are sent with Join, for the hub's Cluster object.
	Labels map[string]string
	// APIEndpoint is the member's local API address, sent in Join and hello.
	APIEndpoint string
	// Version is the member's version, sent in Join and hello.
	Version string
	// JoinToken is used only when no certificate is stored yet.
	JoinToken string
	// CAPin is the hub CA's pin, "sha256:<hex>"; required with JoinToken
	// unless CAFile is set.
	CAPin string
	// CAFile is a PEM file of trust roots to join with instead of a pin.
	CAFile string
	// ServerName is the name the hub's certificate must carry; default: the
	// host part of Hub.
	ServerName string
	// StateDir holds ca.crt, member.crt, member.key and sync-state.json
	// (required).
	StateDir string
	// Store is the member's local object store (required).
	Store storage.Interface
	// Informers, if set, serve the node and pod reads of the heartbeat from
	// their caches. New asks the set for the node and pod informers, so pass
	// it before the set runs; a set that already runs is not used.
	Informers *controller.InformerSet
	// HeartbeatInterval is the period of heartbeats (default 5s).
	HeartbeatInterval time.Duration
	// StatusInterval is how long status changes are coalesced into one
	// report (default 200ms). After a quiet spell (no report for
	// StatusInterval), a report goes sooner, once no change came for
	// StatusQuiet (default 20ms): a few changes reach the hub within
	// milliseconds, a stream of them (a failover of many workloads) in a
	// report every StatusInterval.
	StatusInterval time.Duration
	StatusQuiet    time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms
	// and 5s); it doubles after every failed attempt, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// Lease, if set, is the member's singleton lease: the client asks the
	// hub for it in every hello and, once the hub grants it, renews it on
	// the stream (docs/failover.md, "Fencing"). Nil: no leases.
	Lease *Lease
	// Registry, if set, gets the client's metrics.
	Registry prometheus.Registerer
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
}

// State is what the client knows of its link to the hub.
type State struct {
	// Connected is true while a Sync stream is open.
	Connected bool
	// HubID and Revision are the hub and the revision the member last
	// applied and persisted.
	HubID    string
	Revision int64
	// LastError is why the last stream ended or the last attempt failed;
	// empty once a stream is open.
	LastError string
}

// Client is a member's link to its hub.
type Client struct {
	cfg   Config
	addrs []string     // the hub node addresses of Config.Hub
	cur   atomic.Int32 // index in addrs of the node in use
	log   *slog.Logger
	m     *metrics

	nodes, pods *controller.Informer // nil without Config.Informers

	runMu sync.Mutex // one Run at a time

	mu    sync.Mutex
	state State // guarded by mu

	track *tracker
}

// New checks cfg and returns a client. It reads nothing from the hub.
func New(cfg Config) (*Client, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, addrs: splitHubs(cfg.Hub), log: cfg.Log.With("hub", cfg.Hub)}
	st, err := readSyncState(filepath.Join(cfg.StateDir, StateFile))
	if err != nil {
		return nil, err
	}
	c.state.HubID, c.state.Revision = st.HubID, st.Revision
	if cfg.Informers != nil {
		c.nodes, c.pods = informersOf(cfg.Informers)
		if c.nodes == nil {
			c.log.Warn("the informer set already runs; the heartbeat reads nodes and pods from the store")
		}
	}
	if c.m, err = newMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	c.m.revision.Set(float64(st.Revision))
	c.track = newTracker(cfg.Cluster, cfg.Store, c.log)
	if l := cfg.Lease; l != nil {
		var held atomic.Bool
		l.Subscribe(func() {
			now := l.Held()
			if now {
				c.m.leaseHeld.Set(1)
			} else {
				c.m.leaseHeld.Set(0)
			}
			if held.Swap(now) != now {
				if now {
					c.log.Info("holding the singleton lease", "remaining", l.Remaining())
				} else {
					c.log.Warn("lost the singleton lease: singleton pods stop until the hub grants it again")
				}
			}
		})
	}
	return c, nil
}

// informersOf asks set for the node and pod informers; nil, nil if the set
// already runs (For panics then).
func informersOf(set *controller.InformerSet) (nodes, pods *controller.Informer) {
	defer func() {
		if recover() != nil {
			nodes, pods = nil, nil
		}
	}()
	return set.For(kindNode), set.For(kindPod)
}

func (cfg *Config) defaults() error {
	if cfg.Hub == "" {
		return errors.New("hub: required: the hub API address, host:port")
	}
	for _, a := range splitHubs(cfg.Hub) {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("hub: %q is not host:port", a)
		}
	}
	if cfg.Cluster == "" {
		return errors.New("name: required: the member's cluster name")
	}
	if errs := k8svalidation.IsDNS1123Subdomain(cfg.Cluster); len(errs) > 0 {
		return fmt.Errorf("name: %q: %s", cfg.Cluster, strings.Join(errs, "; "))
	}
	if cfg.StateDir == "" {
		return errors.New("state-dir: required: where the member keeps its certificate and sync state")
	}
	if cfg.Store == nil {
		return errors.New("store: required")
	}
	if cfg.CAPin != "" {
		if _, err := pki.JoinClientTLS(cfg.CAPin, cfg.ServerName); err != nil {
			return fmt.Errorf("hub-ca-pin: %w", err)
		}
	}
	if cfg.CAFile != "" {
		if _, err := readPool(cfg.CAFile); err != nil {
			return fmt.Errorf("hub-ca-file: %w", err)
		}
	}
	if cfg.JoinToken != "" {
		if cfg.CAPin == "" && cfg.CAFile == "" {
			return errors.New("hub-ca-pin: required with join-token (or set hub-ca-file): it proves the hub is the real one before the token is sent")
		}
	} else if !certStored(cfg.StateDir) {
		return fmt.Errorf("join-token: required: no member certificate in %s yet", cfg.StateDir)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.StatusQuiet <= 0 {
		cfg.StatusQuiet = min(DefaultStatusQuiet, cfg.StatusInterval)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return nil
}

func readPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := pki.PoolFromPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pool, nil
}

// State returns what the client knows of its link to the hub.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Client) setConnected(connected bool, err error) {
	c.mu.Lock()
	c.state.Connected = connected
	if connected {
		c.state.LastError = ""
	} else if err != nil {
		c.state.LastError = err.Error()
	}
	c.mu.Unlock()
	if connected {
		c.m.connected.Set(1)
	} else {
		c.m.connected.Set(0)
	}
}

func (c *Client) setSynced(st syncState) {
	c.mu.Lock()
	c.state.HubID, c.state.Revision = st.HubID, st.Revision
	c.mu.Unlock()
	c.m.revision.Set(float64(st.Revision))
}

func (c *Client) synced() syncState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return syncState{HubID: c.state.HubID, Revision: c.state.Revision}
}

// Kinds the client reads.
var (
	kindNamespace = resource.MustLookup("Namespace")
	kindNode      = resource.MustLookup("Node")
	kindPod       = resource.MustLookup("Pod")
	kindService   = resource.MustLookup("Service")
)

// metrics are the client's Prometheus metrics.
type metrics struct {
	connected  prometheus.Gauge
	revision   prometheus.Gauge
	reconnects prometheus.Counter
	applied    *prometheus.CounterVec
	leaseHeld  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_member_sync_connected",
			Help: "1 while the member's Sync stream to the hub is open.",
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_member_sync_revision",
			Help: "The hub revision the member has applied and persisted.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_member_sync_reconnects_total",
			Help: "Attempts to open the Sync stream again after the first.",
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_member_sync_applied_total",
			Help: "Works the member applied, by result: created, configured, unchanged, deleted, failed.",
		}, []string{"result"}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_member_lease_held",
			Help: "1 while the member holds its singleton lease from the hub (its singleton pods may run).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.connected = register(reg, m.connected, &err)
	m.revision = register(reg, m.revision, &err)
	m.reconnects = register(reg, m.reconnects, &err)
	m.applied = register(reg, m.applied, &err)
	m.leaseHeld = register(reg, m.leaseHeld, &err)
	if err != nil {
		return nil, fmt.Errorf("failed to register the hub sync metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector already registered in its
// place (a second Client on the same registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}

// splitHubs is the addresses of a comma-separated hub list.
func splitHubs(hub string) []string {
	var out []string
	for _, a := range strings.Split(hub, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// hubAddr is the hub node address in use.
func (c *Client) hubAddr() string { return c.addrs[int(c.cur.Load())%len(c.addrs)] }

// nextHub moves to the next hub node address (a no-op with one).
func (c *Client) nextHub() {
	if len(c.addrs) > 1 {
		c.cur.Store(int32((int(c.cur.Load()) + 1) % len(c.addrs)))
	}
}

// serverName is the name the hub node at addr must prove: Config.ServerName,
// or the address's host.
func (c *Client) serverName(addr string) string {
	if c.cfg.ServerName != "" {
		return c.cfg.ServerName
	}
	host, _, _ := net.SplitHostPort(addr)
	return host
}
