// Package member assembles a member agent: the local control plane of one
// datacenter. A bbolt store holds every object; the Admin API (the same one
// the hub serves) and a LogService face users; controllers turn workloads
// into pods; the scheduler binds pods to nodes; a node agent per node runs
// them through a runtime driver (exec: real processes; sim: simulated).
//
//	meridian apply ──▶ Admin API ──▶ store (bbolt) ◀──▶ informers
//	                                   ▲    controllers: deployment → replicaset → pods,
//	                                   │    statefulset, daemonset, job, cronjob
//	                                   │    scheduler: pod.spec.nodeName
//	                                   └─── node agents ──▶ runtime (exec | sim)
package member

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meridian-fed/meridian/member/agent"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
)

// Config is everything a member agent needs, filled from a config file,
// MERIDIAN_* environment variables and flags (same key names everywhere)
// and validated once.
type Config struct {
	// Name is the member's cluster name. Default "member".
	Name string `mapstructure:"name"`
	// Region and Datacenter place the member in the federation's topology.
	Region     string `mapstructure:"region"`
	Datacenter string `mapstructure:"datacenter"`
	// Standalone runs with no hub: the member is managed through its own
	// API. Exactly one of standalone and hub is required.
	Standalone bool `mapstructure:"standalone"`
	// Hub is the hub API address (host:port) the member syncs with; for a
	// multi-node hub, every node's, comma-separated: the member moves to
	// the next when it loses the one it uses.
	Hub string `mapstructure:"hub"`
	// JoinToken is traded for a member certificate on the first start
	// (`meridian token create`); later starts use the stored certificate.
	JoinToken string `mapstructure:"join-token"`
	// HubCAPin ("sha256:<hex>", printed with the token) or HubCAFile (the
	// hub's ca.crt) is how the joining member knows it talks to the real hub.
	HubCAPin  string `mapstructure:"hub-ca-pin"`
	HubCAFile string `mapstructure:"hub-ca-file"`
	// Labels are the Cluster's labels (key=value), for placement.
	Labels map[string]string `mapstructure:"labels"`
	// HeartbeatInterval is how often the member tells the hub it is alive,
	// with its capacity. Default 5s.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat-interval"`
	// GossipListen is the gossip address (UDP and TCP); empty disables
	// gossip. GossipSeeds are the hub's gossip addresses. GossipKey and
	// GossipSecondaryKeys are the base64 keys (the hub's).
	GossipListen        string   `mapstructure:"gossip-listen"`
	GossipSeeds         []string `mapstructure:"gossip-seeds"`
	GossipKey           string   `mapstructure:"gossip-key"`
	GossipSecondaryKeys []string `mapstructure:"gossip-secondary-keys"`
	// GossipProfile is same-dc, cross-region or test. Default same-dc.
	GossipProfile string `mapstructure:"gossip-profile"`
	// DataDir holds the store (state.db) and the pods' directories.
	DataDir string `mapstructure:"data-dir"`
	// Listen is the local API address (Admin and Log services).
	// Default 127.0.0.1:7710.
	Listen string `mapstructure:"listen"`
	// HTTPListen serves /healthz, /readyz and /metrics. Default 127.0.0.1:7711.
	HTTPListen string `mapstructure:"http-listen"`
	// PodCIDR is the member's range of pod addresses, inside 127.0.0.0/8.
	// Each member of a federation on one machine needs its own. Default
	// 127.1.0.0/16.
	PodCIDR string `mapstructure:"pod-cidr"`
	// ServiceCIDR is the member's range of Service virtual addresses,
	// inside 127.0.0.0/8 and apart from PodCIDR (whose addresses the node
	// agents own). Each member on one machine needs its own. Default
	// 127.2.0.0/16.
	ServiceCIDR string `mapstructure:"service-cidr"`
	// Runtime is exec (real processes) or sim (simulated pods).
	Runtime string `mapstructure:"runtime"`

	// Nodes declares the member's nodes (config file only). When empty,
	// NodeCount identical nodes named <name>-node-<i> are declared, each
	// with NodeCPU and NodeMemory.
	Nodes      []agent.Node `mapstructure:"nodes"`
	NodeCount  int          `mapstructure:"node-count"`
	NodeCPU    string       `mapstructure:"node-cpu"`
	NodeMemory string       `mapstructure:"node-memory"`
	NodePods   int          `mapstructure:"node-pods"`

	// CrashLoopBackoff is the first delay before restarting a container that
	// keeps exiting; later delays double up to 5 minutes. Default 10s.
	CrashLoopBackoff time.Duration `mapstructure:"crash-loop-backoff"`
	// FenceWatchdog runs the fence watchdog, a process apart from the agent
	// that kills the singleton pods when the agent misses their lease
	// deadline (a paused agent; docs/failover.md, "Fencing"). Only with a
	// hub and runtime exec. Default true.
	FenceWatchdog bool `mapstructure:"fence-watchdog"`
	// SimStartDelay and SimFailureRate shape simulated pods (runtime sim).
	SimStartDelay  time.Duration `mapstructure:"sim-start-delay"`
	SimFailureRate float64       `mapstructure:"sim-failure-rate"`

	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`
	LogLevel        string        `mapstructure:"log-level"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Name:              "member",
		Region:            "local",
		Datacenter:        "local",
		DataDir:           filepath.Join("meridian-data", "member"),
		Listen:            "127.0.0.1:7710",
		HTTPListen:        "127.0.0.1:7711",
		PodCIDR:           "127.1.0.0/16",
		ServiceCIDR:       "127.2.0.0/16",
		Runtime:           "exec",
		NodeCount:         1,
		NodeCPU:           strconv.Itoa(runtime.NumCPU()),
		NodeMemory:        "8Gi",
		NodePods:          110,
		CrashLoopBackoff:  10 * time.Second,
		FenceWatchdog:     true,
		ShutdownTimeout:   10 * time.Second,
		HeartbeatInterval: 5 * time.Second,
		GossipProfile:     "same-dc",
		LogLevel:          "info",
	}
}

// nodes returns the declared nodes, or NodeCount generated ones.
func (c *Config) nodes() []agent.Node {
	if len(c.Nodes) > 0 {
		return c.Nodes
	}
	out := make([]agent.Node, 0, c.NodeCount)
	for i := 1; i <= c.NodeCount; i++ {
		name := fmt.Sprintf("%s-node-%d", c.Name, i)
		out = append(out, agent.Node{
			Name:     name,
			Capacity: map[string]string{"cpu": c.NodeCPU, "memory": c.NodeMemory, "pods": strconv.Itoa(c.NodePods)},
			Labels: map[string]string{
				"kubernetes.io/hostname":        name,
				"topology.kubernetes.io/region": c.Region,
				"topology.kubernetes.io/zone":   c.Datacenter,
			},
		})
	}
	return out
}

// Validate reports every problem at once, each naming the key to fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	label := func(key, v string) {
		if v == "" {
			bad(key, "required")
		} else if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			bad(key, "%q: %s", v, msgs[0])
		}
	}
	label("name", c.Name)
	label("region", c.Region)
	label("datacenter", c.Datacenter)
	switch {
	case c.Standalone && c.Hub != "":
		bad("standalone", "conflicts with hub %q: a member either runs on its own or syncs with a hub", c.Hub)
	case !c.Standalone && c.Hub == "":
		bad("hub", "required (the hub's host:port), or run on its own with --standalone")
	}
	if c.Hub != "" {
		for _, a := range strings.Split(c.Hub, ",") {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
				bad("hub", "%q is not host:port (or a comma-separated list of them, one per hub node): %v", a, err)
			}
		}
		if c.JoinToken != "" && c.HubCAPin == "" && c.HubCAFile == "" {
			bad("hub-ca-pin", "required with join-token (printed by `meridian token create`), or give hub-ca-file: the member must know it talks to the real hub before it sends its token")
		}
	}
	if c.HeartbeatInterval <= 0 {
		bad("heartbeat-interval", "must be positive, got %s", c.HeartbeatInterval)
	}
	for k, v := range c.Labels {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			bad("labels", "key %q: %s", k, msgs[0])
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			bad("labels", "value %q of %s: %s", v, k, msgs[0])
		}
	}
	if c.GossipListen != "" {
		if c.Hub == "" {
			bad("gossip-listen", "gossip needs a hub (hub)")
		}
		if _, _, err := net.SplitHostPort(c.GossipListen); err != nil {
			bad("gossip-listen", "%q is not host:port: %v", c.GossipListen, err)
		}
		if c.GossipKey == "" {
			bad("gossip-key", "required with gossip-listen: gossip is always encrypted (the hub's key)")
		}
		if len(c.GossipSeeds) == 0 {
			bad("gossip-seeds", "required with gossip-listen: the hub's gossip address(es)")
		}
		for i, s := range c.GossipSeeds {
			if _, _, err := net.SplitHostPort(s); err != nil {
				bad(fmt.Sprintf("gossip-seeds[%d]", i), "%q is not host:port: %v", s, err)
			}
		}
	}
	if _, err := gossip.ProfileNamed(c.GossipProfile); err != nil {
		bad("gossip-profile", "%v", err)
	}
	if c.DataDir == "" {
		bad("data-dir", "required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port: %v", c.Listen, err)
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			bad("http-listen", "%q is not host:port: %v", c.HTTPListen, err)
		}
	}
	pods, podsOK := loopbackRange(bad, "pod-cidr", c.PodCIDR)
	if svcs, ok := loopbackRange(bad, "service-cidr", c.ServiceCIDR); ok && podsOK && svcs.Overlaps(pods) {
		bad("service-cidr", "%s overlaps pod-cidr %s: give Services a range of their own", svcs, pods)
	}
	switch c.Runtime {
	case "exec", "sim":
	default:
		bad("runtime", "%q must be exec or sim", c.Runtime)
	}
	if len(c.Nodes) == 0 {
		if c.NodeCount < 1 {
			bad("node-count", "must be at least 1, got %d", c.NodeCount)
		}
		for key, q := range map[string]string{"node-cpu": c.NodeCPU, "node-memory": c.NodeMemory} {
			if _, err := resource.ParseQuantity(q); err != nil {
				bad(key, "%q is not a quantity: %v", q, err)
			}
		}
		if c.NodePods < 1 {
			bad("node-pods", "must be at least 1, got %d", c.NodePods)
		}
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		key := fmt.Sprintf("nodes[%d]", i)
		label(key+".name", n.Name)
		if seen[n.Name] {
			bad(key+".name", "duplicate node %q", n.Name)
		}
		seen[n.Name] = true
		for r, q := range n.Capacity {
			if _, err := resource.ParseQuantity(q); err != nil {
				bad(fmt.Sprintf("%s.capacity.%s", key, r), "%q is not a quantity: %v", q, err)
			}
		}
		for j, t := range n.Taints {
			switch t.Effect {
			case "NoSchedule", "PreferNoSchedule", "NoExecute":
			default:
				bad(fmt.Sprintf("%s.taints[%d].effect", key, j), "%q must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
			}
		}
	}
	if c.CrashLoopBackoff <= 0 {
		bad("crash-loop-backoff", "must be positive, got %s", c.CrashLoopBackoff)
	}
	if c.SimFailureRate < 0 || c.SimFailureRate > 1 {
		bad("sim-failure-rate", "must be between 0 and 1, got %v", c.SimFailureRate)
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

// loopbackRange parses the CIDR of key, which must lie inside 127.0.0.0/8
// with a prefix between /8 and /30, reporting what is wrong through bad.
func loopbackRange(bad func(key, format string, args ...any), key, cidr string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		bad(key, "%q is not a CIDR: %v", cidr, err)
		return netip.Prefix{}, false
	}
	if !p.Addr().Is4() || p.Addr().As4()[0] != 127 || p.Bits() < 8 || p.Bits() > 30 {
		bad(key, "%q must lie inside 127.0.0.0/8 with a prefix between /8 and /30", cidr)
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}
