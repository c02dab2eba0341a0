package gossip

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Why this package detects Suspect itself.
//
// memberlist knows when it suspects a node, but does not tell: its
// Node.State field is never updated (the state lives in a private field
// that shadows it; memberlist issue #266), Members() omits dead and left
// nodes and does not distinguish suspect ones, and no delegate sees suspect
// messages — the EventDelegate only reports joins, updates and leaves, the
// PingDelegate only successful direct probes, the AliveDelegate only alive
// messages. Polling Members() for m.State therefore cannot work.
//
// So the Gossip runs its own small detector on top, and memberlist stays
// the authority for everything else:
//
//   - Alive, Dead and Left come from memberlist's EventDelegate (join →
//     Alive; leave → Left when the node's meta announced a graceful leave,
//     Dead otherwise).
//   - Suspect comes from direct pings: every Profile.PingInterval, the
//     watcher goroutine pings every node that is Alive or Suspect with
//     memberlist's own Ping (the same encrypted UDP ping its prober uses,
//     waiting Profile.ProbeTimeout). Profile.SuspectAfter misses in a row
//     make the node Suspect; one answer makes it Alive again.
//
// Suspect is thus this node's own view ("I cannot reach it directly"),
// which is what a hub combining gossip with stream heartbeats wants. It
// comes well before memberlist's Dead, which waits for indirect probes and a
// suspicion timeout. The cost is one small UDP round trip per node per
// PingInterval, O(N) per node: fine for a federation of tens of nodes; a
// pool of thousands would ping only from hub nodes (set PingInterval to 0
// on members).

// watch runs the suspicion pings and forgets long-dead nodes. It is owned by
// the Gossip: Start starts it, Close stops it through g.stop and waits for
// it through g.wg. A ping round ends within Profile.ProbeTimeout, so Close
// waits at most that long.
func (g *Gossip) watch() {
	interval := g.cfg.Profile.PingInterval
	pinging := interval > 0
	if !pinging {
		// Still forget dead nodes; there is no hurry.
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			if pinging {
				g.pingRound()
			}
			g.forgetDead(now)
		}
	}
}

// pingTarget is a node to ping: its name and the gossip address it had
// when the round started.
type pingTarget struct {
	name string
	addr string
	udp  *net.UDPAddr
}

// pingTargets lists the other nodes that are Alive or Suspect.
func (g *Gossip) pingTargets() []pingTarget {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []pingTarget
	for name, r := range g.members {
		if r.local || (r.member.State != StateAlive && r.member.State != StateSuspect) {
			continue
		}
		ap, err := netip.ParseAddrPort(r.member.Addr)
		if err != nil {
			// memberlist addresses are always ip:port; nothing to ping.
			continue
		}
		out = append(out, pingTarget{name: name, addr: r.member.Addr, udp: net.UDPAddrFromAddrPort(ap)})
	}
	return out
}

// pingRound pings every target at once and records the answers. The
// goroutines belong to the round, which waits for all of them; each one
// ends within Profile.ProbeTimeout (memberlist's Ping bounds its wait).
func (g *Gossip) pingRound() {
	targets := g.pingTargets()
	if len(targets) == 0 {
		return
	}
	answered := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			_, err := g.ml.Ping(t.name, t.udp)
			answered[i] = err == nil
		})
	}
	wg.Wait()
	g.recordPings(targets, answered, time.Now())
}

// recordPings applies a round's answers: a miss counts towards Suspect, an
// answer clears the count and revives a Suspect node. A node whose state or
// address changed during the round (memberlist declared it dead, or it came
// back elsewhere) is left alone: the answer was about the old one.
func (g *Gossip) recordPings(targets []pingTarget, answered []bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, t := range targets {
		r, ok := g.members[t.name]
		if !ok || r.member.Addr != t.addr ||
			(r.member.State != StateAlive && r.member.State != StateSuspect) {
			continue
		}
		if answered[i] {
			r.failures = 0
			if r.member.State == StateSuspect {
				g.setStateLocked(r, StateAlive, EventAlive, now)
			}
			continue
		}
		r.failures++
		if r.member.State == StateAlive && r.failures >= g.cfg.Profile.SuspectAfter {
			g.setStateLocked(r, StateSuspect, EventSuspect, now)
		}
	}
}

// setStateLocked moves a record to a new state and publishes the event.
// g.mu must be held.
func (g *Gossip) setStateLocked(r *record, state State, typ EventType, now time.Time) {
	prev := r.member.State
	r.member.State, r.member.Since = state, now
	if g.subs != nil {
		g.publishLocked(Event{Type: typ, Member: r.snapshot(), Prev: prev})
	}
}
