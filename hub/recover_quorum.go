package hub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub/etcdnode"
)

// quorumPollInterval is how often a call waiting for an etcd leader looks again.
const quorumPollInterval = 10 * time.Millisecond

// quorumGuard fails the hub's API calls fast, with a clear Unavailable, on a
// node whose embedded etcd has no leader — a node cut off from the majority
// of the hub, or left alone after the loss of the majority region. Without
// it, a read or a write waits on etcd until the caller's deadline (etcd
// queues linearizable requests until a quorum is back, and the etcd client
// retries reads) and the caller learns nothing.
//
// A call that arrives during an ordinary election (one election timeout or
// two) waits for the new leader instead of failing; once the node has been
// without a leader for longer than that (wait), calls fail at once. Calls
// already waiting on etcd when the quorum went are cut short at that moment
// too (run watches the leader), and every such failure carries the same
// explanation.
//
// With an external etcd (node nil) the guard lets every call through: the
// etcd client reports that cluster's own errors.
type quorumGuard struct {
	node *etcdnode.Node
	// wait is how long a call waits for a leader before failing: twice the
	// election timeout, long enough for an election to finish.
	wait time.Duration
	// leaderless is when the node was first seen without a leader (Unix
	// nanoseconds), 0 while it has one.
	leaderless atomic.Int64

	mu sync.Mutex
	// lost is cancelled (by run) when the node has been without a leader
	// for wait; a new one replaces it when a leader is back.
	lost       context.Context
	cancelLost context.CancelFunc
}

func newQuorumGuard(node *etcdnode.Node) *quorumGuard {
	g := &quorumGuard{node: node}
	if node != nil {
		g.wait = 2 * node.ElectionTimeout()
	}
	g.lost, g.cancelLost = context.WithCancel(context.Background())
	return g
}

// run watches the node's leader until ctx ends, cutting short the calls in
// flight when the quorum is declared lost.
func (g *quorumGuard) run(ctx context.Context) {
	if g.node == nil {
		return
	}
	tick := time.NewTicker(5 * quorumPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		leader := g.hasLeader()
		since := g.leaderless.Load()
		g.mu.Lock()
		switch {
		case leader && g.lost.Err() != nil:
			g.lost, g.cancelLost = context.WithCancel(context.Background())
		case !leader && since != 0 && g.lost.Err() == nil && time.Since(time.Unix(0, since)) >= g.wait:
			g.cancelLost()
		}
		g.mu.Unlock()
	}
}

// lostContext is cancelled when the quorum is declared lost.
func (g *quorumGuard) lostContext() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lost
}

// hasLeader reports whether the node knows a leader, and keeps track of
// since when it has not.
func (g *quorumGuard) hasLeader() bool {
	if g.node.HasLeader() {
		g.leaderless.Store(0)
		return true
	}
	g.leaderless.CompareAndSwap(0, time.Now().UnixNano())
	return false
}

// check returns nil once this node knows an etcd leader, or an Unavailable
// error once it has had none for g.wait (or when ctx ends).
func (g *quorumGuard) check(ctx context.Context) error {
	if g.node == nil || g.hasLeader() {
		return nil
	}
	since := g.leaderless.Load()
	if since == 0 { // a leader came back meanwhile
		return nil
	}
	left := g.wait - time.Since(time.Unix(0, since))
	if left <= 0 {
		return g.err()
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	tick := time.NewTicker(quorumPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if g.hasLeader() {
				return nil
			}
		case <-timer.C:
			return g.err()
		case <-ctx.Done():
			return g.err()
		}
	}
}

// explain replaces the error of a call that failed on etcd (or was cut
// short) while the node had lost its leader with the guard's explanation.
// ctx is the caller's own context: a call the caller cancelled keeps its
// error.
func (g *quorumGuard) explain(ctx context.Context, err error) error {
	if err == nil || g.node == nil || ctx.Err() != nil {
		return err
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal:
		if !g.hasLeader() {
			return g.err()
		}
	}
	return err
}

// err is the error of a call refused for want of a quorum.
func (g *quorumGuard) err() error {
	return status.Error(codes.Unavailable, fmt.Sprintf(
		"hub node %s has no etcd quorum (no etcd leader for at least %s): it serves no read or write until a majority of the hub's nodes is back; "+
			"if that majority is lost for good, run `meridian hub recover` on a surviving node (see docs/disaster-recovery.md)",
		g.node.Name(), g.wait))
}

// guarded reports whether a method reads or writes the hub's store: the
// Meridian services. Health checks and reflection stay answered.
func guarded(fullMethod string) bool { return strings.HasPrefix(fullMethod, "/meridian.") }

// Unary is the guard as a unary server interceptor.
func (g *quorumGuard) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !guarded(info.FullMethod) {
			return handler(ctx, req)
		}
		if err := g.check(ctx); err != nil {
			return nil, err
		}
		if g.node == nil {
			return handler(ctx, req)
		}
		hctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(g.lostContext(), cancel)
		defer stop()
		resp, err := handler(hctx, req)
		return resp, g.explain(ctx, err)
	}
}

// Stream is the guard as a stream server interceptor: it checks once, when
// the stream opens (a member's Sync stream then backs off and retries), and
// explains an error the stream ends with while the quorum is lost.
func (g *quorumGuard) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !guarded(info.FullMethod) {
			return handler(srv, ss)
		}
		if err := g.check(ss.Context()); err != nil {
			return err
		}
		return g.explain(ss.Context(), handler(srv, ss))
	}
}

// leaderGauge is meridian_hub_leader: 1 while this hub node holds the
// leader election (/meridian/leader) and runs the controllers, else 0.
func leaderGauge(reg prometheus.Registerer) (prometheus.Gauge, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meridian_hub_leader",
		Help: "1 while this hub node is the elected leader running the controllers, else 0.",
	})
	if err := reg.Register(g); err != nil {
		return nil, fmt.Errorf("failed to register meridian_hub_leader: %w", err)
	}
	return g, nil
}

// leading wraps the leader's work so that the gauge says when it runs.
func leading(g prometheus.Gauge, lead func(ctx context.Context)) func(ctx context.Context) {
	return func(ctx context.Context) {
		g.Set(1)
		defer g.Set(0)
		lead(ctx)
	}
}
