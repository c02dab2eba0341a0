package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"google.golang.org/grpc"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/hub/etcdnode"
	"github.com/meridian-fed/meridian/hub/federation"
	"github.com/meridian-fed/meridian/hub/fencing"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/apiserver"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"github.com/meridian-fed/meridian/proto/meridian/version"
)

// Hub is one running hub node.
type Hub struct {
	cfg   Config
	log   *slog.Logger
	node  *etcdnode.Node // nil with an external etcd
	cli   *clientv3.Client
	store *store.Store
	api   *apiserver.Server
	sec   *security
	fed   *federation.Federation
	gsp   *gossip.Gossip // nil without gossip-listen
	pipe  *pipeline      // placement engine and plugins
	hubID string

	cancel context.CancelFunc // stops the federation's goroutines
	wg     sync.WaitGroup
}

// Start brings a hub node up: etcd, then the store, then the API. On any
// failure it undoes what it started, in reverse order.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Hub, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid hub configuration:\n%w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	// h is a local, not the named result: goroutines started below use
	// it, and a failing return sets the result to nil.
	h := &Hub{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()

	endpoints := cfg.EtcdEndpoints
	if !cfg.External() {
		h.node, err = etcdnode.Start(ctx, etcdnode.Config{
			Name:           cfg.EtcdName,
			DataDir:        cfg.DataDir,
			ClientURL:      cfg.EtcdClientURL,
			PeerURL:        cfg.EtcdPeerURL,
			InitialCluster: cfg.EtcdInitialCluster,
			ClusterState:   cfg.EtcdInitialClusterState,
			TickMs:         cfg.EtcdTickMs,
			ElectionMs:     cfg.EtcdElectionMs,
			Logger:         log,
		})
		if err != nil {
			return nil, fmt.Errorf("failed to start embedded etcd: %w", err)
		}
		endpoints = h.node.Endpoints()
	}
	h.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(), // the hub logs its own errors; etcd client retries are noise
	})
	if err != nil {
		return nil, fmt.Errorf("failed to connect to etcd %v: %w", endpoints, err)
	}
	h.store = store.New(h.cli)
	if err := h.ensureDefaultNamespace(ctx); err != nil {
		return nil, err
	}

	if h.hubID, err = clusterID(ctx, h.cli); err != nil {
		return nil, err
	}
	if h.sec, err = setupSecurity(ctx, cfg, h.cli); err != nil {
		return nil, err
	}
	auth := &pki.Authenticator{AdminTokens: &reloadingTokens{set: h.sec.adminTokens, cli: h.cli}}
	drillGuard, drillStreamGuard := drill.OperatorGuard()
	policy, err := authPolicy()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if cfg.GossipListen != "" {
		if h.gsp, err = startGossip(cfg, log); err != nil {
			return nil, err
		}
	}
	if h.pipe, err = startPipeline(cfg, reg, log); err != nil {
		return nil, err
	}
	fcfg := federation.Config{
		Store: h.store, CA: h.sec.ca, Tokens: h.sec.tokens, HubID: h.hubID, Version: version.Version,
		HeartbeatTimeout: cfg.HeartbeatTimeout, HealthInterval: cfg.HealthInterval, Placement: h.pipe.engine, Registry: reg, Log: log,
		FailoverRate: cfg.FailoverRate, FailoverBurst: cfg.FailoverBurst,
	}
	if h.gsp != nil {
		fcfg.Gossip = h.gsp
	}
	// Singleton leases and epochs (docs/failover.md, "Fencing").
	fence, err := fencing.New(fencing.Config{Client: h.cli, Lease: cfg.LeaseDuration, Margin: cfg.LeaseMargin, Node: cfg.EtcdName, Registry: reg, Log: log})
	if err != nil {
		return nil, err
	}
	fcfg.Fence, fcfg.Leases = fence, fence
	if h.fed, err = federation.New(fcfg); err != nil {
		return nil, err
	}
	guard := newQuorumGuard(h.node)
	leader, err := leaderGauge(reg)
	if err != nil {
		return nil, err
	}
	h.api, err = apiserver.Start(apiserver.Options{
		GRPCListen:      cfg.Listen,
		HTTPListen:      cfg.HTTPListen,
		MaxRequestBytes: cfg.MaxRequestBytes,
		RequestTimeout:  cfg.RequestTimeout,
		Ready: func(ctx context.Context) error {
			if err := guard.check(ctx); err != nil {
				return err
			}
			_, err := h.store.Revision(ctx)
			return err
		},
		Registry:           reg,
		Logger:             log,
		TLS:                h.sec.serverTLS,
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{auth.Unary(), policy.Unary(), drillGuard, guard.Unary()},
		StreamInterceptors: []grpc.StreamServerInterceptor{auth.Stream(), policy.Stream(), drillStreamGuard, guard.Stream()},
	}, apiserver.NewAdmin(h.store, log), func(s *grpc.Server) {
		meridianv1.RegisterFederationServiceServer(s, h.fed)
		meridianv1.RegisterPlacementServiceServer(s, h.pipe)
		meridianv1.RegisterDrillServiceServer(s, &drill.Service{Mint: func(ctx context.Context, name string, ttl time.Duration) (string, error) {
			return h.sec.mintAdminToken(ctx, h.cli, name, ttl)
		}, List: func(ctx context.Context) ([]pki.AdminTokenRecord, error) {
			return loadAdminTokens(ctx, h.cli)
		}, Revoke: func(ctx context.Context, id string) error {
			return h.sec.revokeAdminToken(ctx, h.cli, id)
		}})
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start API server: %w", err)
	}
	if h.gsp != nil {
		if err := h.gsp.UpdateMeta(gossipMeta(cfg, h.api.GRPCAddr()), 5*time.Second); err != nil {
			log.Warn("failed to advertise the API address over gossip", "err", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.goRun(func() { h.fed.Serve(runCtx) })
	h.goRun(func() { guard.run(runCtx) })
	h.goRun(func() {
		runAsLeader(runCtx, h.cli, cfg.EtcdName, int(cfg.LeaderLease/time.Second), log, leading(leader, h.fed.Run))
	})
	log.Info("hub started", "api", h.api.GRPCAddr(), "http", h.api.HTTPAddr(), "etcd", endpoints, "embedded", h.node != nil,
		"hub_id", h.hubID, "gossip", cfg.GossipListen)
	return h, nil
}

// ensureDefaultNamespace creates the "default" namespace on first start, so
// that manifests without a namespace have somewhere to go.
func (h *Hub) ensureDefaultNamespace(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	nsKind := resource.MustLookup("Namespace")
	_, err := h.store.Get(ctx, nsKind, "", apiserver.DefaultNamespace)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("failed to read the default namespace: %w", err)
	}
	ns := nsKind.New()
	resource.Meta(ns).Name = apiserver.DefaultNamespace
	if _, _, err := h.store.Apply(ctx, ns, store.ApplyOptions{}); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("failed to create the default namespace: %w", err)
	}
	return nil
}

// Addr is the gRPC API address.
func (h *Hub) Addr() string { return h.api.GRPCAddr() }

// HTTPAddr is the address of /healthz, /readyz and /metrics.
func (h *Hub) HTTPAddr() string { return h.api.HTTPAddr() }

func (h *Hub) goRun(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// Federation is the hub's federation side (streams, acks).
func (h *Hub) Federation() *federation.Federation { return h.fed }

// ID names the federation: the etcd cluster ID.
func (h *Hub) ID() string { return h.hubID }

// CA is the federation CA.
func (h *Hub) CA() *pki.CA { return h.sec.ca }

// GossipAddr is the gossip address, or "" without gossip.
func (h *Hub) GossipAddr() string {
	if h.gsp == nil {
		return ""
	}
	return h.gsp.LocalAddr()
}

// Store is the hub's typed store.
func (h *Hub) Store() *store.Store { return h.store }

// Close shuts the hub down in order — gossip (leaving the pool), API
// (letting calls finish), controllers, etcd client, embedded etcd — each
// step bounded by ShutdownTimeout.
func (h *Hub) Close() error {
	var errs []error
	if h.gsp != nil {
		_ = h.gsp.Leave(h.cfg.ShutdownTimeout)
		if err := h.gsp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to stop gossip: %w", err))
		}
	}
	if h.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
		h.api.Stop(ctx)
		cancel()
	}
	if h.cancel != nil {
		h.cancel()
	}
	h.wg.Wait()
	if h.cli != nil {
		if err := h.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("failed to close etcd client: %w", err))
		}
	}
	if h.pipe != nil {
		if err := h.pipe.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to stop plugins: %w", err))
		}
	}
	if h.node != nil {
		if err := h.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to stop embedded etcd: %w", err))
		}
	}
	return errors.Join(errs...)
}

// clusterID names the federation by its etcd cluster ID.
func clusterID(ctx context.Context, cli *clientv3.Client) (string, error) {
	resp, err := cli.Get(ctx, "/meridian/hub-id-probe")
	if err != nil {
		return "", fmt.Errorf("failed to read the etcd cluster ID: %w", err)
	}
	return fmt.Sprintf("%016x", resp.Header.GetClusterId()), nil
}

func gossipMeta(cfg Config, api string) gossip.Meta {
	return gossip.Meta{Role: gossip.RoleHub, Region: cfg.Region, Datacenter: cfg.Datacenter,
		Addresses: map[string]string{"api": api}, Version: version.Version}
}

func startGossip(cfg Config, log *slog.Logger) (*gossip.Gossip, error) {
	host, portStr, err := net.SplitHostPort(cfg.GossipListen)
	if err != nil {
		return nil, fmt.Errorf("gossip-listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip-listen: port %q: %w", portStr, err)
	}
	profile, err := gossip.ProfileNamed(cfg.GossipProfile)
	if err != nil {
		return nil, fmt.Errorf("gossip-profile: %w", err)
	}
	g, err := gossip.Start(gossip.Config{
		Name: "hub-" + cfg.EtcdName, Role: gossip.RoleHub, Region: cfg.Region, Datacenter: cfg.Datacenter,
		Version: version.Version, BindAddr: host, BindPort: port,
		PrimaryKey: cfg.GossipKey, SecondaryKeys: cfg.GossipSecondaryKeys, Profile: profile, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start gossip on %s (gossip-listen): %w", cfg.GossipListen, err)
	}
	return g, nil
}
