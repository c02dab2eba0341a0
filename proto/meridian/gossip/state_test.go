package gossip

import (
	"log/slog"
	"testing"
	"time"
)

func TestCombine(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const timeout = 10 * time.Second
	fresh := now.Add(-3 * time.Second)
	edge := now.Add(-timeout) // exactly the timeout old: still fresh
	late := now.Add(-timeout - time.Millisecond)
	future := now.Add(2 * time.Second)
	never := time.Time{}

	tests := []struct {
		name    string
		gossip  State
		last    time.Time
		timeout time.Duration
		want    Health
	}{
		{"alive, fresh heartbeat", StateAlive, fresh, timeout, HealthReady},
		{"alive, heartbeat exactly at the timeout", StateAlive, edge, timeout, HealthReady},
		{"alive, heartbeat from the future", StateAlive, future, timeout, HealthReady},
		{"alive, late heartbeat", StateAlive, late, timeout, HealthSuspect},
		{"alive, never a heartbeat", StateAlive, never, timeout, HealthSuspect},
		{"alive, zero timeout", StateAlive, now, 0, HealthSuspect},
		{"suspect, fresh heartbeat", StateSuspect, fresh, timeout, HealthSuspect},
		{"suspect, late heartbeat", StateSuspect, late, timeout, HealthSuspect},
		{"suspect, never a heartbeat", StateSuspect, never, timeout, HealthSuspect},
		{"dead, fresh heartbeat", StateDead, fresh, timeout, HealthSuspect},
		{"dead, heartbeat exactly at the timeout", StateDead, edge, timeout, HealthSuspect},
		{"dead, late heartbeat", StateDead, late, timeout, HealthUnreachable},
		{"dead, never a heartbeat", StateDead, never, timeout, HealthUnreachable},
		{"left, fresh heartbeat", StateLeft, fresh, timeout, HealthSuspect},
		{"left, late heartbeat", StateLeft, late, timeout, HealthUnreachable},
		{"unknown state, fresh heartbeat", State(42), fresh, timeout, HealthSuspect},
		{"unknown state, late heartbeat", State(42), late, timeout, HealthSuspect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Combine(tt.gossip, tt.last, now, tt.timeout); got != tt.want {
				t.Errorf("Combine(%s, %s, now, %s) = %s, want %s",
					tt.gossip, tt.last.Format(time.TimeOnly), tt.timeout, got, tt.want)
			}
		})
	}
}

func TestHealthAndStateStrings(t *testing.T) {
	for v, want := range map[Health]string{
		HealthReady: "Ready", HealthSuspect: "Suspect", HealthUnreachable: "Unreachable", Health(9): "Health(9)",
	} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(v), v.String(), want)
		}
	}
	for v, want := range map[State]string{
		StateAlive: "Alive", StateSuspect: "Suspect", StateDead: "Dead", StateLeft: "Left", State(9): "State(9)",
	} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(v), v.String(), want)
		}
	}
	for v, want := range map[EventType]string{
		EventJoin: "Join", EventUpdate: "Update", EventSuspect: "Suspect", EventAlive: "Alive",
		EventDead: "Dead", EventLeft: "Left", EventType(9): "EventType(9)",
	} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(v), v.String(), want)
		}
	}
}

// TestSuspicionTransitions drives recordPings directly: misses make a node
// Suspect after SuspectAfter rounds, an answer makes it Alive, and answers
// about a node that changed meanwhile are ignored.
func TestSuspicionTransitions(t *testing.T) {
	g := &Gossip{
		cfg:     Config{Name: "hub", Profile: Profile{SuspectAfter: 2}, EventBuffer: 16},
		log:     slog.New(slog.DiscardHandler),
		members: map[string]*record{},
		subs:    map[*subscriber]struct{}{},
	}
	events, cancel := g.Subscribe()
	defer cancel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g.nodeJoined(nodeInfo{name: "m1", addr: "127.0.0.1:1000"}, now)
	g.nodeJoined(nodeInfo{name: "hub", addr: "127.0.0.1:999"}, now)
	<-events
	<-events
	targets := g.pingTargets()
	if len(targets) != 1 || targets[0].name != "m1" || targets[0].udp.Port != 1000 {
		t.Fatalf("targets = %+v, want only m1", targets)
	}

	round := func(answered bool) { g.recordPings(targets, []bool{answered}, now) }
	expect := func(state State, typ *EventType) {
		t.Helper()
		if m, _ := g.Member("m1"); m.State != state {
			t.Fatalf("m1 is %s, want %s", m.State, state)
		}
		select {
		case ev := <-events:
			if typ == nil || ev.Type != *typ {
				t.Fatalf("unexpected event %s", ev.Type)
			}
		default:
			if typ != nil {
				t.Fatalf("no %s event", *typ)
			}
		}
	}
	suspect, alive, dead := EventSuspect, EventAlive, EventDead

	round(false)
	expect(StateAlive, nil) // one miss is not enough
	round(true)
	round(false)
	expect(StateAlive, nil) // an answer reset the count
	round(false)
	expect(StateSuspect, &suspect)
	round(false)
	expect(StateSuspect, nil) // no repeated events
	round(true)
	expect(StateAlive, &alive)

	// memberlist declares it dead while a round is in flight: the round's
	// answer is about a node that no longer is, and is ignored.
	g.nodeLeft("m1", now)
	expect(StateDead, &dead)
	round(true)
	expect(StateDead, nil)
	// It comes back at a new address; answers for the old address are
	// ignored too.
	g.nodeJoined(nodeInfo{name: "m1", addr: "127.0.0.1:2000"}, now)
	<-events
	round(false)
	round(false)
	expect(StateAlive, nil)

	// Long-dead nodes are forgotten, the local node never.
	g.cfg.DeadRetention = time.Hour
	g.nodeLeft("m1", now)
	<-events
	g.forgetDead(now.Add(30 * time.Minute))
	if _, ok := g.Member("m1"); !ok {
		t.Error("m1 forgotten too early")
	}
	g.forgetDead(now.Add(2 * time.Hour))
	if _, ok := g.Member("m1"); ok {
		t.Error("m1 not forgotten")
	}
	if _, ok := g.Member("hub"); !ok {
		t.Error("local node forgotten")
	}
}
