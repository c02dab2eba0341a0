// Package hub assembles a hub node: its etcd (embedded or external), the
// typed store over it, and the API server. Only the leader will run the
// placement, failover and drill controllers once they exist.
package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/meridian-fed/meridian/proto/meridian/gossip"
)

// Config is everything a hub node needs. It is filled from a config file,
// MERIDIAN_* environment variables and flags (in that order of precedence,
// lowest first), with the same key names everywhere, and validated once.
type Config struct {
	// DataDir holds the embedded etcd data, and the CA certificate and
	// first admin token the hub writes for its operator. Default
	// ./meridian-data/hub.
	DataDir string `mapstructure:"data-dir"`
	// Listen is the gRPC API address (TLS; admin calls need a credential,
	// members mutual TLS). Default 127.0.0.1:7700.
	Listen string `mapstructure:"listen"`
	// TLSSANs are extra DNS names and IPs for the hub's serving
	// certificate, besides localhost, 127.0.0.1 and the listen host.
	TLSSANs []string `mapstructure:"tls-san"`
	// HTTPListen serves /healthz, /readyz and /metrics. Default 127.0.0.1:7701.
	HTTPListen string `mapstructure:"http-listen"`

	// EtcdEndpoints, when set, uses an external etcd cluster and starts no
	// embedded one.
	EtcdEndpoints []string `mapstructure:"etcd-endpoints"`
	// EtcdName is this node's name in an embedded etcd cluster. Default "hub".
	EtcdName string `mapstructure:"etcd-name"`
	// EtcdClientURL is where the embedded etcd serves clients. Default
	// http://127.0.0.1:7702.
	EtcdClientURL string `mapstructure:"etcd-client-url"`
	// EtcdPeerURL is where the embedded etcd talks to its peers. Default
	// http://127.0.0.1:7703.
	EtcdPeerURL string `mapstructure:"etcd-peer-url"`
	// EtcdInitialCluster lists every node of a multi-node embedded hub as
	// name=peerURL,... Empty means a single node.
	EtcdInitialCluster string `mapstructure:"etcd-initial-cluster"`
	// EtcdInitialClusterState is "new" to bootstrap, "existing" to join.
	EtcdInitialClusterState string `mapstructure:"etcd-initial-cluster-state"`

	// Region and Datacenter place this hub node (gossip meta, and which
	// datacenter a multi-node hub loses with it). Default "default".
	Region     string `mapstructure:"region"`
	Datacenter string `mapstructure:"datacenter"`

	// GossipListen is the gossip (memberlist) address, UDP and TCP; empty
	// disables gossip, and cluster health then rests on the Sync stream
	// alone. Default empty.
	GossipListen string `mapstructure:"gossip-listen"`
	// GossipKey is the base64 AES-256 key gossip is encrypted with
	// (required with gossip-listen); GossipSecondaryKeys are further keys
	// accepted during a rotation.
	GossipKey           string   `mapstructure:"gossip-key"`
	GossipSecondaryKeys []string `mapstructure:"gossip-secondary-keys"`
	// GossipProfile is same-dc, cross-region or test. Default same-dc.
	GossipProfile string `mapstructure:"gossip-profile"`
	// HeartbeatTimeout is how old a member's last heartbeat may be before
	// it is Suspect. Default 15s (three missed 5 s heartbeats).
	HeartbeatTimeout time.Duration `mapstructure:"heartbeat-timeout"`
	// HealthInterval is how often cluster health is re-evaluated, for what
	// only time changes (a heartbeat growing old). A Sync stream opening or
	// closing and a gossip change are evaluated at once. Default 500ms.
	HealthInterval time.Duration `mapstructure:"health-interval"`
	// LeaseDuration is how long a member's singleton lease holds after it
	// sent the renewal (see docs/failover.md, "Fencing"). Default 10s.
	LeaseDuration time.Duration `mapstructure:"lease-duration"`
	// LeaseMargin is the hub's safety margin: a singleton is released only
	// after its cluster's lease has expired plus this. Default 2s.
	LeaseMargin time.Duration `mapstructure:"lease-margin"`
	// LeaderLease is the etcd session lease of the hub node that runs the
	// controllers: when the leader dies, another node takes over about one
	// lease (plus an etcd election) later. Whole seconds, at least 2s (etcd
	// rounds shorter leases up). Default 5s.
	LeaderLease time.Duration `mapstructure:"leader-lease"`
	// FailoverRate and FailoverBurst bound failover moves federation-wide
	// (a token bucket: moves per second, and how many may go at once).
	// The toleration is what keeps a flapping link from moving anything;
	// this bounds the write load when a whole datacenter goes. Default
	// 1000/s, burst 1000.
	FailoverRate  float64 `mapstructure:"failover-rate"`
	FailoverBurst int     `mapstructure:"failover-burst"`

	// MaxRequestBytes bounds one API request. Default 4 MiB.
	MaxRequestBytes int `mapstructure:"max-request-bytes"`
	// RequestTimeout bounds unary API calls that carry no deadline. Default 30s.
	RequestTimeout time.Duration `mapstructure:"request-timeout"`
	// ShutdownTimeout bounds each step of an ordered shutdown. Default 10s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `mapstructure:"log-level"`

	// Plugins are the out-of-process placement plugins to load (config
	// file only): see docs/plugins.md.
	Plugins []PluginConfig `mapstructure:"-" json:"plugins"`
	// Placement is the order of the placement pipeline (config file only);
	// empty lists keep the defaults (see docs/placement.md).
	Placement PlacementConfig `mapstructure:"-" json:"placement"`

	// etcdTiming shortens etcd's election for tests; zero keeps production values.
	EtcdTickMs, EtcdElectionMs uint `mapstructure:"-"`
}

// PluginConfig is one out-of-process plugin.
type PluginConfig struct {
	// Name is how the pipeline (placement.filters, .scorers) names it.
	Name string `json:"name"`
	// Path is the plugin's executable.
	Path string `json:"path"`
	// SHA256 pins the executable: a file with another hash is refused.
	SHA256 string `json:"sha256"`
	// Timeout bounds every call, e.g. "250ms" (default 250ms).
	Timeout string `json:"timeout,omitempty"`
	// FailureMode is fail-open (a failed call lets the cluster through) or
	// fail-closed (it keeps the cluster out); default fail-closed.
	FailureMode string `json:"failureMode,omitempty"`
	// Config is handed to the plugin (as JSON) when it starts.
	Config json.RawMessage `json:"config,omitempty"`
}

// PlacementConfig orders the placement pipeline by plugin name.
type PlacementConfig struct {
	Filters []string                `mapstructure:"filters"`
	Scorers []PlacementScorerConfig `mapstructure:"scorers"`
	Divide  []string                `mapstructure:"divide"`
}

// PlacementScorerConfig is one scorer and the weight of its score.
type PlacementScorerConfig struct {
	Name   string `json:"name"`
	Weight int64  `json:"weight"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		DataDir:                 filepath.Join("meridian-data", "hub"),
		Listen:                  "127.0.0.1:7700",
		HTTPListen:              "127.0.0.1:7701",
		EtcdName:                "hub",
		EtcdClientURL:           "http://127.0.0.1:7702",
		EtcdPeerURL:             "http://127.0.0.1:7703",
		EtcdInitialClusterState: "new",
		Region:                  "default",
		Datacenter:              "default",
		GossipProfile:           "same-dc",
		HeartbeatTimeout:        15 * time.Second,
		HealthInterval:          500 * time.Millisecond,
		LeaseDuration:           10 * time.Second,
		LeaseMargin:             2 * time.Second,
		LeaderLease:             5 * time.Second,
		FailoverRate:            1000,
		FailoverBurst:           1000,
		MaxRequestBytes:         4 << 20,
		RequestTimeout:          30 * time.Second,
		ShutdownTimeout:         10 * time.Second,
		LogLevel:                "info",
	}
}

// External reports whether the hub uses an external etcd.
func (c *Config) External() bool { return len(c.EtcdEndpoints) > 0 }

// Validate reports every problem at once, each naming the key to fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Listen == "" {
		bad("listen", "required (host:port)")
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port: %v", c.Listen, err)
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			bad("http-listen", "%q is not host:port: %v", c.HTTPListen, err)
		}
	}
	if c.DataDir == "" {
		bad("data-dir", "required (the embedded etcd's data, the CA certificate and the first admin token go there)")
	}
	if c.External() {
		for i, ep := range c.EtcdEndpoints {
			if err := checkURL(ep); err != nil {
				bad(fmt.Sprintf("etcd-endpoints[%d]", i), "%v", err)
			}
		}
	} else {
		if c.EtcdName == "" {
			bad("etcd-name", "required")
		}
		if err := checkURL(c.EtcdClientURL); err != nil {
			bad("etcd-client-url", "%v", err)
		}
		if err := checkURL(c.EtcdPeerURL); err != nil {
			bad("etcd-peer-url", "%v", err)
		}
		if c.EtcdInitialCluster != "" {
			found := false
			for _, member := range strings.Split(c.EtcdInitialCluster, ",") {
				name, u, ok := strings.Cut(member, "=")
				if !ok || name == "" {
					bad("etcd-initial-cluster", "%q is not name=peerURL", member)
					continue
				}
				if err := checkURL(u); err != nil {
					bad("etcd-initial-cluster", "%s: %v", name, err)
				}
				if name == c.EtcdName {
					found = true
				}
			}
			if !found {
				bad("etcd-initial-cluster", "does not list this node (etcd-name %q)", c.EtcdName)
			}
		}
		switch c.EtcdInitialClusterState {
		case "new", "existing":
		default:
			bad("etcd-initial-cluster-state", "%q must be new or existing", c.EtcdInitialClusterState)
		}
	}
	for key, v := range map[string]string{"region": c.Region, "datacenter": c.Datacenter} {
		if msgs := k8svalidation.IsDNS1123Label(v); len(msgs) > 0 {
			bad(key, "%q: %s", v, strings.Join(msgs, "; "))
		}
	}
	if c.GossipListen != "" {
		if _, _, err := net.SplitHostPort(c.GossipListen); err != nil {
			bad("gossip-listen", "%q is not host:port: %v", c.GossipListen, err)
		}
		if c.GossipKey == "" {
			bad("gossip-key", "required with gossip-listen: gossip is always encrypted (make one with `meridian gossip keygen`)")
		}
	}
	if _, err := gossip.ProfileNamed(c.GossipProfile); err != nil {
		bad("gossip-profile", "%v", err)
	}
	if c.HeartbeatTimeout <= 0 {
		bad("heartbeat-timeout", "must be positive, got %s", c.HeartbeatTimeout)
	}
	if c.HealthInterval <= 0 {
		bad("health-interval", "must be positive, got %s", c.HealthInterval)
	}
	if c.LeaseDuration < 200*time.Millisecond {
		bad("lease-duration", "must be at least 200ms, got %s", c.LeaseDuration)
	}
	if c.LeaderLease < 2*time.Second || c.LeaderLease%time.Second != 0 {
		bad("leader-lease", "must be whole seconds, at least 2s (an etcd lease TTL), got %s", c.LeaderLease)
	}
	if c.FailoverRate <= 0 {
		bad("failover-rate", "must be positive (moves per second), got %v", c.FailoverRate)
	}
	if c.FailoverBurst <= 0 {
		bad("failover-burst", "must be positive, got %d", c.FailoverBurst)
	}
	if c.LeaseMargin <= 0 || c.LeaseMargin >= c.LeaseDuration {
		bad("lease-margin", "must be positive and below lease-duration (%s), got %s", c.LeaseDuration, c.LeaseMargin)
	}
	if c.MaxRequestBytes <= 0 {
		bad("max-request-bytes", "must be positive, got %d", c.MaxRequestBytes)
	}
	if c.RequestTimeout <= 0 {
		bad("request-timeout", "must be positive, got %s", c.RequestTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q must be debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must start with http:// or https://", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host:port", s)
	}
	return nil
}

// ReadPipeline reads the plugins and placement sections of a hub config
// file (the rest of the file is flags, read elsewhere). Their fields are
// checked strictly: an unknown one is an error naming it.
func ReadPipeline(path string) ([]PluginConfig, PlacementConfig, error) {
	var none PlacementConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, none, fmt.Errorf("config file %s: %w", path, err)
	}
	var top map[string]json.RawMessage
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, none, fmt.Errorf("config file %s: %w", path, err)
	}
	var (
		plugins []PluginConfig
		pl      PlacementConfig
	)
	for key, into := range map[string]any{"plugins": &plugins, "placement": &pl} {
		raw, ok := top[key]
		if !ok || string(raw) == "null" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			return nil, none, fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
	}
	return plugins, pl, nil
}
