package gossip

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profile names, as a config file or flag spells them.
const (
	ProfileNameSameDC      = "same-dc"
	ProfileNameCrossRegion = "cross-region"
	ProfileNameTest        = "test"
	ProfileNameDev         = "dev"
)

// Profile is a tuned set of failure-detection and dissemination timings.
// memberlist runs one pool, so every node of a federation should use the
// same profile, chosen for the slowest link in the pool: ProfileSameDC when
// all nodes share a datacenter or a metro network (and for `meridian dev`
// on loopback), ProfileCrossRegion when the pool spans regions — the
// federation's target topology.
//
// The first block of fields are memberlist.Config fields of the same name
// (see its documentation); the last two drive this package's own suspicion
// pings.
type Profile struct {
	// Name identifies the profile in logs and config.
	Name string

	// ProbeInterval is how often memberlist probes one random node.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe (and one of our pings) waits
	// for an ack; it should be the 99th percentile of the round trip.
	ProbeTimeout time.Duration
	// IndirectChecks is how many other nodes probe a node that missed a
	// direct probe, before it is suspected.
	IndirectChecks int
	// SuspicionMult scales how long memberlist keeps a node suspect before
	// declaring it dead: SuspicionMult × max(1, log10(N)) × ProbeInterval.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout when few peers
	// confirm the suspicion: at most this many times the timeout above.
	SuspicionMaxTimeoutMult int
	// AwarenessMaxMultiplier is how far a node that notices it is itself
	// unhealthy (missed acks, nacks) stretches its probe interval.
	AwarenessMaxMultiplier int
	// GossipInterval and GossipNodes: every GossipInterval, queued
	// messages go to GossipNodes random nodes.
	GossipInterval time.Duration
	GossipNodes    int
	// GossipToTheDeadTime is how long a dead node still receives gossip (so
	// it can refute) and stays in memberlist's node list.
	GossipToTheDeadTime time.Duration
	// RetransmitMult: each broadcast is sent RetransmitMult × log(N+1)
	// times.
	RetransmitMult int
	// PushPullInterval is how often a node does a full state exchange with
	// one random node over TCP (anti-entropy).
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP dial and each stream read and write (joins,
	// push/pull, fallback pings).
	TCPTimeout time.Duration

	// PingInterval is how often this node pings each node that memberlist
	// lists as alive, to detect Suspect (suspicion.go). Zero disables the
	// pings: nodes then only ever show Alive, Dead and Left.
	PingInterval time.Duration
	// SuspectAfter is how many pings in a row a node must miss to become
	// Suspect. One answered ping makes it Alive again.
	SuspectAfter int
}

// fromMemberlist copies the profile fields of a memberlist config.
func fromMemberlist(name string, c *memberlist.Config) Profile {
	return Profile{
		Name:                    name,
		ProbeInterval:           c.ProbeInterval,
		ProbeTimeout:            c.ProbeTimeout,
		IndirectChecks:          c.IndirectChecks,
		SuspicionMult:           c.SuspicionMult,
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult,
		AwarenessMaxMultiplier:  c.AwarenessMaxMultiplier,
		GossipInterval:          c.GossipInterval,
		GossipNodes:             c.GossipNodes,
		GossipToTheDeadTime:     c.GossipToTheDeadTime,
		RetransmitMult:          c.RetransmitMult,
		PushPullInterval:        c.PushPullInterval,
		TCPTimeout:              c.TCPTimeout,
	}
}

// apply writes the profile's memberlist fields into c.
func (p Profile) apply(c *memberlist.Config) {
	c.ProbeInterval = p.ProbeInterval
	c.ProbeTimeout = p.ProbeTimeout
	c.IndirectChecks = p.IndirectChecks
	c.SuspicionMult = p.SuspicionMult
	c.SuspicionMaxTimeoutMult = p.SuspicionMaxTimeoutMult
	c.AwarenessMaxMultiplier = p.AwarenessMaxMultiplier
	c.GossipInterval = p.GossipInterval
	c.GossipNodes = p.GossipNodes
	c.GossipToTheDeadTime = p.GossipToTheDeadTime
	c.RetransmitMult = p.RetransmitMult
	c.PushPullInterval = p.PushPullInterval
	c.TCPTimeout = p.TCPTimeout
}

// ProfileSameDC is for a pool inside one datacenter or metro network (and
// loopback). It starts from memberlist.DefaultLANConfig, which assumes a LAN
// but errs on the side of slow detection, and detects faster: a killed node
// is Suspect in about one second and Dead in about 3–4 s in a small pool.
func ProfileSameDC() Profile {
	p := fromMemberlist(ProfileNameSameDC, memberlist.DefaultLANConfig())
	// Probe twice a second instead of once: inside a datacenter a probe
	// costs two tiny packets, and a dead node is noticed twice as soon.
	p.ProbeInterval = 500 * time.Millisecond
	// A datacenter round trip is well under a millisecond; 200 ms (down
	// from 500 ms) still covers GC pauses and busy hosts, and it must stay
	// well under ProbeInterval to leave time for the indirect probes.
	p.ProbeTimeout = 200 * time.Millisecond
	// Spread suspicions and refutations every 100 ms (down from 200 ms), so
	// the rest of the pool agrees quickly; the bandwidth is negligible on a
	// LAN.
	p.GossipInterval = 100 * time.Millisecond
	// Our own pings run at the probe cadence; two misses in a row (about a
	// second) make a node Suspect. One lost UDP packet on a LAN is rare, so
	// two is enough to avoid flapping.
	p.PingInterval = 500 * time.Millisecond
	p.SuspectAfter = 2
	return p
}

// ProfileCrossRegion is for a pool that spans regions, with round trips of
// 50–300 ms and occasional loss. It starts from memberlist.DefaultWANConfig,
// built for Consul's global server pool, and makes detection faster where
// that is safe: a killed node is Suspect in about 6 s and Dead in about
// 15–20 s in a small pool.
func ProfileCrossRegion() Profile {
	p := fromMemberlist(ProfileNameCrossRegion, memberlist.DefaultWANConfig())
	// Probe every 2 s instead of 5 s: a federation has tens of nodes, not
	// thousands, so the extra probes are cheap, and 5 s probes put failure
	// detection near a minute.
	p.ProbeInterval = 2 * time.Second
	// 1 s (down from 3 s) is still three times an intercontinental round
	// trip; it must stay under ProbeInterval to leave time for indirect
	// probes.
	p.ProbeTimeout = time.Second
	// SuspicionMult stays at the WAN value 6: a suspect node gets at least
	// 12 s to refute, so a burst of loss on a long link does not kill it.
	//
	// A TCP handshake across regions takes one round trip; 10 s (down from
	// 30 s) covers three SYN retransmissions and keeps a join to a dead
	// seed from stalling for half a minute.
	p.TCPTimeout = 10 * time.Second
	// Ping at the probe cadence but wait for three misses (about 6 s): a
	// single lost UDP packet is common on long links.
	p.PingInterval = 2 * time.Second
	p.SuspectAfter = 3
	return p
}

// ProfileTest is for tests on loopback: everything is fast, so a killed
// node is Suspect in about 0.3 s and Dead in about 1–1.5 s, with enough
// margin not to flap on a loaded machine running the race detector.
func ProfileTest() Profile {
	p := fromMemberlist(ProfileNameTest, memberlist.DefaultLocalConfig())
	p.ProbeInterval = 200 * time.Millisecond
	// Loopback answers in microseconds; 100 ms is for a loaded CI machine.
	p.ProbeTimeout = 100 * time.Millisecond
	// Dead after 3 × 200 ms of suspicion in a small pool.
	p.SuspicionMult = 3
	p.SuspicionMaxTimeoutMult = 2
	// A loaded test machine must not stretch probes eightfold.
	p.AwarenessMaxMultiplier = 2
	p.GossipInterval = 20 * time.Millisecond
	p.GossipToTheDeadTime = 2 * time.Second
	p.PushPullInterval = time.Second
	p.TCPTimeout = 2 * time.Second
	p.PingInterval = 100 * time.Millisecond
	p.SuspectAfter = 2
	return p
}

// ProfileDev is for `meridian dev`: a hub and a few members as processes
// on one machine. Loopback is fast and the pool is tiny, so a killed member
// is Suspect in about half a second and Dead in about 1.5–2.5 s, while a
// busy laptop (builds, tests) does not make healthy members flap: probes
// wait 150 ms, and a loaded node may slow its own probing fourfold.
func ProfileDev() Profile {
	p := fromMemberlist(ProfileNameDev, memberlist.DefaultLocalConfig())
	p.ProbeInterval = 250 * time.Millisecond
	p.ProbeTimeout = 150 * time.Millisecond
	p.SuspicionMult = 3
	p.SuspicionMaxTimeoutMult = 3
	p.AwarenessMaxMultiplier = 4
	p.GossipInterval = 50 * time.Millisecond
	p.GossipToTheDeadTime = 10 * time.Second
	p.PushPullInterval = 5 * time.Second
	p.TCPTimeout = 5 * time.Second
	p.PingInterval = 200 * time.Millisecond
	p.SuspectAfter = 2
	return p
}

// ProfileNamed returns the profile with the given name (for config files
// and flags).
func ProfileNamed(name string) (Profile, error) {
	switch name {
	case ProfileNameSameDC:
		return ProfileSameDC(), nil
	case ProfileNameCrossRegion:
		return ProfileCrossRegion(), nil
	case ProfileNameTest:
		return ProfileTest(), nil
	case ProfileNameDev:
		return ProfileDev(), nil
	default:
		return Profile{}, fmt.Errorf("unknown gossip profile %q: want %q, %q, %q or %q",
			name, ProfileNameSameDC, ProfileNameCrossRegion, ProfileNameDev, ProfileNameTest)
	}
}

// validate checks that the timings make sense together.
func (p Profile) validate() error {
	durations := []struct {
		field string
		value time.Duration
	}{
		{"ProbeInterval", p.ProbeInterval},
		{"ProbeTimeout", p.ProbeTimeout},
		{"GossipInterval", p.GossipInterval},
		{"GossipToTheDeadTime", p.GossipToTheDeadTime},
		{"TCPTimeout", p.TCPTimeout},
	}
	for _, d := range durations {
		if d.value <= 0 {
			return configErr("Profile."+d.field, "must be positive, got %s", d.value)
		}
	}
	if p.ProbeTimeout >= p.ProbeInterval {
		return configErr("Profile.ProbeTimeout", "must be shorter than ProbeInterval (%s), got %s", p.ProbeInterval, p.ProbeTimeout)
	}
	counts := []struct {
		field string
		value int
	}{
		{"SuspicionMult", p.SuspicionMult},
		{"SuspicionMaxTimeoutMult", p.SuspicionMaxTimeoutMult},
		{"AwarenessMaxMultiplier", p.AwarenessMaxMultiplier},
		{"GossipNodes", p.GossipNodes},
		{"RetransmitMult", p.RetransmitMult},
	}
	for _, c := range counts {
		if c.value < 1 {
			return configErr("Profile."+c.field, "must be at least 1, got %d", c.value)
		}
	}
	if p.IndirectChecks < 0 {
		return configErr("Profile.IndirectChecks", "must not be negative, got %d", p.IndirectChecks)
	}
	// Zero disables push/pull in memberlist; that is allowed but unwise.
	if p.PushPullInterval < 0 {
		return configErr("Profile.PushPullInterval", "must not be negative, got %s", p.PushPullInterval)
	}
	if p.PingInterval < 0 {
		return configErr("Profile.PingInterval", "must not be negative, got %s", p.PingInterval)
	}
	if p.PingInterval > 0 && p.SuspectAfter < 1 {
		return configErr("Profile.SuspectAfter", "must be at least 1 when PingInterval is set, got %d", p.SuspectAfter)
	}
	return nil
}
