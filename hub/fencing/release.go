package fencing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fence is what failover needs of the table (hub/failover and
// hub/federation declare the same interface).
type Fence interface {
	// Release lets a replacement of workload ("namespace/Kind/name"), which
	// cluster holds, start elsewhere. It returns the new fencing epoch —
	// strictly higher than any before for the workload, and persisted —
	// once cluster's lease has expired plus the safety margin; until then
	// it returns the time left to wait (and epoch 0).
	Release(ctx context.Context, workload, cluster string) (epoch int64, wait time.Duration, err error)
}

var _ Fence = (*Table)(nil)

// Release implements Fence. It reads the cluster's lease record from etcd
// (a linearizable read: a grant made by any hub node is seen).
//
// Once the record has expired plus Margin (the cluster cannot be running
// the workload any more, whatever became of it), Release commits, in one
// transaction that fails if the record or the epoch changed meanwhile, the
// workload's new epoch and the cluster's floor for it: every later grant to
// the cluster tells the member that its copy (with the older epoch) must
// stay stopped. Until then it only says how long to wait: asking has no
// effect, so a failover that is abandoned (the cluster came back) leaves
// nothing behind.
//
// For a move off a cluster that keeps its lease (a failback, a planned
// move), call Revoke first: once the member reports the workload fenced,
// Release commits the epoch Revoke allocated without waiting for the lease.
func (t *Table) Release(ctx context.Context, workload, cluster string) (int64, time.Duration, error) {
	if err := checkWorkload(workload); err != nil {
		return 0, 0, fmt.Errorf("failed to release %s: %w", workload, err)
	}
	if cluster == "" || strings.Contains(cluster, "/") {
		return 0, 0, fmt.Errorf("failed to release %s: bad cluster name %q", workload, cluster)
	}
	e := t.entry(cluster)
	e.mu.Lock()
	defer e.mu.Unlock()
	lkey, ekey := t.leaseKey(cluster), t.epochKey(workload)
	rkey, akey, fkey := t.revokingPrefix(cluster)+workload, t.ackPrefix(cluster)+workload, t.floorPrefix(cluster)+workload
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := t.cli.Txn(ctx).Then(clientv3.OpGet(lkey), clientv3.OpGet(ekey), clientv3.OpGet(rkey), clientv3.OpGet(akey)).Commit()
		if err != nil {
			return 0, 0, fmt.Errorf("failed to read the lease of %s: %w", cluster, err)
		}
		now := t.cfg.Now()
		var leaseRev int64
		var leaseWait time.Duration
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			leaseRev = kvs[0].ModRevision
			if leaseRev != e.rev || e.upper.IsZero() {
				d, err := decodeLease(kvs[0].Value)
				if err != nil {
					return 0, 0, fmt.Errorf("failed to read the lease of %s: %w", cluster, err)
				}
				// First sight of this revision: it was written no later
				// than now.
				e.rev, e.validFor, e.upper, e.lower, e.floors = leaseRev, d, now, time.Time{}, nil
			}
			leaseWait = max(0, e.upper.Add(e.validFor+t.cfg.Margin).Sub(now))
		}
		epoch, epochRev, err := readEpoch(resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return 0, 0, fmt.Errorf("failed to read the epoch of %s: %w", workload, err)
		}
		revoking, revokingRev, err := readEpoch(resp.Responses[2].GetResponseRange().Kvs)
		if err != nil {
			return 0, 0, fmt.Errorf("failed to read the pending floor of %s on %s: %w", workload, cluster, err)
		}
		acked, _, err := readEpoch(resp.Responses[3].GetResponseRange().Kvs)
		if err != nil {
			return 0, 0, fmt.Errorf("failed to read the fencing report of %s on %s: %w", workload, cluster, err)
		}
		pending := revokingRev != 0 && revoking == epoch // this release, begun earlier

		if leaseWait == 0 || (pending && acked >= revoking) {
			next := epoch + 1
			if pending {
				next = epoch
			}
			v := strconv.FormatInt(next, 10)
			put, err := t.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(lkey), "=", leaseRev), clientv3.Compare(clientv3.ModRevision(ekey), "=", epochRev),
					clientv3.Compare(clientv3.ModRevision(rkey), "=", revokingRev)).
				Then(clientv3.OpPut(ekey, v), clientv3.OpPut(fkey, v), clientv3.OpDelete(rkey), clientv3.OpDelete(akey)).
				Commit()
			if err != nil {
				return 0, 0, fmt.Errorf("failed to record epoch %d of %s: %w", next, workload, err)
			}
			if !put.Succeeded {
				continue
			}
			e.floors = nil // the next grant reads the floors again
			how := "its lease expired"
			if leaseWait > 0 {
				how = "it reported the workload fenced"
			}
			t.log.Info("released a singleton", "workload", workload, "cluster", cluster, "epoch", next, "because", how)
			t.m.releases.WithLabelValues(resultReleased).Inc()
			return next, 0, nil
		}
		t.m.releases.WithLabelValues(resultWaiting).Inc()
		if pending {
			// Revoked: the member's report may come before the lease ends.
			return 0, min(leaseWait, max(t.cfg.Lease/4, 10*time.Millisecond)), nil
		}
		return 0, leaseWait, nil
	}
	return 0, 0, fmt.Errorf("failed to release %s from %s: the lease or the epoch kept changing", workload, cluster)
}

// Revoke begins a planned release of workload off cluster, whose lease may
// well hold (a failback, a switchover): it allocates the workload's next
// epoch and records it as a pending floor for the cluster, which its next
// grants carry (LeaseGrant.min_epochs, within WriteAhead). The member stops
// its copy below the floor and reports so (LeaseRenewal.fenced → Ack);
// Release then commits that epoch. A Revoke is a commitment: the copy on
// cluster stays stopped until the workload comes back with the new epoch,
// so call it only for a move that is decided, and follow it through.
// Revoking again while a revocation is pending changes nothing.
func (t *Table) Revoke(ctx context.Context, workload, cluster string) error {
	if err := checkWorkload(workload); err != nil {
		return fmt.Errorf("failed to revoke %s: %w", workload, err)
	}
	if cluster == "" || strings.Contains(cluster, "/") {
		return fmt.Errorf("failed to revoke %s: bad cluster name %q", workload, cluster)
	}
	e := t.entry(cluster)
	e.mu.Lock()
	defer e.mu.Unlock()
	ekey, rkey, akey := t.epochKey(workload), t.revokingPrefix(cluster)+workload, t.ackPrefix(cluster)+workload
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := t.cli.Txn(ctx).Then(clientv3.OpGet(ekey), clientv3.OpGet(rkey)).Commit()
		if err != nil {
			return fmt.Errorf("failed to read the epoch of %s: %w", workload, err)
		}
		epoch, epochRev, err := readEpoch(resp.Responses[0].GetResponseRange().Kvs)
		if err != nil {
			return fmt.Errorf("failed to read the epoch of %s: %w", workload, err)
		}
		revoking, revokingRev, err := readEpoch(resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return fmt.Errorf("failed to read the pending floor of %s on %s: %w", workload, cluster, err)
		}
		if revokingRev != 0 && revoking == epoch {
			return nil // pending already
		}
		next := epoch + 1
		v := strconv.FormatInt(next, 10)
		put, err := t.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(ekey), "=", epochRev), clientv3.Compare(clientv3.ModRevision(rkey), "=", revokingRev)).
			Then(clientv3.OpPut(ekey, v), clientv3.OpPut(rkey, v), clientv3.OpDelete(akey)).
			Commit()
		if err != nil {
			return fmt.Errorf("failed to revoke %s on %s: %w", workload, cluster, err)
		}
		if !put.Succeeded {
			continue
		}
		e.floors = nil // the next grant on this node carries the pending floor
		t.log.Info("revoking a singleton", "workload", workload, "cluster", cluster, "epoch", next)
		t.m.releases.WithLabelValues(resultRevoking).Inc()
		return nil
	}
	return fmt.Errorf("failed to revoke %s on %s: the epoch kept changing", workload, cluster)
}

// Ack records what a member reported fenced with a renewal: for each
// workload, the epoch floor it enforces. It completes pending releases
// (Release); reports of floors that are not pending are ignored. It writes
// etcd only for a report it has not recorded yet.
func (t *Table) Ack(ctx context.Context, cluster string, fenced map[string]int64) error {
	if len(fenced) == 0 {
		return nil
	}
	e := t.entry(cluster)
	e.mu.Lock()
	defer e.mu.Unlock()
	for w, ep := range fenced {
		want := e.revoking[w]
		if want == 0 || ep < want || e.acked[w] >= want {
			continue
		}
		v := strconv.FormatInt(want, 10)
		resp, err := t.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(t.revokingPrefix(cluster)+w), "=", v)).
			Then(clientv3.OpPut(t.ackPrefix(cluster)+w, v)).
			Commit()
		if err != nil {
			return fmt.Errorf("failed to record that %s fenced %s: %w", cluster, w, err)
		}
		if e.acked == nil {
			e.acked = map[string]int64{}
		}
		e.acked[w] = want
		if resp.Succeeded {
			t.m.acks.Inc()
			t.log.Info("a member fenced a singleton", "cluster", cluster, "workload", w, "epoch", want)
		}
	}
	return nil
}

// readEpoch reads a decimal epoch and its mod revision (0, 0 if absent).
func readEpoch(kvs []*mvccKV) (int64, int64, error) {
	if len(kvs) == 0 {
		return 0, 0, nil
	}
	ep, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return ep, kvs[0].ModRevision, nil
}

// Epoch returns the last epoch handed out for workload (0 if none).
func (t *Table) Epoch(ctx context.Context, workload string) (int64, error) {
	resp, err := t.cli.Get(ctx, t.epochKey(workload))
	if err != nil {
		return 0, fmt.Errorf("failed to read the epoch of %s: %w", workload, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	ep, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("failed to read the epoch of %s: %w", workload, err)
	}
	return ep, nil
}

// Expiry returns how long, from now, the hub counts cluster's lease as
// held (its horizon plus Margin); 0 if it has expired or there is none.
func (t *Table) Expiry(ctx context.Context, cluster string) (time.Duration, error) {
	e := t.entry(cluster)
	e.mu.Lock()
	defer e.mu.Unlock()
	resp, err := t.cli.Get(ctx, t.leaseKey(cluster))
	if err != nil {
		return 0, fmt.Errorf("failed to read the lease of %s: %w", cluster, err)
	}
	now := t.cfg.Now()
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	if resp.Kvs[0].ModRevision != e.rev || e.upper.IsZero() {
		d, err := decodeLease(resp.Kvs[0].Value)
		if err != nil {
			return 0, fmt.Errorf("failed to read the lease of %s: %w", cluster, err)
		}
		e.rev, e.validFor, e.upper, e.lower, e.floors = resp.Kvs[0].ModRevision, d, now, time.Time{}, nil
	}
	return max(0, e.upper.Add(e.validFor+t.cfg.Margin).Sub(now)), nil
}

// checkWorkload accepts "namespace/Kind/name".
func checkWorkload(w string) error {
	parts := strings.Split(w, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return fmt.Errorf("workload %q: want namespace/Kind/name", w)
	}
	return nil
}

// WorkloadName names a workload as Release and LeaseGrant.min_epochs do:
// "namespace/Kind/name".
func WorkloadName(namespace, kind, name string) string {
	return namespace + "/" + kind + "/" + name
}
