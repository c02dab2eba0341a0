package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meridian-fed/meridian/hub/etcdnode"
)

// Disaster recovery of a hub that lost the majority of its nodes.
//
// A 3-node hub (one node per datacenter) keeps serving while two nodes are
// up. When two are gone for good — the majority region is lost — the
// survivor has no etcd quorum: it serves no read or write (the API says so,
// see quorumGuard), while the members keep running what they run. Recover is
// the operator-approved way out: it restarts the survivor's etcd once on its
// own data with etcd's force-new-cluster, which rewrites the membership to
// this node alone and keeps every key (objects, the CA, tokens, the
// members' Cluster objects) and the cluster ID (the hub ID members know).
// The operator then starts `meridian hub` on that data as a single node, and
// adds new nodes with AddNode. docs/disaster-recovery.md has the procedure.

// recoveredPrefix holds one record per recovery, for the audit trail.
const recoveredPrefix = "/meridian/hub/recovered/"

// EtcdMember is one member of a hub's embedded etcd cluster, as its data
// records it.
type EtcdMember struct {
	ID       uint64   `json:"id"`
	Name     string   `json:"name,omitempty"`
	PeerURLs []string `json:"peerURLs"`
	Learner  bool     `json:"isLearner,omitempty"`
}

func (m EtcdMember) String() string {
	name := m.Name
	if name == "" {
		name = fmt.Sprintf("(unstarted %x)", m.ID)
	}
	return name + " " + strings.Join(m.PeerURLs, ",")
}

// RecoverPlan is what Recover is about to do, shown to the operator before
// anything changes.
type RecoverPlan struct {
	// DataDir is the surviving node's data.
	DataDir string
	// Node is the survivor, which becomes the only member.
	Node EtcdMember
	// Removed are the other members, dropped from the cluster.
	Removed []EtcdMember
}

// RecoverOptions configures Recover.
type RecoverOptions struct {
	// Config is the surviving node's hub configuration, as it runs with
	// `meridian hub`: DataDir, EtcdName, EtcdClientURL and EtcdPeerURL are
	// used (and the etcd timings).
	Config Config
	// Confirm is shown the plan once the data has been checked and before
	// anything changes; a non-nil error stops Recover with that error.
	// Required: recovery drops the other nodes and must be approved.
	Confirm func(RecoverPlan) error
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
}

// RecoverResult is what Recover did.
type RecoverResult struct {
	Plan RecoverPlan
	// HubID is the etcd cluster ID after recovery (force-new-cluster keeps
	// it, so members resume incrementally rather than resnapshot).
	HubID string
	// Revision is the etcd revision after the recovery record was written.
	Revision int64
	// Took is how long the etcd restart took.
	Took time.Duration
}

// walDir and dbFile are where an embedded etcd keeps its data under DataDir.
func walDir(dataDir string) string { return filepath.Join(dataDir, "member", "wal") }
func dbFile(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }

// ReadMembers reads the etcd membership recorded in a stopped hub node's
// data-dir. It fails if the directory holds no etcd data, or if a running
// process holds it (stop the hub on it first).
func ReadMembers(dataDir string) ([]EtcdMember, error) {
	if _, err := os.Stat(walDir(dataDir)); err != nil {
		return nil, fmt.Errorf("data-dir %s holds no hub etcd data (%s): %w", dataDir, walDir(dataDir), err)
	}
	db, err := bolt.Open(dbFile(dataDir), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("data-dir %s is in use (%s is locked): stop the hub node running on it first", dataDir, dbFile(dataDir))
		}
		return nil, fmt.Errorf("failed to open %s: %w", dbFile(dataDir), err)
	}
	defer db.Close()
	var members []EtcdMember
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("members"))
		if b == nil {
			return fmt.Errorf("%s has no etcd membership (no members bucket)", dbFile(dataDir))
		}
		return b.ForEach(func(_, v []byte) error {
			var m EtcdMember
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("failed to decode an etcd member record: %w", err)
			}
			members = append(members, m)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(members, func(a, b EtcdMember) int { return strings.Compare(a.Name, b.Name) })
	return members, nil
}

// PlanRecover checks a stopped node's data against its configuration and
// returns what Recover would do, changing nothing.
func PlanRecover(cfg Config) (RecoverPlan, error) {
	if err := cfg.Validate(); err != nil {
		return RecoverPlan{}, fmt.Errorf("invalid hub configuration:\n%w", err)
	}
	if cfg.External() {
		return RecoverPlan{}, errors.New("etcd-endpoints: hub recover rewrites an embedded etcd's data; an external etcd cluster is recovered with etcd's own tools (etcdutl snapshot restore)")
	}
	members, err := ReadMembers(cfg.DataDir)
	if err != nil {
		return RecoverPlan{}, err
	}
	plan := RecoverPlan{DataDir: cfg.DataDir}
	var names []string
	found := false
	for _, m := range members {
		names = append(names, m.String())
		if m.Name == cfg.EtcdName {
			plan.Node, found = m, true
		} else {
			plan.Removed = append(plan.Removed, m)
		}
	}
	if !found {
		return RecoverPlan{}, fmt.Errorf("etcd-name %q: no member of that name in %s (its members: %s)",
			cfg.EtcdName, cfg.DataDir, strings.Join(names, "; "))
	}
	if !slices.Contains(plan.Node.PeerURLs, cfg.EtcdPeerURL) {
		return RecoverPlan{}, fmt.Errorf("etcd-peer-url %s: node %s is recorded with peer URL %s; pass that URL (the one it ran with)",
			cfg.EtcdPeerURL, cfg.EtcdName, strings.Join(plan.Node.PeerURLs, ","))
	}
	return plan, nil
}

// Recover turns the stopped node in opts.Config.DataDir into a writable
// single-node hub, keeping its data: it checks the data, asks opts.Confirm,
// restarts the node's etcd once with force-new-cluster, checks that it is
// the only member and accepts a write (a recovery record under
// /meridian/hub/recovered/), and stops it again. Start `meridian hub` on the
// data afterwards.
//
// Writes that the removed nodes acknowledged and this node had not received
// are lost. The removed nodes must never start again on their old data: they
// would still believe in the old membership. Wipe them and add them back as
// new nodes (AddNode).
func Recover(ctx context.Context, opts RecoverOptions) (_ *RecoverResult, err error) {
	if opts.Confirm == nil {
		return nil, errors.New("hub recover needs a confirmation (Confirm is nil)")
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	cfg := opts.Config
	plan, err := PlanRecover(cfg)
	if err != nil {
		return nil, err
	}
	if err := opts.Confirm(plan); err != nil {
		return nil, err
	}

	began := time.Now()
	node, err := etcdnode.Start(ctx, etcdnode.Config{
		Name:            cfg.EtcdName,
		DataDir:         cfg.DataDir,
		ClientURL:       cfg.EtcdClientURL,
		PeerURL:         cfg.EtcdPeerURL,
		InitialCluster:  cfg.EtcdName + "=" + cfg.EtcdPeerURL,
		TickMs:          cfg.EtcdTickMs,
		ElectionMs:      cfg.EtcdElectionMs,
		ForceNewCluster: true,
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to restart etcd on %s as a new single-node cluster: %w", cfg.DataDir, err)
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("failed to stop the recovered etcd: %w", cerr))
		}
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: node.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the recovered etcd %v: %w", node.Endpoints(), err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to list the recovered etcd's members: %w", err)
	}
	if len(list.Members) != 1 || list.Members[0].ID != plan.Node.ID {
		var got []string
		for _, m := range list.Members {
			got = append(got, fmt.Sprintf("%s %x", m.Name, m.ID))
		}
		return nil, fmt.Errorf("failed to rewrite the membership: etcd still lists %s", strings.Join(got, "; "))
	}
	// The leader election still holds the sessions of the nodes that were
	// running; none of them can renew its lease any more. Revoking them now
	// lets the recovered hub lead as soon as it starts instead of after the
	// leases' TTL.
	held, err := cli.Get(ctx, leaderKey+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("failed to read the leader election (the recovered node does not serve reads): %w", err)
	}
	for _, kv := range held.Kvs {
		if kv.Lease == 0 {
			continue
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil, fmt.Errorf("failed to revoke the stale leader session %x: %w", kv.Lease, err)
		}
	}
	record, err := json.Marshal(struct {
		Node    string       `json:"node"`
		Removed []EtcdMember `json:"removed"`
		At      time.Time    `json:"at"`
	}{plan.Node.Name, plan.Removed, time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	put, err := cli.Put(ctx, fmt.Sprintf("%s%020d", recoveredPrefix, time.Now().UnixNano()), string(record))
	if err != nil {
		return nil, fmt.Errorf("failed to write the recovery record (the recovered node does not accept writes): %w", err)
	}
	res := &RecoverResult{
		Plan:     plan,
		HubID:    fmt.Sprintf("%016x", put.Header.GetClusterId()),
		Revision: put.Header.GetRevision(),
		Took:     time.Since(began),
	}
	log.Info("hub recovered as a single node", "node", plan.Node.Name, "removed", len(plan.Removed), "hub_id", res.HubID,
		"revision", res.Revision, "took", res.Took.Round(time.Millisecond))
	return res, nil
}

// AddNode adds a new, empty node to a running hub's etcd cluster through
// any of its current nodes (endpoints: their etcd client URLs), and returns
// the --etcd-initial-cluster the new node must start with, together with
// --etcd-initial-cluster-state existing. Start the new node right away:
// until it has joined, the grown cluster counts it in its quorum (a single
// survivor plus one added node needs both to write).
func AddNode(ctx context.Context, endpoints []string, name, peerURL string) (initialCluster string, err error) {
	if name == "" || strings.ContainsAny(name, "=,") {
		return "", fmt.Errorf("node name %q must be non-empty, without '=' or ','", name)
	}
	if err := checkURL(peerURL); err != nil {
		return "", fmt.Errorf("peer-url: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return "", fmt.Errorf("failed to connect to etcd-endpoints %v: %w", endpoints, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("failed to list the hub's etcd members through %v: %w", endpoints, err)
	}
	for _, m := range list.Members {
		if m.Name == name {
			return "", fmt.Errorf("node name %q: the hub already has a member of that name (remove it first, or pick another name)", name)
		}
		if slices.Contains(m.PeerURLs, peerURL) {
			return "", fmt.Errorf("peer-url %s: member %q already uses it", peerURL, m.Name)
		}
	}
	resp, err := cli.MemberAdd(ctx, []string{peerURL})
	if err != nil {
		return "", fmt.Errorf("failed to add %s (%s) to the hub's etcd cluster: %w", name, peerURL, err)
	}
	var parts []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name
		}
		if n == "" || len(m.PeerURLs) == 0 {
			return "", fmt.Errorf("member %x has no name or peer URL yet: start the node added before this one first", m.ID)
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ","), nil
}
