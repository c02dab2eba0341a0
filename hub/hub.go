package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meridian-fed/meridian/hub/etcdnode"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/apiserver"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// Hub is one running hub node.
type Hub struct {
	cfg   Config
	log   *slog.Logger
	node  *etcdnode.Node // nil with an external etcd
	cli   *clientv3.Client
	store *store.Store
	api   *apiserver.Server
}

// Start brings a hub node up: etcd, then the store, then the API. On any
// failure it undoes what it started, in reverse order.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (h *Hub, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid hub configuration:\n%w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	h = &Hub{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			h.Close()
			h = nil
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

	h.api, err = apiserver.Start(apiserver.Options{
		GRPCListen:      cfg.Listen,
		HTTPListen:      cfg.HTTPListen,
		MaxRequestBytes: cfg.MaxRequestBytes,
		RequestTimeout:  cfg.RequestTimeout,
		Ready: func(ctx context.Context) error {
			_, err := h.store.Revision(ctx)
			return err
		},
		Registry: prometheus.NewRegistry(),
		Logger:   log,
	}, apiserver.NewAdmin(h.store, log), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to start API server: %w", err)
	}
	log.Info("hub started", "api", h.api.GRPCAddr(), "http", h.api.HTTPAddr(), "etcd", endpoints, "embedded", h.node != nil)
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

// Store is the hub's typed store.
func (h *Hub) Store() *store.Store { return h.store }

// Close shuts the hub down in order — API (letting calls finish), etcd
// client, embedded etcd — each step bounded by ShutdownTimeout.
func (h *Hub) Close() error {
	var errs []error
	if h.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
		h.api.Stop(ctx)
		cancel()
	}
	if h.cli != nil {
		if err := h.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("failed to close etcd client: %w", err))
		}
	}
	if h.node != nil {
		if err := h.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to stop embedded etcd: %w", err))
		}
	}
	return errors.Join(errs...)
}
