package gossip

import (
	"fmt"
	"time"
)

// This file holds the two state vocabularies: a node's gossip State, and a
// member cluster's Health, which the hub derives from the gossip State and
// the Sync stream heartbeat with Combine.

// State is a node's gossip state as this node sees it.
type State int

// Gossip states. memberlist is the authority for Alive, Dead and Left;
// Suspect comes from this package's own direct pings (see suspicion.go).
const (
	// StateAlive: memberlist lists the node and it answers our pings.
	StateAlive State = iota
	// StateSuspect: memberlist still lists the node, but it has missed
	// Profile.SuspectAfter direct pings in a row. It may come back (Alive)
	// or be declared Dead.
	StateSuspect
	// StateDead: memberlist's failure detector declared the node failed
	// (its suspicion timed out without a refutation).
	StateDead
	// StateLeft: the node left on purpose (Gossip.Leave).
	StateLeft
)

// String returns the state as operators read it.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "Alive"
	case StateSuspect:
		return "Suspect"
	case StateDead:
		return "Dead"
	case StateLeft:
		return "Left"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// Health is a member cluster's health as the hub judges it from two
// independent signals: gossip (this package: "can the pool reach it?") and
// the Sync stream heartbeat ("is it talking to the hub?"). The failover
// controller acts on it; the step after Unreachable, Fenced, is the
// controller's decision, not a health reading.
type Health int

// Health values, from best to worst.
const (
	// HealthReady: gossip says Alive and the heartbeat is fresh.
	HealthReady Health = iota
	// HealthSuspect: one signal is bad, or gossip itself is unsure.
	// Nothing is moved off a Suspect cluster; it is watched.
	HealthSuspect
	// HealthUnreachable: both signals agree the cluster is gone. Failover
	// may start after its toleration.
	HealthUnreachable
)

// String returns the health as the Cluster condition and metrics show it.
func (h Health) String() string {
	switch h {
	case HealthReady:
		return "Ready"
	case HealthSuspect:
		return "Suspect"
	case HealthUnreachable:
		return "Unreachable"
	default:
		return fmt.Sprintf("Health(%d)", int(h))
	}
}

// Combine judges a member's health from its gossip state and the time of
// its last stream heartbeat. It is a pure function of its arguments.
//
// A heartbeat is fresh when lastHeartbeat is set (not the zero time) and
// now - lastHeartbeat <= heartbeatTimeout; otherwise it is late. A
// heartbeat from the future (clock skew between the caller's clocks) counts
// as fresh; a non-positive heartbeatTimeout makes every heartbeat late.
//
// The rules, in order:
//
//	gossip         heartbeat   health
//	Alive          fresh       Ready
//	Alive          late        Suspect      (stream down, pool still sees it)
//	Suspect        any         Suspect      (direct pings fail)
//	Dead or Left   fresh       Suspect      (gossip cut off, stream still up)
//	Dead or Left   late        Unreachable
//
// Unreachable needs both signals to agree, so that a broken UDP path alone,
// or a broken stream alone, never triggers a failover; either alone still
// shows as Suspect. A gossip state outside the four above is treated like
// Suspect.
func Combine(gossip State, lastHeartbeat, now time.Time, heartbeatTimeout time.Duration) Health {
	fresh := !lastHeartbeat.IsZero() && heartbeatTimeout > 0 &&
		now.Sub(lastHeartbeat) <= heartbeatTimeout
	switch gossip {
	case StateAlive:
		if fresh {
			return HealthReady
		}
		return HealthSuspect
	case StateDead, StateLeft:
		if fresh {
			return HealthSuspect
		}
		return HealthUnreachable
	default: // StateSuspect, or a state this version does not know
		return HealthSuspect
	}
}
