package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Fence decides when a singleton may start elsewhere. Release answers "may
// a replacement of workload (namespace/kind/name) start elsewhere now that
// cluster failed?": when it may, wait is 0 and epoch is the fencing epoch
// the replacement runs with (higher than any the old copy had); when not
// yet, wait is how long to ask again after. hub/fencing implements it with
// leases. With Config.Fence nil the controller is conservative: it waits
// the toleration plus FenceMargin from the moment the cluster became
// Unreachable, and uses the binding's epoch plus one.
//
// A release commits: from then on the copy on cluster never runs at its
// old epoch. The controller therefore calls Release only for a move it has
// decided (a target found, no veto), and remembers the epoch until a
// binding write carries it, so that a write that conflicts does not
// release (and raise the epoch) again.
type Fence interface {
	Release(ctx context.Context, workload, cluster string) (epoch int64, wait time.Duration, err error)
}

// Revoker begins a planned release of a singleton off a cluster that keeps
// its lease (a failback): Release, which otherwise waits for the lease to
// expire, then answers with the epoch once the member reports its copy
// stopped. hub/fencing.Table implements it next to Fence; the controller
// type-asserts Config.Fence (federation.Revoker is the same interface).
type Revoker interface {
	Revoke(ctx context.Context, workload, cluster string) error
}

// errNoRevoker holds a planned move of a singleton when Config.Fence
// cannot revoke: Release alone would wait for a lease that a healthy
// cluster keeps renewing.
var errNoRevoker = errors.New("the fence cannot revoke a lease (no Revoke): a singleton cannot leave a healthy cluster fenced")

// FenceMargin is what the conservative rule (no Fence) adds to the
// toleration before a singleton's replacement may start.
const FenceMargin = 10 * time.Second

// conservativeWait is how long, without a Fence, a singleton still waits
// after its cluster has been Unreachable since `since`: the toleration
// plus FenceMargin from then. The epoch is the binding's plus one.
func conservativeWait(since, now time.Time, toleration time.Duration) time.Duration {
	return max(since.Add(toleration+FenceMargin).Sub(now), 0)
}

// release fences a singleton off the clusters it leaves, for a move that
// is decided. It returns the epoch the moved workload runs with (at least
// the binding's plus one), or wait > 0: how long to ask again after, with
// nothing to write yet. planned is a move off clusters that keep their
// lease (failback): each is revoked before Release is asked. An epoch
// released before for a cluster (a write that did not land) is reused,
// not released again. dueAt is when the move became due; the conservative
// rule (no Fence) moves it later.
func (c *Controller) release(ctx context.Context, w *workload, leaving []string, planned bool, dueAt, now time.Time) (epoch int64, wait time.Duration, _ time.Time, err error) {
	epoch = w.binding.GetSpec().GetFencingEpoch() + 1
	for _, cl := range leaving {
		if e, ok := c.released(w, cl); ok {
			epoch = max(epoch, e)
			continue
		}
		if c.cfg.Fence == nil {
			if !planned { // a healthy cluster has no lease to wait for without a fence
				wait = max(wait, conservativeWait(w.clusters[cl].since, now, w.behavior.Toleration))
				dueAt = maxTime(dueAt, w.clusters[cl].since.Add(w.behavior.Toleration+FenceMargin))
			}
			continue
		}
		if planned {
			rev, ok := c.cfg.Fence.(Revoker)
			if !ok {
				return 0, 0, dueAt, errNoRevoker
			}
			// Revoking again while a revocation is pending changes nothing.
			if err := rev.Revoke(ctx, w.ID(), cl); err != nil {
				return 0, 0, dueAt, fmt.Errorf("failed to revoke %s on %s: %w", w.ID(), cl, err)
			}
			c.rememberReleased(w.key, cl, 0) // a commitment: settleReleased follows it through
		}
		e, wd, err := c.cfg.Fence.Release(ctx, w.ID(), cl)
		if err != nil {
			return 0, 0, dueAt, fmt.Errorf("failed to release %s on %s: %w", w.ID(), cl, err)
		}
		if wd > 0 {
			wait = max(wait, wd)
			continue
		}
		c.rememberReleased(w.key, cl, e)
		epoch = max(epoch, e)
	}
	return epoch, wait, dueAt, nil
}

// fencePlanned fences a singleton off clusters that keep their lease, for
// a planned move that is decided (a failback, a policy change): each is
// revoked, and Release asked until it commits. It returns the epoch the
// move is written with, or held (the workload re-queued): Release said to
// wait, or the Fence cannot revoke (logged, with what the move is).
func (c *Controller) fencePlanned(ctx context.Context, w *workload, leaving []string, now time.Time, what string) (epoch int64, held bool, err error) {
	epoch, wait, _, err := c.release(ctx, w, leaving, true, now, now)
	switch {
	case errors.Is(err, errNoRevoker):
		c.log.Warn(what+" held", "workload", w.ID(), "why", err)
		c.requeue(w.key, retryBlocked)
		return 0, true, nil
	case err != nil:
		return 0, false, err
	case wait > 0:
		c.requeue(w.key, wait)
		return 0, true, nil
	}
	return epoch, false, nil
}

// released is the epoch Release committed for the workload off cluster
// that no binding write has carried yet (ok false if none, or if the
// binding carries it now).
func (c *Controller) released(w *workload, cluster string) (epoch int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	epoch = c.releasedEpochs[w.key][cluster]
	if epoch > 0 && epoch <= w.binding.GetSpec().GetFencingEpoch() {
		delete(c.releasedEpochs[w.key], cluster)
		return 0, false
	}
	return epoch, epoch > 0
}

// pendingRelease lists the clusters the workload is being fenced off for a
// move not written yet: revoked and not released yet, or released at an
// epoch its binding does not carry.
func (c *Controller) pendingRelease(w *workload) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for cl, e := range c.releasedEpochs[w.key] {
		if e == 0 || e > w.binding.GetSpec().GetFencingEpoch() {
			out = append(out, cl)
		}
	}
	slices.Sort(out)
	return out
}

// rememberReleased records that the workload was revoked off cluster
// (epoch 0) or released off it at epoch.
func (c *Controller) rememberReleased(key, cluster string, epoch int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.releasedEpochs[key] == nil {
		c.releasedEpochs[key] = map[string]int64{}
	}
	c.releasedEpochs[key][cluster] = max(c.releasedEpochs[key][cluster], epoch)
}

// dropReleased forgets what was revoked or released for key up to epoch
// upTo: a binding write carried it.
func (c *Controller) dropReleased(key string, upTo int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for cl, e := range c.releasedEpochs[key] {
		if e <= upTo {
			delete(c.releasedEpochs[key], cl)
		}
	}
	if len(c.releasedEpochs[key]) == 0 {
		delete(c.releasedEpochs, key)
	}
}

// settleReleased follows through a singleton's fencing for a move that did
// not happen (its write conflicted, and the move no longer applies: the
// cluster came back, the failback target went away): the clusters revoked
// are released, and the epoch is written into the binding as it is, so
// that the copy that was fenced runs again with it where the binding keeps
// it, instead of staying stopped for good. done reports that it acted
// (wrote, or waits for the fence).
func (c *Controller) settleReleased(ctx context.Context, w *workload, now time.Time) (done bool, err error) {
	pending := c.pendingRelease(w)
	if len(pending) == 0 {
		return false, nil
	}
	epoch, wait, _, err := c.release(ctx, w, pending, true, now, now)
	if err != nil {
		return false, err
	}
	if wait > 0 {
		c.requeue(w.key, wait)
		return true, nil
	}
	if err := c.write(ctx, w, func(b *meridianv1.ResourceBinding) { b.Spec.FencingEpoch = epoch }); err != nil {
		return false, err
	}
	c.dropReleased(w.key, epoch)
	c.log.Info("a singleton's move did not happen: it keeps its placement with the epoch released for it", "workload", w.ID(), "epoch", epoch)
	return true, nil
}
