// Package fencing keeps the hub's side of singleton fencing: one lease per
// member cluster, renewed over the member's Sync stream, and one fencing
// epoch per singleton workload. A replacement of a singleton may start on
// another cluster only once the lease of the cluster that ran it has expired
// plus a safety margin (Release), with an epoch higher than any before.
//
// Leases are per cluster, not per workload: one renewal covers every
// singleton a member runs, so the cost is one small message per member per
// renew interval whatever the number of singletons, and a member that
// cannot reach the hub loses all its singleton leases at once — which is
// what a partition does anyway. Per-workload decisions are carried by the
// epoch floors: Release records, for (cluster, workload), the new epoch, and
// every later grant to that cluster lists it (LeaseGrant.min_epochs), so the
// old copy never comes back under a renewed lease.
//
// Everything is in etcd under Config.Prefix (default /meridian/fencing/):
//
//	leases/<cluster>             {"valid_for_ms": D, "node": …}: a grant horizon
//	epochs/<namespace/Kind/name> the last epoch handed out for a workload
//	floors/<cluster>/<workload>  the epoch a copy on cluster must carry to run
//	revoking/<cluster>/<workload> a pending floor: Release of a workload off a
//	                             cluster whose lease still holds (grants carry it)
//	acks/<cluster>/<workload>    the member reported it enforces that floor (Ack)
//
// No wall clock crosses the wire or etcd. A lease record says "valid for D
// from when this revision was written". The node that writes it counts D
// from just before its Put (a lower bound of the write's time: safe for
// granting); a node that reads it counts D from when it first saw that
// revision (an upper bound: safe for releasing). A renewal is written only
// when the horizon would not cover the grant, and then D is the lease plus
// WriteAhead, so a member renewing every lease/4 costs one etcd write per
// WriteAhead, not one per renewal. docs/failover.md ("Fencing") has the
// timing argument.
package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// mvccKV is an etcd key-value pair.
type mvccKV = mvccpb.KeyValue

// Defaults of Config.
const (
	DefaultPrefix = "/meridian/fencing/"
	DefaultLease  = 10 * time.Second
	DefaultMargin = 2 * time.Second
)

// Config configures a Table.
type Config struct {
	// Client is the hub's etcd client (required).
	Client *clientv3.Client
	// Prefix is where the table keeps its keys (default DefaultPrefix).
	Prefix string
	// Lease is how long a grant holds, counted by the member from when it
	// sent the renewal (default 10s).
	Lease time.Duration
	// Margin is the hub's safety margin: a lease counts as held until its
	// recorded horizon plus Margin (default 2s).
	Margin time.Duration
	// WriteAhead is how far beyond a grant a new lease record reaches
	// (default Lease/2): the larger, the fewer etcd writes, and the longer
	// Release may wait after a member's last renewal (up to Lease +
	// WriteAhead + Margin).
	WriteAhead time.Duration
	// Node names this hub node in the records it writes (informational).
	Node string
	// Registry, if set, gets the table's metrics.
	Registry prometheus.Registerer
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
	// Now is the clock (default time.Now). Its readings must carry Go's
	// monotonic clock: only differences of readings are used.
	Now func() time.Time
}

// Grant is what the hub tells a member that renewed its lease.
type Grant struct {
	// Duration is the lease, counted by the member from when it sent the
	// renewal.
	Duration time.Duration
	// RenewInterval is how often the member should renew (Lease/4).
	RenewInterval time.Duration
	// MinEpochs are the workloads fenced off the cluster and the epoch a
	// copy there must carry to run.
	MinEpochs map[string]int64
}

// Table is the hub's lease and epoch table. It is safe for concurrent use.
// Every hub node has one; any node may grant, and Release (the failover
// controller, on the leader) sees every node's grants through etcd.
type Table struct {
	cfg Config
	cli *clientv3.Client
	log *slog.Logger
	m   *metrics

	mu       sync.Mutex
	clusters map[string]*clusterLease // guarded by mu
}

// clusterLease is what this node knows of one cluster's lease record.
type clusterLease struct {
	mu sync.Mutex // serialises grants and releases of the cluster
	// rev is the record's etcd mod revision (0: no record seen).
	rev int64
	// validFor is the record's D.
	validFor time.Duration
	// lower is set for a record this node wrote: a time no later than its
	// write (just before the Put). Grants may rely on lower+validFor.
	lower time.Time
	// upper is a time no earlier than the record's write (when this node
	// first saw it, or when its own Put returned). Releases wait for
	// upper+validFor+Margin.
	upper time.Time
	// floors is the cluster's epoch floors as of rev, committed and
	// pending (revoking) ones together (nil: not read).
	floors map[string]int64
	// revoking is the pending floors as of rev: workloads being released
	// while the lease holds, waiting for the member to report them fenced.
	revoking map[string]int64
	// acked is what this node has recorded of the member's reports.
	acked map[string]int64
}

// leaseRecord is the JSON of leases/<cluster>.
type leaseRecord struct {
	ValidForMS int64  `json:"valid_for_ms"`
	Node       string `json:"node,omitempty"`
	// WrittenUnixMS is the writer's wall clock, for people only.
	WrittenUnixMS int64 `json:"written_unix_ms,omitempty"`
}

// New checks cfg and returns a Table. It reads nothing yet.
func New(cfg Config) (*Table, error) {
	if cfg.Client == nil {
		return nil, errors.New("fencing: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Margin < 0 {
		return nil, fmt.Errorf("fencing: Margin must not be negative, got %s", cfg.Margin)
	}
	if cfg.Margin == 0 {
		cfg.Margin = DefaultMargin
	}
	if cfg.WriteAhead <= 0 {
		cfg.WriteAhead = cfg.Lease / 2
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
	return &Table{cfg: cfg, cli: cfg.Client, log: cfg.Log, m: m, clusters: map[string]*clusterLease{}}, nil
}

// Lease is the lease duration the table grants.
func (t *Table) Lease() time.Duration { return t.cfg.Lease }

// Margin is the hub's safety margin.
func (t *Table) Margin() time.Duration { return t.cfg.Margin }

func (t *Table) entry(cluster string) *clusterLease {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.clusters[cluster]
	if e == nil {
		e = &clusterLease{}
		t.clusters[cluster] = e
	}
	return e
}

func (t *Table) leaseKey(cluster string) string { return t.cfg.Prefix + "leases/" + cluster }
func (t *Table) epochKey(workload string) string {
	return t.cfg.Prefix + "epochs/" + workload
}
func (t *Table) floorPrefix(cluster string) string { return t.cfg.Prefix + "floors/" + cluster + "/" }
func (t *Table) revokingPrefix(cluster string) string {
	return t.cfg.Prefix + "revoking/" + cluster + "/"
}
func (t *Table) ackPrefix(cluster string) string { return t.cfg.Prefix + "acks/" + cluster + "/" }

// Grant extends cluster's lease for a renewal received at received: it
// makes sure a lease record covers received+Lease (writing one if the
// current horizon falls short), and returns the grant to send. An error
// means no grant: the member must not be told its lease holds.
func (t *Table) Grant(ctx context.Context, cluster string, received time.Time) (Grant, error) {
	if cluster == "" || strings.Contains(cluster, "/") {
		return Grant{}, fmt.Errorf("failed to grant a lease: bad cluster name %q", cluster)
	}
	e := t.entry(cluster)
	e.mu.Lock()
	defer e.mu.Unlock()
	need := received.Add(t.cfg.Lease)
	if e.rev == 0 || e.lower.IsZero() || e.lower.Add(e.validFor).Before(need) || e.floors == nil {
		if err := t.extend(ctx, cluster, e); err != nil {
			return Grant{}, err
		}
	}
	floors := make(map[string]int64, len(e.floors))
	for w, ep := range e.floors {
		floors[w] = ep
	}
	return Grant{Duration: t.cfg.Lease, RenewInterval: t.cfg.Lease / 4, MinEpochs: floors}, nil
}

// extend writes a new lease record for cluster, replacing the one at e.rev,
// and reads the cluster's floors in the same transaction. e.mu is held.
func (t *Table) extend(ctx context.Context, cluster string, e *clusterLease) error {
	key := t.leaseKey(cluster)
	for attempt := 0; attempt < 5; attempt++ {
		before := t.cfg.Now()
		d := t.cfg.Lease + t.cfg.WriteAhead
		if e.rev != 0 && !e.upper.IsZero() {
			// The record replaced may reach further (another node's, or
			// one written with a longer lease): never shorten a horizon.
			if rest := e.validFor - before.Sub(e.upper); rest > d {
				d = rest
			}
		}
		d = d.Round(time.Millisecond) + time.Millisecond
		val, err := json.Marshal(leaseRecord{ValidForMS: d.Milliseconds(), Node: t.cfg.Node, WrittenUnixMS: time.Now().UnixMilli()})
		if err != nil {
			return fmt.Errorf("failed to encode the lease of %s: %w", cluster, err)
		}
		resp, err := t.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", e.rev)).
			Then(clientv3.OpPut(key, string(val)), clientv3.OpGet(t.floorPrefix(cluster), clientv3.WithPrefix()),
				clientv3.OpGet(t.revokingPrefix(cluster), clientv3.WithPrefix())).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("failed to write the lease of %s: %w", cluster, err)
		}
		after := t.cfg.Now()
		if resp.Succeeded {
			floors, err := parseEpochs(t.floorPrefix(cluster), resp.Responses[1].GetResponseRange().Kvs)
			if err != nil {
				return err
			}
			revoking, err := parseEpochs(t.revokingPrefix(cluster), resp.Responses[2].GetResponseRange().Kvs)
			if err != nil {
				return err
			}
			for w, ep := range revoking {
				floors[w] = max(floors[w], ep)
			}
			e.rev, e.validFor, e.lower, e.upper, e.floors, e.revoking = resp.Header.Revision, d, before, after, floors, revoking
			t.m.leaseWrites.Inc()
			return nil
		}
		// Another node wrote the record since we last saw it: learn it
		// (as an observer: no lower bound) and try again on top of it.
		e.lower, e.floors, e.revoking = time.Time{}, nil, nil
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			e.rev, e.validFor, e.upper = 0, 0, time.Time{}
			continue
		}
		rec, err := decodeLease(kvs[0].Value)
		if err != nil {
			return fmt.Errorf("failed to read the lease of %s: %w", cluster, err)
		}
		e.rev, e.validFor, e.upper = kvs[0].ModRevision, rec, after
	}
	return fmt.Errorf("failed to write the lease of %s: it kept changing under us", cluster)
}

func decodeLease(v []byte) (time.Duration, error) {
	var rec leaseRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return 0, err
	}
	if rec.ValidForMS < 0 {
		return 0, fmt.Errorf("negative valid_for_ms %d", rec.ValidForMS)
	}
	return time.Duration(rec.ValidForMS) * time.Millisecond, nil
}

// parseEpochs reads keys <prefix><workload> holding decimal epochs.
func parseEpochs(prefix string, kvs []*mvccKV) (map[string]int64, error) {
	out := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		ep, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("failed to read the epoch %s: %w", kv.Key, err)
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = ep
	}
	return out, nil
}
