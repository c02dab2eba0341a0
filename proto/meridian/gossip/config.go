package gossip

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
)

// Defaults for the zero values of Config. Each one says why it is what it is.
const (
	// DefaultBindAddr listens on every interface: gossip must be reachable
	// from the other datacenters. Tests and `meridian dev` bind 127.0.0.1.
	DefaultBindAddr = "0.0.0.0"

	// DefaultBindPort is memberlist's (and Serf's and Consul's) usual
	// gossip port, for flags and config files to offer. Config.BindPort 0
	// does not mean this port: it means "pick a free one".
	DefaultBindPort = 7946

	// DefaultRejoinInterval is how often a node that sees no live hub
	// tries its seeds again. A member that starts before the hub, or that
	// outlives a hub restart (the restarted hub knows nobody), reconnects
	// within this time; a join costs one TCP exchange per seed, and only
	// happens while no hub is alive, so it can be short.
	DefaultRejoinInterval = 5 * time.Second

	// DefaultEventBuffer is each subscriber's channel capacity. A pool of
	// tens of nodes produces a handful of events per failure; 128 lets a
	// subscriber be busy for a while before the oldest events are dropped.
	DefaultEventBuffer = 128

	// DefaultDeadRetention is how long a Dead or Left node stays in
	// Members. Long enough for an operator to see in the morning what died
	// at night; bounded so that churn under fresh names does not grow
	// memory forever. A node that comes back is Alive again at once.
	DefaultDeadRetention = 24 * time.Hour

	// KeySize is the size of a gossip encryption key: 32 bytes selects
	// AES-256 (memberlist also accepts 16 and 24, Meridian does not).
	KeySize = 32
)

// Config configures one gossip node. It is a plain struct, filled from file,
// env and flags; zero values take the defaults above. Validate fills them
// in and checks the result; Start validates a copy.
type Config struct {
	// Name is the node's unique name in the pool, a DNS-1123 subdomain.
	// A member agent usually uses its cluster name, a hub node its own
	// name.
	Name string
	// Role is hub or member.
	Role Role
	// Region and Datacenter place the node in the topology (DNS-1123
	// labels).
	Region     string
	Datacenter string
	// Cluster is the member cluster's name (required for a member, usually
	// empty for a hub).
	Cluster string
	// Addresses are the node's service endpoints by name ("api", "sync",
	// ...): names are 1–16 of [a-z0-9-], values are host:port.
	Addresses map[string]string
	// Version is the software version to advertise (optional).
	Version string

	// BindAddr is the address to listen on for gossip, UDP and TCP (default
	// 0.0.0.0).
	BindAddr string
	// BindPort is the gossip port; 0 picks a free one (read it back with
	// Gossip.LocalAddr). Production configs use DefaultBindPort.
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other nodes dial, when that
	// differs from the bind address (NAT, 0.0.0.0). Empty: memberlist uses
	// the bind address, or the first private IP when bound to 0.0.0.0.
	AdvertiseAddr string
	AdvertisePort int

	// Seeds are gossip addresses (host:port) of nodes to join, usually the
	// hub nodes. Start does not wait for them: it tries them in the
	// background at once and again every RejoinInterval while this node
	// sees no live hub.
	Seeds []string
	// RejoinInterval is how often to retry the seeds while no hub is alive
	// (default 5s).
	RejoinInterval time.Duration

	// PrimaryKey is the base64 of the 32-byte AES-256 key that encrypts
	// everything this node sends. Required: gossip is always encrypted.
	PrimaryKey string
	// SecondaryKeys are further base64 keys this node accepts, for
	// rotation: install the new key everywhere as a secondary, make it
	// primary everywhere, then remove the old one.
	SecondaryKeys []string

	// Profile holds the timings; the zero Profile means ProfileSameDC().
	Profile Profile

	// EventBuffer is each subscriber's channel capacity (default 128).
	EventBuffer int
	// DeadRetention is how long Dead and Left nodes stay in Members
	// (default 24h).
	DeadRetention time.Duration

	// Logger receives this package's logs and, at debug level, memberlist's
	// (default slog.Default()).
	Logger *slog.Logger
}

// ConfigError is a Config that cannot be used; Field names the bad field.
type ConfigError struct {
	// Field is the Config field, e.g. "Region" or "Profile.ProbeTimeout".
	Field string
	// Reason says what is wrong and what is expected.
	Reason string
}

// Error implements error.
func (e *ConfigError) Error() string {
	return "invalid gossip config: " + e.Field + ": " + e.Reason
}

// configErr builds a *ConfigError.
func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// addressName is the form of an Addresses key: short, because it travels in
// every alive message.
var addressName = regexp.MustCompile(`^[a-z0-9-]{1,16}$`)

// Validate fills in defaults and checks the config. The error is a
// *ConfigError naming the first bad field.
func (c *Config) Validate() error {
	c.setDefaults()
	if c.Name == "" {
		return configErr("Name", "must not be empty")
	}
	if msgs := k8svalidation.IsDNS1123Subdomain(c.Name); len(msgs) > 0 {
		return configErr("Name", "%q: %s", c.Name, strings.Join(msgs, "; "))
	}
	if c.Role != RoleHub && c.Role != RoleMember {
		return configErr("Role", "must be %q or %q, got %q", RoleHub, RoleMember, c.Role)
	}
	for _, f := range []struct{ field, value string }{
		{"Region", c.Region},
		{"Datacenter", c.Datacenter},
	} {
		if f.value == "" {
			return configErr(f.field, "must not be empty")
		}
		if msgs := k8svalidation.IsDNS1123Label(f.value); len(msgs) > 0 {
			return configErr(f.field, "%q: %s", f.value, strings.Join(msgs, "; "))
		}
	}
	if c.Role == RoleMember && c.Cluster == "" {
		return configErr("Cluster", "must not be empty for a member")
	}
	if c.Cluster != "" {
		if msgs := k8svalidation.IsDNS1123Subdomain(c.Cluster); len(msgs) > 0 {
			return configErr("Cluster", "%q: %s", c.Cluster, strings.Join(msgs, "; "))
		}
	}
	if err := validateAddresses(c.Addresses); err != nil {
		return err
	}
	if net.ParseIP(c.BindAddr) == nil {
		return configErr("BindAddr", "must be an IP address, got %q", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return configErr("BindPort", "must be 0 (pick a free port) to 65535, got %d", c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return configErr("AdvertiseAddr", "must be an IP address, got %q", c.AdvertiseAddr)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return configErr("AdvertisePort", "must be 0 (the bound port) to 65535, got %d", c.AdvertisePort)
	}
	for i, s := range c.Seeds {
		if _, _, err := splitHostPort(s); err != nil {
			return configErr(fmt.Sprintf("Seeds[%d]", i), "%v", err)
		}
	}
	if c.RejoinInterval < 0 {
		return configErr("RejoinInterval", "must not be negative, got %s", c.RejoinInterval)
	}
	if c.PrimaryKey == "" {
		return configErr("PrimaryKey", "must be set: gossip is always encrypted (generate one with GenerateKey)")
	}
	if _, err := decodeKey(c.PrimaryKey); err != nil {
		return configErr("PrimaryKey", "%v", err)
	}
	for i, k := range c.SecondaryKeys {
		if _, err := decodeKey(k); err != nil {
			return configErr(fmt.Sprintf("SecondaryKeys[%d]", i), "%v", err)
		}
	}
	if err := c.Profile.validate(); err != nil {
		return err
	}
	if c.EventBuffer < 1 {
		return configErr("EventBuffer", "must be at least 1, got %d", c.EventBuffer)
	}
	if c.DeadRetention <= 0 {
		return configErr("DeadRetention", "must be positive, got %s", c.DeadRetention)
	}
	// Checked last: the encoded meta must fit memberlist's limit, and it
	// is better to learn that at start than when a peer drops the node.
	if _, err := encodeMeta(c.meta(), true); err != nil {
		return configErr("Addresses", "%v", err)
	}
	return nil
}

// setDefaults fills the zero values.
func (c *Config) setDefaults() {
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.Profile == (Profile{}) {
		c.Profile = ProfileSameDC()
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.DeadRetention == 0 {
		c.DeadRetention = DefaultDeadRetention
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// clone returns a copy that shares no slices or maps with c.
func (c Config) clone() Config {
	c.Addresses = maps.Clone(c.Addresses)
	c.Seeds = slices.Clone(c.Seeds)
	c.SecondaryKeys = slices.Clone(c.SecondaryKeys)
	return c
}

// meta returns the node meta the config describes.
func (c *Config) meta() Meta {
	return Meta{
		Role:       c.Role,
		Region:     c.Region,
		Datacenter: c.Datacenter,
		Cluster:    c.Cluster,
		Addresses:  maps.Clone(c.Addresses),
		Version:    c.Version,
	}
}

// validateAddresses checks advertised service addresses.
func validateAddresses(addrs map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		if !addressName.MatchString(name) {
			return configErr("Addresses", "name %q must be 1-16 of [a-z0-9-]", name)
		}
		if _, _, err := splitHostPort(addrs[name]); err != nil {
			return configErr("Addresses["+name+"]", "%v", err)
		}
	}
	return nil
}

// splitHostPort checks a host:port with a non-empty host and a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("must be host:port: %w", err)
	}
	if host == "" {
		return "", 0, fmt.Errorf("must be host:port, %q has no host", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("must be host:port with a port from 1 to 65535, got %q", s)
	}
	return host, p, nil
}

// decodeKey decodes a base64 gossip key and checks its size.
func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("failed to decode key as base64: %w", err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d (AES-256)", len(k), KeySize)
	}
	return k, nil
}
