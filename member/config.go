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
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meridian-fed/meridian/member/agent"
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
	// Standalone runs with no hub: the member is managed through its own API.
	// It is the only mode until federation lands.
	Standalone bool `mapstructure:"standalone"`
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
	// SimStartDelay and SimFailureRate shape simulated pods (runtime sim).
	SimStartDelay  time.Duration `mapstructure:"sim-start-delay"`
	SimFailureRate float64       `mapstructure:"sim-failure-rate"`

	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`
	LogLevel        string        `mapstructure:"log-level"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Name:             "member",
		Region:           "local",
		Datacenter:       "local",
		DataDir:          filepath.Join("meridian-data", "member"),
		Listen:           "127.0.0.1:7710",
		HTTPListen:       "127.0.0.1:7711",
		PodCIDR:          "127.1.0.0/16",
		ServiceCIDR:      "127.2.0.0/16",
		Runtime:          "exec",
		NodeCount:        1,
		NodeCPU:          strconv.Itoa(runtime.NumCPU()),
		NodeMemory:       "8Gi",
		NodePods:         110,
		CrashLoopBackoff: 10 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		LogLevel:         "info",
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
	if !c.Standalone {
		bad("standalone", "joining a hub is not implemented yet: run with --standalone")
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
