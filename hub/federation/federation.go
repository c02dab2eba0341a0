// Package federation is the hub's side of the federation: the Join RPC and
// join tokens, one Sync stream per member (snapshot or changes since the
// member's revision, acks, flow control), the controllers that place hub
// objects (hub/placement) and turn them into Works (from each object's
// ResourceBinding, with its OverridePolicies), fold the members' reports
// back into the workloads' status, and cluster health (gossip combined
// with the stream heartbeat).
//
// The protocol is described in docs/federation.md.
package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Config configures the hub's federation side.
type Config struct {
	// Store is the hub's object store (required).
	Store storage.Interface
	// CA signs member certificates; Tokens holds join tokens (required).
	CA     *pki.CA
	Tokens *pki.Tokens
	// HubID names the federation (the etcd cluster ID); members keep it
	// with their revision, so that a revision of another hub is never
	// resumed.
	HubID string
	// Version is the hub's software version.
	Version string
	// HeartbeatTimeout is how old a member's last heartbeat may be before
	// the member is Suspect (default 15s).
	HeartbeatTimeout time.Duration
	// HealthInterval is how often cluster health is evaluated besides the
	// evaluations a stream or gossip change triggers (default 500ms).
	HealthInterval time.Duration
	// SyncWindow is how many unacknowledged batches a member may have in
	// flight (default 64).
	SyncWindow int
	// Gossip, if set, is the hub node's gossip view; without it health
	// uses the stream alone.
	Gossip GossipView
	// Fence releases singletons for failover (hub/fencing.Table; nil: no
	// fencing). The failover controller uses it.
	Fence Fence
	// Leases grants the members' leases on their Sync streams
	// (hub/fencing.Table; nil: no leases, so members fence nothing).
	Leases Leases
	// Placement is the placement engine (required).
	Placement *placement.Engine
	// FailoverRate and FailoverBurst bound failover moves federation-wide
	// (a token bucket; defaults failover.DefaultRate, DefaultBurst).
	FailoverRate  float64
	FailoverBurst int
	// Registry receives metrics (optional).
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// GossipView is what health needs of the gossip layer.
type GossipView interface {
	Members() []gossip.Member
}

var (
	clusterKind   = resource.MustLookup("Cluster")
	workKind      = resource.MustLookup("Work")
	bindingKind   = resource.MustLookup("ResourceBinding")
	overrideKind  = resource.MustLookup("OverridePolicy")
	namespaceKind = resource.MustLookup("Namespace")
)

// Federation is the hub's federation side. It serves FederationService on
// every hub node; Run runs the controllers, on the leader only.
type Federation struct {
	meridianv1.UnimplementedFederationServiceServer

	cfg     Config
	store   storage.Interface
	log     *slog.Logger
	metrics *metrics
	pmet    *placement.Metrics
	fomet   *failover.Metrics
	status  *statusWriter

	namespaces sync.Map // works namespaces known to exist

	mu      sync.Mutex
	streams map[string]*memberStream // by cluster
	acked   map[string]int64         // by cluster: last acked revision
	ackCh   chan struct{}            // closed and replaced on every ack
}

// New checks cfg and returns a Federation.
func New(cfg Config) (*Federation, error) {
	if cfg.Store == nil {
		return nil, errors.New("federation: Store is required")
	}
	if cfg.CA == nil || cfg.Tokens == nil {
		return nil, errors.New("federation: CA and Tokens are required")
	}
	if cfg.HubID == "" {
		return nil, errors.New("federation: HubID is required")
	}
	if cfg.Placement == nil {
		return nil, errors.New("federation: Placement is required")
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 500 * time.Millisecond
	}
	if cfg.SyncWindow <= 0 {
		cfg.SyncWindow = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	pm, err := placement.NewMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	fm, err := failover.NewMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	f := &Federation{
		cfg: cfg, store: cfg.Store, log: cfg.Log, metrics: m, pmet: pm, fomet: fm,
		streams: map[string]*memberStream{}, acked: map[string]int64{}, ackCh: make(chan struct{}),
	}
	f.status = newStatusWriter(f)
	return f, nil
}

// Serve runs what every hub node needs while it serves streams (the status
// writer) until ctx ends.
func (f *Federation) Serve(ctx context.Context) { f.status.run(ctx) }

// Run runs the controllers — placement, failover, works, status
// aggregation, cluster health, drills — until ctx ends. Only the hub leader runs them.
func (f *Federation) Run(ctx context.Context) {
	inf := controller.NewInformerSet(f.store, f.log)
	rec := controller.NewRecorder(f.store, "hub", f.log)
	places, err := placement.NewController(placement.ControllerConfig{
		Engine: f.cfg.Placement, Store: f.store, Informers: inf, Recorder: rec, Metrics: f.pmet, Log: f.log,
	})
	if err != nil {
		f.log.Error("cannot run placement", "err", err) // only a missing input: New checked them
		return
	}
	fover, err := failover.New(failover.Config{
		Engine: f.cfg.Placement, Store: f.store, Informers: inf, Recorder: rec, Metrics: f.fomet,
		Fence: f.cfg.Fence, Rate: f.cfg.FailoverRate, Burst: f.cfg.FailoverBurst, Log: f.log, Now: f.cfg.Now,
	})
	if err != nil {
		f.log.Error("cannot run failover", "err", err) // only a missing input: New checked them
		return
	}
	works := newWorkController(f, inf, rec)
	agg := newAggregator(f, inf)
	health := newHealthController(f, inf, rec)
	drills, err := drill.New(drill.Config{Store: f.store, Engine: f.cfg.Placement, Fence: f.cfg.Fence, Log: f.log})
	if err != nil {
		f.log.Error("cannot run drills", "err", err) // only a missing input: New checked them
		return
	}
	var wg sync.WaitGroup
	for _, r := range []func(context.Context){inf.Run, places.Run, fover.Run, works.run, agg.run, health.run, drills.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r(ctx)
		}()
	}
	wg.Wait()
	// Events are written in the background: let the last term's reach
	// etcd before Run returns (a second at most: a node that lost etcd
	// must not hold up its stepping down).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := rec.Wait(wctx); err != nil {
		f.log.Warn("events not written before the controllers stopped", "err", err)
	}
}

// AckedRevision is the last revision cluster acknowledged on this hub node.
func (f *Federation) AckedRevision(cluster string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acked[cluster]
}

// WaitAcked waits until cluster has acknowledged rev on this hub node.
func (f *Federation) WaitAcked(ctx context.Context, cluster string, rev int64) error {
	for {
		f.mu.Lock()
		got, ch := f.acked[cluster], f.ackCh
		f.mu.Unlock()
		if got >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cluster %s acked revision %d, waiting for %d: %w", cluster, got, rev, ctx.Err())
		}
	}
}

func (f *Federation) recordAck(cluster string, rev int64) {
	f.mu.Lock()
	if rev > f.acked[cluster] {
		f.acked[cluster] = rev
	}
	close(f.ackCh)
	f.ackCh = make(chan struct{})
	f.mu.Unlock()
	f.metrics.ackedRevision.WithLabelValues(cluster).Set(float64(rev))
}

type metrics struct {
	streams       prometheus.Gauge
	ackedRevision *prometheus.GaugeVec
	sentChanges   *prometheus.CounterVec
	snapshots     *prometheus.CounterVec
	health        *prometheus.GaugeVec
	transitions   *prometheus.CounterVec
	joins         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_hub_sync_streams", Help: "Member Sync streams open on this hub node."}),
		ackedRevision: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meridian_hub_sync_acked_revision",
			Help: "Last hub revision each member acknowledged."}, []string{"cluster"}),
		sentChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_hub_sync_sent_changes_total",
			Help: "Work changes sent to each member."}, []string{"cluster"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_hub_sync_snapshots_total",
			Help: "Snapshots sent to each member."}, []string{"cluster"}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meridian_cluster_health",
			Help: "1 for the health each cluster is in (Ready, Suspect, Unreachable), 0 for the others."}, []string{"cluster", "health"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_cluster_health_transitions_total",
			Help: "Cluster health changes, by the health entered."}, []string{"cluster", "health"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_hub_joins_total",
			Help: "Join requests by result (ok or the gRPC code)."}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.streams, m.ackedRevision, m.sentChanges, m.snapshots, m.health, m.transitions, m.joins} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("federation: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
