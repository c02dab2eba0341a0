package gossip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// validConfig is a config that passes Validate; the table below breaks one
// field at a time.
func validConfig(t *testing.T) Config {
	return nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", newKey(t))
}

func TestConfigValidateNamesTheBadField(t *testing.T) {
	longAddrs := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		longAddrs["endpoint-"+n] = "a-rather-long-host-name.example.com:7700"
	}
	tests := []struct {
		name   string
		change func(*Config)
		field  string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "Name"},
		{"name not DNS", func(c *Config) { c.Name = "Member_A2" }, "Name"},
		{"bad role", func(c *Config) { c.Role = "worker" }, "Role"},
		{"no region", func(c *Config) { c.Region = "" }, "Region"},
		{"region not a label", func(c *Config) { c.Region = "region.a" }, "Region"},
		{"no datacenter", func(c *Config) { c.Datacenter = "" }, "Datacenter"},
		{"member without cluster", func(c *Config) { c.Cluster = "" }, "Cluster"},
		{"bad cluster", func(c *Config) { c.Cluster = "Cluster A" }, "Cluster"},
		{"bad address name", func(c *Config) { c.Addresses = map[string]string{"API": "h:1"} }, "Addresses"},
		{"address without port", func(c *Config) { c.Addresses = map[string]string{"api": "h"} }, "Addresses[api]"},
		{"address port zero", func(c *Config) { c.Addresses = map[string]string{"api": "h:0"} }, "Addresses[api]"},
		{"meta too large", func(c *Config) { c.Addresses = longAddrs }, "Addresses"},
		{"bind addr not an IP", func(c *Config) { c.BindAddr = "localhost" }, "BindAddr"},
		{"bind port too big", func(c *Config) { c.BindPort = 70000 }, "BindPort"},
		{"advertise addr not an IP", func(c *Config) { c.AdvertiseAddr = "example.com" }, "AdvertiseAddr"},
		{"advertise port negative", func(c *Config) { c.AdvertisePort = -1 }, "AdvertisePort"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"127.0.0.1:7946", "hub"} }, "Seeds[1]"},
		{"negative rejoin", func(c *Config) { c.RejoinInterval = -time.Second }, "RejoinInterval"},
		{"no key", func(c *Config) { c.PrimaryKey = "" }, "PrimaryKey"},
		{"key not base64", func(c *Config) { c.PrimaryKey = "%%%" }, "PrimaryKey"},
		{"AES-128 key", func(c *Config) { c.PrimaryKey = "MDEyMzQ1Njc4OWFiY2RlZg==" }, "PrimaryKey"},
		{"bad secondary key", func(c *Config) { c.SecondaryKeys = []string{c.PrimaryKey, "c2hvcnQ="} }, "SecondaryKeys[1]"},
		{"probe timeout not under interval", func(c *Config) { c.Profile.ProbeTimeout = c.Profile.ProbeInterval }, "Profile.ProbeTimeout"},
		{"zero probe interval", func(c *Config) { c.Profile.ProbeInterval = 0 }, "Profile.ProbeInterval"},
		{"zero suspicion mult", func(c *Config) { c.Profile.SuspicionMult = 0 }, "Profile.SuspicionMult"},
		{"negative indirect checks", func(c *Config) { c.Profile.IndirectChecks = -1 }, "Profile.IndirectChecks"},
		{"negative push/pull", func(c *Config) { c.Profile.PushPullInterval = -1 }, "Profile.PushPullInterval"},
		{"pings without threshold", func(c *Config) { c.Profile.SuspectAfter = 0 }, "Profile.SuspectAfter"},
		{"negative event buffer", func(c *Config) { c.EventBuffer = -1 }, "EventBuffer"},
		{"negative retention", func(c *Config) { c.DeadRetention = -time.Hour }, "DeadRetention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig(t)
			tt.change(&cfg)
			err := cfg.Validate()
			var cfgErr *ConfigError
			if !errors.As(err, &cfgErr) {
				t.Fatalf("Validate() = %v, want a *ConfigError", err)
			}
			if cfgErr.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", cfgErr.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name %s", err, tt.field)
			}
			if _, err := Start(cfg); err == nil {
				t.Error("Start accepted the config")
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{
		Name:       "hub-1",
		Role:       RoleHub,
		Region:     "region-a",
		Datacenter: "dc-a1",
		PrimaryKey: newKey(t),
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.BindAddr != DefaultBindAddr || cfg.BindPort != 0 || cfg.RejoinInterval != DefaultRejoinInterval ||
		cfg.EventBuffer != DefaultEventBuffer || cfg.DeadRetention != DefaultDeadRetention || cfg.Logger == nil {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	if cfg.Profile != ProfileSameDC() {
		t.Errorf("default profile %q, want %q", cfg.Profile.Name, ProfileNameSameDC)
	}
	// A hub needs no cluster; Validate is idempotent.
	if err := cfg.Validate(); err != nil {
		t.Errorf("second Validate: %v", err)
	}
}

func TestProfiles(t *testing.T) {
	lan, wan := memberlist.DefaultLANConfig(), memberlist.DefaultWANConfig()
	for _, name := range []string{ProfileNameSameDC, ProfileNameCrossRegion, ProfileNameTest} {
		p, err := ProfileNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != name {
			t.Errorf("ProfileNamed(%q).Name = %q", name, p.Name)
		}
		if err := p.validate(); err != nil {
			t.Errorf("profile %s: %v", name, err)
		}
		if p.PingInterval <= 0 || p.SuspectAfter < 1 {
			t.Errorf("profile %s does not detect Suspect", name)
		}
	}
	if _, err := ProfileNamed("fast"); err == nil {
		t.Error("ProfileNamed accepted an unknown name")
	}

	same, cross := ProfileSameDC(), ProfileCrossRegion()
	// Same-DC detects faster than memberlist's LAN default, cross-region
	// faster than its WAN default, and cross-region is the more tolerant.
	if same.ProbeInterval >= lan.ProbeInterval || same.ProbeTimeout >= lan.ProbeTimeout {
		t.Errorf("same-dc probes %s/%s, LAN %s/%s", same.ProbeInterval, same.ProbeTimeout, lan.ProbeInterval, lan.ProbeTimeout)
	}
	if cross.ProbeInterval >= wan.ProbeInterval || cross.SuspicionMult != wan.SuspicionMult {
		t.Errorf("cross-region probes every %s with suspicion ×%d", cross.ProbeInterval, cross.SuspicionMult)
	}
	if cross.ProbeTimeout <= same.ProbeTimeout || cross.SuspicionMult <= same.SuspicionMult || cross.SuspectAfter <= same.SuspectAfter {
		t.Error("cross-region is not more tolerant than same-dc")
	}

	// apply writes every profile field into a memberlist config.
	c := memberlist.DefaultLANConfig()
	cross.apply(c)
	if got := fromMemberlist(ProfileNameCrossRegion, c); got != (Profile{
		Name: cross.Name, ProbeInterval: cross.ProbeInterval, ProbeTimeout: cross.ProbeTimeout,
		IndirectChecks: cross.IndirectChecks, SuspicionMult: cross.SuspicionMult,
		SuspicionMaxTimeoutMult: cross.SuspicionMaxTimeoutMult, AwarenessMaxMultiplier: cross.AwarenessMaxMultiplier,
		GossipInterval: cross.GossipInterval, GossipNodes: cross.GossipNodes, GossipToTheDeadTime: cross.GossipToTheDeadTime,
		RetransmitMult: cross.RetransmitMult, PushPullInterval: cross.PushPullInterval, TCPTimeout: cross.TCPTimeout,
	}) {
		t.Errorf("apply/fromMemberlist round trip lost fields: %+v", got)
	}
}
