// Package etcdnode runs one node of the hub's embedded etcd cluster.
//
// A hub is one node (a single-node cluster) or three or five nodes, one per
// datacenter, each started with the same InitialCluster. Everything above this
// package talks to etcd only through a clientv3.Client dialled at the nodes'
// Endpoints, so an external etcd cluster is a configuration switch away:
//
//	Config ──Validate──▶ Start ──▶ Node ──Endpoints──▶ clientv3 ──▶ hub/store
//	                                 └── Close (ordered, bounded)
//
// Lifecycle, as in etcd's embed package: Start brings the server up and waits
// until it has joined a quorum and serves clients (or fails and cleans up
// everything it started); Err reports fatal serving errors while it runs;
// Close shuts it down.
package etcdnode

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Node is a running embedded etcd node.
type Node struct {
	cfg  Config
	etcd *embed.Etcd
	log  *slog.Logger

	// closing is set when Close begins; etcd's logs are demoted from then on.
	closing *atomic.Bool

	// closeOnce guards closeErr: Close shuts the node down once and every
	// later call returns the first result.
	closeOnce sync.Once
	closeErr  error
}

// Start starts an etcd node and waits until it is ready to serve clients,
// which for a member of a multi-node cluster means until a quorum of
// InitialCluster is up. It gives up after cfg.StartTimeout or when ctx ends.
// On any failure everything started so far is closed again.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("etcd_member", cfg.Name)
	closing := new(atomic.Bool)
	ecfg, err := cfg.embedConfig(newZapLogger(log, closing))
	if err != nil {
		return nil, fmt.Errorf("failed to build etcd config: %w", err)
	}

	began := time.Now()
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		// StartEtcd cleans up after itself on error.
		return nil, fmt.Errorf("failed to start etcd node %s: %w", cfg.Name, err)
	}
	// started, not n: a "return nil, err" below sets n to nil before this
	// deferred cleanup runs.
	started := &Node{cfg: cfg, etcd: e, log: log, closing: closing}
	defer func() {
		if err != nil {
			if cerr := started.Close(); cerr != nil {
				log.Warn("failed to close etcd node after failed start", "err", cerr)
			}
			n = nil
		}
	}()

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case serr, ok := <-e.Err():
		if !ok || serr == nil {
			return nil, fmt.Errorf("failed to start etcd node %s: it stopped before it was ready", cfg.Name)
		}
		return nil, fmt.Errorf("failed to serve etcd node %s: %w", cfg.Name, serr)
	case <-e.Server.StopNotify():
		return nil, fmt.Errorf("failed to start etcd node %s: the server stopped before it was ready", cfg.Name)
	case <-timer.C:
		return nil, fmt.Errorf("failed to start etcd node %s: not ready after %s (is a quorum of %q up?)",
			cfg.Name, cfg.StartTimeout, cfg.InitialCluster)
	case <-ctx.Done():
		return nil, fmt.Errorf("failed to start etcd node %s: %w", cfg.Name, ctx.Err())
	}
	log.Info("etcd node ready", "endpoints", started.Endpoints(), "data_dir", cfg.DataDir,
		"took", time.Since(began).Round(time.Millisecond))
	return started, nil
}

// embedConfig translates a validated Config into etcd's.
func (c *Config) embedConfig(lg *zap.Logger) (*embed.Config, error) {
	client, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("failed to parse ClientURL: %w", err)
	}
	peer, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("failed to parse PeerURL: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	ec.ListenClientUrls = []url.URL{*client}
	ec.AdvertiseClientUrls = []url.URL{*client}
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.InitialCluster = c.InitialCluster
	ec.ClusterState = c.ClusterState
	ec.InitialClusterToken = c.ClusterToken
	ec.TickMs = c.TickMs
	ec.ElectionMs = c.ElectionMs
	ec.AutoCompactionMode = c.AutoCompactionMode
	ec.AutoCompactionRetention = c.AutoCompactionRetention
	ec.WatchProgressNotifyInterval = c.ProgressNotifyInterval
	ec.UnsafeNoFsync = c.UnsafeNoFsync
	ec.ForceNewCluster = c.ForceNewCluster
	// etcd logs through zap; at "error" only real trouble shows, and it goes
	// to the hub's slog logger (see slogCore) rather than straight to stderr.
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	return ec, nil
}

// Endpoints returns the client URLs of this node, for clientv3.Config.
func (n *Node) Endpoints() []string {
	u, err := url.Parse(n.cfg.ClientURL)
	if err != nil || len(n.etcd.Clients) == 0 {
		return []string{n.cfg.ClientURL}
	}
	out := make([]string, 0, len(n.etcd.Clients))
	for _, l := range n.etcd.Clients {
		// The listener's address, so that a ClientURL with port 0 reports
		// the port actually bound.
		out = append(out, u.Scheme+"://"+l.Addr().String())
	}
	return out
}

// HasLeader reports whether this node currently knows an etcd leader. A node
// cut off from a quorum loses its leader after an election timeout (etcd
// runs raft with check-quorum and pre-vote), and serves no read or write
// until a quorum is back.
func (n *Node) HasLeader() bool { return n.etcd.Server.Leader() != 0 }

// ElectionTimeout is the node's configured raft election timeout.
func (n *Node) ElectionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionMs) * time.Millisecond
}

// Name returns the node's member name.
func (n *Node) Name() string { return n.cfg.Name }

// Err reports fatal errors of the running node (a listener that stopped
// serving). The hub should treat one as fatal and shut down. The channel is
// closed by Close.
func (n *Node) Err() <-chan error { return n.etcd.Err() }

// Close shuts the node down, in etcd's order: stop accepting clients and
// close their connections (each server bounded by the request timeout),
// stop the raft server (handing leadership to a peer first if this node
// leads), then close the peer transports (bounded by a second). The whole is
// bounded by cfg.CloseTimeout; if that passes, Close returns an error and the
// rest of the shutdown continues in the background. Close is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	n.closing.Store(true)
	began := time.Now()
	done := make(chan struct{})
	// Owned by this call; it ends when etcd's Close returns, which every
	// step above bounds.
	go func() {
		defer close(done)
		select {
		case <-n.etcd.Server.ReadyNotify():
		default:
			// Not serving yet (a failed Start): etcd's Close first drains
			// the client servers, which wait until the server is ready or
			// stopping, so stop the server first, as the embed docs do.
			n.etcd.Server.Stop()
		}
		n.etcd.Close()
	}()
	timer := time.NewTimer(n.cfg.CloseTimeout)
	defer timer.Stop()
	select {
	case <-done:
		n.log.Info("etcd node closed", "took", time.Since(began).Round(time.Millisecond))
		return nil
	case <-timer.C:
		return fmt.Errorf("failed to close etcd node %s within %s: shutdown continues in the background",
			n.cfg.Name, n.cfg.CloseTimeout)
	}
}
