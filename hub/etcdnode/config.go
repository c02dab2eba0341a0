package etcdnode

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config. Each one says why it is what it is.
const (
	// DefaultName is the member name of a single hub node. Every member of a
	// multi-node hub needs its own name (usually its datacenter).
	DefaultName = "hub"

	// DefaultTickMs is etcd's own heartbeat default. It suits a LAN or a
	// metro link; raise it (and ElectionMs with it) for hub nodes spread over
	// regions with round trips above ~50 ms.
	DefaultTickMs = 100

	// DefaultElectionMs is ten heartbeats, etcd's recommended ratio: long
	// enough not to elect on a single lost heartbeat, short enough to fail
	// over within a couple of seconds.
	DefaultElectionMs = 1000

	// DefaultStartTimeout bounds the wait for the node to join a quorum. A
	// member of a multi-node hub waits here for its peers, which may be
	// started by hand one after another, so it is generous.
	DefaultStartTimeout = 60 * time.Second

	// DefaultCloseTimeout bounds Close. etcd's own shutdown is bounded per
	// step (client servers by the request timeout, peers by one second);
	// this is the backstop after which the raft loop is stopped hard.
	DefaultCloseTimeout = 15 * time.Second

	// DefaultCompactionMode is "revision": the hub keeps the last N
	// revisions rather than the last N hours. Members resume their Sync
	// stream and controllers resume their watches from a revision, so what
	// matters is how many changes back a resume can reach, and revision
	// retention states exactly that, independent of clocks and of how busy
	// the federation is.
	DefaultCompactionMode = CompactionRevision

	// DefaultCompactionRetention keeps the last 100,000 revisions. At the
	// write rates of a federation (tens of writes per second: status and
	// capacity reports, events) that is roughly half an hour to a few hours
	// of history, enough for a member or watcher that was cut off for a
	// while to resume incrementally instead of relisting; with objects of
	// ~1 KiB it is ~100 MiB of history, far below etcd's 2 GiB quota. etcd
	// runs the revision compactor every five minutes.
	DefaultCompactionRetention = "100000"

	// DefaultProgressNotifyInterval is how often a quiet watch receives a
	// progress notification (a Bookmark event in hub/store). etcd's default
	// is ten minutes; one minute keeps the resume revision of a watcher on a
	// quiet kind close to the head, so it is not compacted away under the
	// revision retention above.
	DefaultProgressNotifyInterval = time.Minute

	// DefaultClusterToken separates Meridian hub clusters from other etcd
	// clusters that might share a network during bootstrap.
	DefaultClusterToken = "meridian-hub"
)

// Auto-compaction modes, as etcd names them.
const (
	// CompactionRevision keeps the last AutoCompactionRetention revisions.
	CompactionRevision = "revision"
	// CompactionPeriodic keeps the history of the last AutoCompactionRetention
	// (a duration such as "1h").
	CompactionPeriodic = "periodic"
)

// Cluster states, as etcd names them.
const (
	// ClusterStateNew bootstraps a new cluster from InitialCluster.
	ClusterStateNew = "new"
	// ClusterStateExisting joins a cluster that already runs (the member must
	// have been added with etcd's member add first).
	ClusterStateExisting = "existing"
)

// Config configures one embedded etcd node of the hub. Zero values take the
// defaults above; Validate fills them in and checks the result.
type Config struct {
	// Name is the member name in the etcd cluster (default "hub").
	Name string
	// DataDir holds the node's WAL and database. It is created if missing;
	// restarting on the same directory keeps every key.
	DataDir string
	// ClientURL is where clients connect, both listened on and advertised,
	// e.g. http://127.0.0.1:7702.
	ClientURL string
	// PeerURL is where the other members connect, both listened on and
	// advertised, e.g. http://127.0.0.1:7703.
	PeerURL string
	// InitialCluster lists every member of a new cluster as
	// "a=http://127.0.0.1:7703,b=http://127.0.0.1:7713". Empty means a
	// cluster of just this node. Ignored by etcd once DataDir holds data.
	InitialCluster string
	// ClusterState is "new" (default) or "existing".
	ClusterState string
	// ClusterToken distinguishes this cluster during bootstrap (default
	// "meridian-hub"). Every member of one cluster uses the same token.
	ClusterToken string
	// TickMs is the heartbeat interval (default 100). Tests use 10.
	TickMs uint
	// ElectionMs is the election timeout, at least 5×TickMs (default 1000).
	// Tests use 50.
	ElectionMs uint
	// AutoCompactionMode is "revision" (default) or "periodic".
	AutoCompactionMode string
	// AutoCompactionRetention is a revision count in revision mode (default
	// "100000") or a duration ("1h", or a number of hours) in periodic mode.
	// "0" disables auto-compaction.
	AutoCompactionRetention string
	// ProgressNotifyInterval is the period of watch progress notifications
	// (default one minute).
	ProgressNotifyInterval time.Duration
	// StartTimeout bounds the wait until the node serves (default 60s).
	StartTimeout time.Duration
	// CloseTimeout bounds Close (default 15s).
	CloseTimeout time.Duration
	// UnsafeNoFsync disables fsync. Tests only: a crash can lose data.
	UnsafeNoFsync bool
	// ForceNewCluster restarts a node on its existing data as the only
	// member of its cluster, keeping the data and the cluster ID (etcd's
	// --force-new-cluster). It is the disaster-recovery step after the loss
	// of a quorum (see hub.Recover); unsafe anywhere else, because the other
	// members' later writes are dropped.
	ForceNewCluster bool
	// Logger receives the node's lifecycle logs and etcd's own errors
	// (bridged from zap); nil means slog.Default().
	Logger *slog.Logger
}

// Validate fills in defaults for zero fields and checks the configuration.
// The error names the field to fix.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	if strings.ContainsAny(c.Name, "=,") || strings.TrimSpace(c.Name) != c.Name {
		errs = append(errs, fmt.Errorf("Name %q must not contain '=', ',' or surrounding spaces", c.Name))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if err := checkURL(c.ClientURL); err != nil {
		errs = append(errs, fmt.Errorf("ClientURL: %w", err))
	}
	if err := checkURL(c.PeerURL); err != nil {
		errs = append(errs, fmt.Errorf("PeerURL: %w", err))
	}
	// InitialCluster is empty only when PeerURL is, which is reported above.
	if c.InitialCluster != "" {
		if err := c.checkInitialCluster(); err != nil {
			errs = append(errs, fmt.Errorf("InitialCluster: %w", err))
		}
	}
	if c.ClusterState != ClusterStateNew && c.ClusterState != ClusterStateExisting {
		errs = append(errs, fmt.Errorf("ClusterState %q must be %q or %q", c.ClusterState, ClusterStateNew, ClusterStateExisting))
	}
	if 5*c.TickMs > c.ElectionMs {
		errs = append(errs, fmt.Errorf("ElectionMs (%d) must be at least 5×TickMs (%d)", c.ElectionMs, c.TickMs))
	}
	if err := c.checkCompaction(); err != nil {
		errs = append(errs, err)
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("StartTimeout %s must not be negative", c.StartTimeout))
	}
	if c.CloseTimeout < 0 {
		errs = append(errs, fmt.Errorf("CloseTimeout %s must not be negative", c.CloseTimeout))
	}
	if c.ProgressNotifyInterval < 0 {
		errs = append(errs, fmt.Errorf("ProgressNotifyInterval %s must not be negative", c.ProgressNotifyInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid etcd node config: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ClusterState == "" {
		c.ClusterState = ClusterStateNew
	}
	if c.ClusterToken == "" {
		c.ClusterToken = DefaultClusterToken
	}
	if c.TickMs == 0 {
		c.TickMs = DefaultTickMs
	}
	if c.ElectionMs == 0 {
		c.ElectionMs = DefaultElectionMs
	}
	if c.AutoCompactionMode == "" {
		c.AutoCompactionMode = DefaultCompactionMode
	}
	if c.AutoCompactionRetention == "" {
		if c.AutoCompactionMode == CompactionPeriodic {
			c.AutoCompactionRetention = "1h"
		} else {
			c.AutoCompactionRetention = DefaultCompactionRetention
		}
	}
	if c.ProgressNotifyInterval == 0 {
		c.ProgressNotifyInterval = DefaultProgressNotifyInterval
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.InitialCluster == "" && c.PeerURL != "" {
		c.InitialCluster = c.Name + "=" + c.PeerURL
	}
}

func (c *Config) checkCompaction() error {
	switch c.AutoCompactionMode {
	case CompactionRevision:
		if n, err := strconv.ParseInt(c.AutoCompactionRetention, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("AutoCompactionRetention %q must be a non-negative revision count in %q mode", c.AutoCompactionRetention, CompactionRevision)
		}
	case CompactionPeriodic:
		if n, err := strconv.ParseInt(c.AutoCompactionRetention, 10, 64); err == nil {
			if n < 0 {
				return fmt.Errorf("AutoCompactionRetention %q must not be negative", c.AutoCompactionRetention)
			}
			return nil
		}
		if d, err := time.ParseDuration(c.AutoCompactionRetention); err != nil || d < 0 {
			return fmt.Errorf("AutoCompactionRetention %q must be a duration (\"1h\") or a number of hours in %q mode", c.AutoCompactionRetention, CompactionPeriodic)
		}
	default:
		return fmt.Errorf("AutoCompactionMode %q must be %q or %q", c.AutoCompactionMode, CompactionRevision, CompactionPeriodic)
	}
	return nil
}

// checkInitialCluster checks the "name=url,..." list and that this node is in
// it under its own name and peer URL.
func (c *Config) checkInitialCluster() error {
	self := false
	for _, entry := range strings.Split(c.InitialCluster, ",") {
		name, raw, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || name == "" {
			return fmt.Errorf("entry %q must be name=url", entry)
		}
		if err := checkURL(raw); err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
		if name == c.Name && raw == c.PeerURL {
			self = true
		}
	}
	if !self {
		return fmt.Errorf("%q does not list this node as %s=%s", c.InitialCluster, c.Name, c.PeerURL)
	}
	return nil
}

// checkURL accepts an absolute http or https URL with a host and port.
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q does not parse: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must use http or https", raw)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return fmt.Errorf("%q must name a host and a port", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q must not have a path", raw)
	}
	return nil
}
