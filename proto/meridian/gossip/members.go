package gossip

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// This file keeps the Gossip's picture of the pool: one record per node,
// changed by memberlist's callbacks (join, update, leave) and by the
// suspicion pings, and read by Members. Every change of state publishes one
// event, under the same lock, so subscribers see changes in the order they
// were recorded.

// Members returns every node this node knows, itself included, sorted by
// name: live ones (Alive, Suspect) and, for Config.DeadRetention, Dead and
// Left ones. The result is a copy.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, name := range slices.Sorted(maps.Keys(g.members)) {
		out = append(out, g.members[name].snapshot())
	}
	return out
}

// Member returns one node by name.
func (g *Gossip) Member(name string) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.members[name]
	if !ok {
		return Member{}, false
	}
	return r.snapshot(), true
}

// LocalMember returns this node as the others see it.
func (g *Gossip) LocalMember() Member {
	m, _ := g.Member(g.cfg.Name)
	return m
}

// nodeJoined records a node memberlist now lists as alive: a new one, or
// one back from Dead or Left. Called from the event delegate; must not
// block.
func (g *Gossip) nodeJoined(info nodeInfo, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joinedLocked(info, now)
}

// joinedLocked is nodeJoined with g.mu held.
func (g *Gossip) joinedLocked(info nodeInfo, now time.Time) {
	r, ok := g.members[info.name]
	prev := StateDead
	if ok {
		prev = r.member.State
	} else {
		r = &record{local: info.name == g.cfg.Name}
		g.members[info.name] = r
	}
	r.member = Member{Name: info.name, Meta: info.meta, Addr: info.addr, State: StateAlive, Since: now}
	r.leaving = info.leaving
	r.failures = 0
	if g.subs != nil {
		g.publishLocked(Event{Type: EventJoin, Member: r.snapshot(), Prev: prev})
	}
}

// nodeUpdated records a node's new meta. The leaving flag alone changes
// nothing visible, so it is recorded without an event. Called from the
// event delegate; must not block.
func (g *Gossip) nodeUpdated(info nodeInfo, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.members[info.name]
	if !ok {
		// memberlist announces every node with a join first; an update for
		// an unknown node can only follow a forget, so treat it as a join.
		g.joinedLocked(info, now)
		return
	}
	r.leaving = info.leaving
	changed := !r.member.Meta.equal(info.meta) || r.member.Addr != info.addr
	r.member.Meta, r.member.Addr = info.meta, info.addr
	if changed && g.subs != nil {
		g.publishLocked(Event{Type: EventUpdate, Member: r.snapshot(), Prev: r.member.State})
	}
}

// nodeLeft records a node memberlist no longer lists: Left if its meta
// announced a graceful leave, Dead otherwise. Called from the event
// delegate; must not block.
func (g *Gossip) nodeLeft(name string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.members[name]
	if !ok {
		r = &record{member: Member{Name: name}, local: name == g.cfg.Name}
		g.members[name] = r
	}
	state, typ := StateDead, EventDead
	if r.leaving {
		state, typ = StateLeft, EventLeft
	}
	if r.member.State == state {
		return
	}
	r.failures = 0
	g.setStateLocked(r, state, typ, now)
}

// hubAlive reports whether another node with role hub is Alive or Suspect.
// The rejoin loop uses it: a node that sees no hub has lost the federation.
func (g *Gossip) hubAlive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.members {
		if !r.local && r.member.Role == RoleHub &&
			(r.member.State == StateAlive || r.member.State == StateSuspect) {
			return true
		}
	}
	return false
}

// forgetDead drops Dead and Left nodes that have been so for longer than
// Config.DeadRetention. The local node is never forgotten.
func (g *Gossip) forgetDead(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, r := range g.members {
		gone := r.member.State == StateDead || r.member.State == StateLeft
		if gone && !r.local && now.Sub(r.member.Since) > g.cfg.DeadRetention {
			delete(g.members, name)
			g.log.Debug("forgot gossip node", "node", name, "state", r.member.State)
		}
	}
}

// describe renders the members for logs and test failures.
func describe(members []Member) string {
	var b strings.Builder
	for i, m := range members {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name + "=" + m.State.String())
	}
	return b.String()
}
