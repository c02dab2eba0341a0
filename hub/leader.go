package hub

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// leaderKey is the etcd election every hub node campaigns in.
const leaderKey = "/meridian/leader"

// runAsLeader campaigns for the hub's leadership (an etcd election on a
// session lease of ttl seconds) and runs lead while this node is the
// leader, until ctx ends. A node that loses its session (etcd unreachable
// for longer than the lease) stops leading: lead's context is cancelled,
// then it campaigns again.
func runAsLeader(ctx context.Context, cli *clientv3.Client, name string, ttl int, log *slog.Logger, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("leader election: no etcd session; retrying", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		el := concurrency.NewElection(sess, leaderKey)
		// Campaign, when its context ends, resigns with the client's own
		// context, which blocks until etcd answers — forever if etcd has
		// lost its quorum (the other hub nodes stopped first). So it runs
		// on its own goroutine, which the client's Close ends, and the hub
		// does not wait for it.
		campaign := make(chan error, 1)
		go func() { campaign <- el.Campaign(ctx, name) }()
		select {
		case err = <-campaign:
		case <-ctx.Done():
			return
		}
		if err != nil {
			sess.Close()
			if ctx.Err() == nil {
				log.Warn("leader election failed; retrying", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		log.Info("this hub node is the leader: running the controllers", "node", name)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				log.Warn("leader session lost: stopping the controllers", "node", name)
			case <-lctx.Done():
			}
			cancel()
		}()
		lead(lctx)
		cancel()
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = el.Resign(rctx)
		rcancel()
		sess.Close()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
