package gossip

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// federation is the test topology: a hub in region-a/dc-a1, a member in the
// same region's second datacenter and one in another region.
type federation struct {
	hub, a2, b1 *Gossip
	all         []*Gossip
}

// startFederation starts the three nodes and joins the members to the hub.
func startFederation(t *testing.T) federation {
	t.Helper()
	key := newKey(t)
	f := federation{
		hub: startNode(t, nodeConfig("hub", RoleHub, "region-a", "dc-a1", key)),
		a2:  startNode(t, nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", key)),
		b1:  startNode(t, nodeConfig("member-b1", RoleMember, "region-b", "dc-b1", key)),
	}
	f.all = []*Gossip{f.hub, f.a2, f.b1}
	join(t, f.a2, f.hub)
	join(t, f.b1, f.hub)
	for _, observer := range f.all {
		for _, node := range f.all {
			seesState(t, observer, node.cfg.Name, StateAlive)
		}
	}
	return f
}

func TestThreeNodesSeeEachOtherWithTheirMeta(t *testing.T) {
	start := time.Now()
	f := startFederation(t)
	t.Logf("three nodes converged in %s", time.Since(start))

	for _, observer := range f.all {
		members := observer.Members()
		if len(members) != 3 {
			t.Fatalf("%s sees %d members, want 3: %s", observer.cfg.Name, len(members), describe(members))
		}
		for _, m := range members {
			var want *Gossip
			for _, n := range f.all {
				if n.cfg.Name == m.Name {
					want = n
				}
			}
			if want == nil {
				t.Fatalf("%s sees unknown member %q", observer.cfg.Name, m.Name)
			}
			if !m.Meta.equal(want.cfg.meta()) {
				t.Errorf("%s sees %s with meta %+v, want %+v", observer.cfg.Name, m.Name, m.Meta, want.cfg.meta())
			}
			if m.Addr != want.LocalAddr() {
				t.Errorf("%s sees %s at %s, want %s", observer.cfg.Name, m.Name, m.Addr, want.LocalAddr())
			}
			if m.Since.IsZero() {
				t.Errorf("%s sees %s with no Since", observer.cfg.Name, m.Name)
			}
		}
	}
	b1, _ := f.hub.Member("member-b1")
	if b1.Role != RoleMember || b1.Region != "region-b" || b1.Datacenter != "dc-b1" || b1.Cluster != "cluster-member-b1" {
		t.Errorf("hub sees member-b1 as %+v", b1)
	}
}

func TestMetaUpdatePropagates(t *testing.T) {
	f := startFederation(t)
	events, cancel := f.hub.Subscribe()
	defer cancel()

	meta := f.a2.cfg.meta()
	meta.Addresses["api"] = "127.0.0.2:7800"
	meta.Addresses["metrics"] = "127.0.0.2:9100"
	meta.Version = "v0.2.0"
	if err := f.a2.UpdateMeta(meta, 5*time.Second); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	ev := waitEvent(t, events, "an update of member-a2", isEvent(EventUpdate, "member-a2"))
	if !ev.Member.Meta.equal(meta) || ev.Member.State != StateAlive || ev.Prev != StateAlive {
		t.Errorf("update event %+v, want meta %+v and Alive", ev, meta)
	}
	for _, observer := range []*Gossip{f.hub, f.b1, f.a2} {
		eventually(t, observer.cfg.Name+" to see the new meta", func() (bool, string) {
			m, _ := observer.Member("member-a2")
			return m.Meta.equal(meta), fmt.Sprintf("%+v", m.Meta)
		})
	}
	// Changing a returned member must not change the Gossip's picture.
	m, _ := f.hub.Member("member-a2")
	m.Addresses["api"] = "mutated:1"
	if again, _ := f.hub.Member("member-a2"); again.Addresses["api"] != "127.0.0.2:7800" {
		t.Errorf("Member returned a shared map: now %q", again.Addresses["api"])
	}

	bad := meta.clone()
	bad.Region = "Not A Label"
	var cfgErr *ConfigError
	if err := f.a2.UpdateMeta(bad, time.Second); !errors.As(err, &cfgErr) || cfgErr.Field != "Region" {
		t.Errorf("UpdateMeta with a bad region: %v, want a ConfigError on Region", err)
	}
}

func TestAbruptStopGoesSuspectThenDead(t *testing.T) {
	f := startFederation(t)
	hubEvents, cancelHub := f.hub.Subscribe()
	defer cancelHub()
	a2Events, cancelA2 := f.a2.Subscribe()
	defer cancelA2()

	killed := time.Now()
	if err := f.b1.Close(); err != nil { // Shutdown without Leave
		t.Fatalf("Close: %v", err)
	}
	for _, w := range []struct {
		observer string
		events   <-chan Event
	}{{"hub", hubEvents}, {"member-a2", a2Events}} {
		suspect := waitEvent(t, w.events, w.observer+": member-b1 Suspect", isEvent(EventSuspect, "member-b1"))
		if suspect.Prev != StateAlive || suspect.Member.State != StateSuspect {
			t.Errorf("%s: suspect event %+v", w.observer, suspect)
		}
		dead := waitEvent(t, w.events, w.observer+": member-b1 Dead", isEvent(EventDead, "member-b1"))
		if dead.Member.State != StateDead || dead.Member.Role != RoleMember || dead.Member.Region != "region-b" {
			t.Errorf("%s: dead event %+v", w.observer, dead)
		}
		t.Logf("%s saw member-b1 Suspect after %s, Dead after %s (prev %s)",
			w.observer, suspect.Member.Since.Sub(killed).Round(time.Millisecond),
			dead.Member.Since.Sub(killed).Round(time.Millisecond), dead.Prev)
	}
	m, ok := f.hub.Member("member-b1")
	if !ok || m.State != StateDead || !m.Since.After(killed) {
		t.Errorf("hub's record of member-b1: %+v", m)
	}
	// The survivors still see each other.
	if m, _ := f.hub.Member("member-a2"); m.State != StateAlive {
		t.Errorf("hub sees member-a2 %s", m.State)
	}
}

func TestGracefulLeaveShowsLeft(t *testing.T) {
	f := startFederation(t)
	events, cancel := f.hub.Subscribe()
	defer cancel()

	if err := f.b1.Leave(5 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	ev := waitEvent(t, events, "member-b1 Left", func(ev Event) bool {
		if ev.Member.Name == "member-b1" && ev.Type == EventDead {
			t.Errorf("hub saw member-b1 Dead, want Left")
		}
		return isEvent(EventLeft, "member-b1")(ev)
	})
	if ev.Member.State != StateLeft {
		t.Errorf("left event %+v", ev)
	}
	seesState(t, f.a2, "member-b1", StateLeft)
	if self := f.b1.LocalMember(); self.State != StateLeft {
		t.Errorf("member-b1 sees itself %s, want Left", self.State)
	}
	if err := f.b1.UpdateMeta(f.b1.cfg.meta(), time.Second); !errors.Is(err, ErrLeft) {
		t.Errorf("UpdateMeta after Leave: %v, want ErrLeft", err)
	}
	if err := f.b1.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	// Closing after the leave changes nothing for the others.
	if err := f.b1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if m, _ := f.hub.Member("member-b1"); m.State != StateLeft {
		t.Errorf("after Close, hub sees member-b1 %s, want Left", m.State)
	}
}

func TestMemberRejoinsARestartedHub(t *testing.T) {
	key := newKey(t)
	hubCfg := nodeConfig("hub", RoleHub, "region-a", "dc-a1", key)
	hub := startNode(t, hubCfg)
	hubAddr := hub.LocalAddr()

	// The member only knows the hub as a seed: Start joins it.
	memberCfg := nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", key)
	memberCfg.Seeds = []string{hubAddr}
	memberCfg.RejoinInterval = 100 * time.Millisecond
	member := startNode(t, memberCfg)
	seesState(t, member, "hub", StateAlive)
	seesState(t, hub, "member-a2", StateAlive)

	// The hub dies; the member notices.
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	seesState(t, member, "hub", StateDead)

	// A new hub process on the same address knows nobody; the member's
	// joiner finds it.
	_, port, err := splitHostPort(hubAddr)
	if err != nil {
		t.Fatal(err)
	}
	hubCfg.BindPort = port
	restarted := time.Now()
	hub2 := startNode(t, hubCfg)
	seesState(t, member, "hub", StateAlive)
	seesState(t, hub2, "member-a2", StateAlive)
	t.Logf("member and restarted hub saw each other after %s", time.Since(restarted).Round(time.Millisecond))
}

func TestSlowSubscriberDoesNotBlockGossip(t *testing.T) {
	key := newKey(t)
	hubCfg := nodeConfig("hub", RoleHub, "region-a", "dc-a1", key)
	hubCfg.EventBuffer = 2
	hub := startNode(t, hubCfg)
	member := startNode(t, nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", key))
	stuck, cancel := hub.Subscribe() // never read until the end
	defer cancel()
	join(t, member, hub)

	meta := member.cfg.meta()
	for i := range 10 {
		meta.Version = "v0.0." + strconv.Itoa(i)
		if err := member.UpdateMeta(meta, 5*time.Second); err != nil {
			t.Fatalf("UpdateMeta %d: %v", i, err)
		}
	}
	eventually(t, "the hub to see the last version", func() (bool, string) {
		m, _ := hub.Member("member-a2")
		return m.Version == "v0.0.9", m.Version
	})
	// The stuck subscriber holds the newest events, and knows it missed some.
	var got []Event
	for len(stuck) > 0 {
		got = append(got, <-stuck)
	}
	if len(got) != 2 {
		t.Fatalf("stuck subscriber holds %d events, want 2", len(got))
	}
	last := got[len(got)-1]
	// (Normally the update to v0.0.9 itself; on a loaded machine a
	// suspicion flap may follow it, which carries the same meta.)
	if last.Member.Name != "member-a2" || last.Member.Version != "v0.0.9" {
		t.Errorf("newest held event %v %s %s, want member-a2 at v0.0.9", last.Type, last.Member.Name, last.Member.Version)
	}
	if got[0].Missed+got[1].Missed == 0 {
		t.Errorf("no event reports the dropped ones: %+v", got)
	}
}

func TestLifecycle(t *testing.T) {
	g := startNode(t, nodeConfig("solo", RoleHub, "region-a", "dc-a1", newKey(t)))
	events, cancel := g.Subscribe()
	cancel()
	cancel() // idempotent
	if _, ok := <-events; ok {
		t.Error("cancelled subscription still open")
	}
	open, _ := g.Subscribe()

	self := g.LocalMember()
	if self.Name != "solo" || self.State != StateAlive || self.Addr == "" || self.Role != RoleHub {
		t.Errorf("LocalMember = %+v", self)
	}
	if _, err := g.Join(nil); err == nil {
		t.Error("Join(nil) succeeded")
	}
	if err := g.UpdateMeta(g.cfg.meta(), 0); err == nil {
		t.Error("UpdateMeta with no timeout succeeded")
	}

	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-open; ok {
		t.Error("subscription still open after Close")
	}
	if late, _ := g.Subscribe(); late != nil {
		if _, ok := <-late; ok {
			t.Error("Subscribe after Close returned an open channel")
		}
	}
	for name, err := range map[string]error{
		"Join":       second(g.Join([]string{"127.0.0.1:1"})),
		"UpdateMeta": g.UpdateMeta(g.cfg.meta(), time.Second),
		"Leave":      g.Leave(time.Second),
		"InstallKey": g.InstallKey(newKey(t)),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }
