package gossip

import "fmt"

// EventType says what happened to a node.
type EventType int

// Event types.
const (
	// EventJoin: a node joined, or came back from Dead or Left.
	EventJoin EventType = iota
	// EventUpdate: a node changed its meta (addresses, version, ...).
	EventUpdate
	// EventSuspect: a node missed Profile.SuspectAfter pings in a row.
	EventSuspect
	// EventAlive: a Suspect node answered a ping again.
	EventAlive
	// EventDead: memberlist declared a node failed.
	EventDead
	// EventLeft: a node left gracefully.
	EventLeft
)

// String returns the event type as logs show it.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "Join"
	case EventUpdate:
		return "Update"
	case EventSuspect:
		return "Suspect"
	case EventAlive:
		return "Alive"
	case EventDead:
		return "Dead"
	case EventLeft:
		return "Left"
	default:
		return fmt.Sprintf("EventType(%d)", int(t))
	}
}

// Event is a change of one node, as this node saw it.
type Event struct {
	// Type is what happened.
	Type EventType
	// Member is the node after the change; Member.Since is when it happened.
	Member Member
	// Prev is the node's state before the change (equal to Member.State
	// for EventUpdate; StateDead for the first EventJoin of a node).
	Prev State
	// Missed counts the events this subscriber lost, because its channel
	// was full, since it last received one. A subscriber that sees
	// Missed > 0 should read Members again rather than trust its own
	// picture.
	Missed int
}

// subscriber is one Subscribe call. Its fields are guarded by Gossip.mu.
type subscriber struct {
	ch     chan Event
	missed int
}

// deliver hands ev to the subscriber without ever blocking: when the
// channel is full, the oldest queued event is dropped to make room (the
// newest state is what a late reader needs), and the loss is counted in the
// next delivered event's Missed. Called with Gossip.mu held, which orders
// the events of all publishers.
func (s *subscriber) deliver(ev Event) {
	for range 2 {
		ev.Missed = s.missed
		select {
		case s.ch <- ev:
			s.missed = 0
			return
		default:
		}
		// Full: drop the oldest, unless the reader just took it. The
		// dropped event's own Missed count carries over, so that the
		// counts the reader sees add up to every event it lost.
		select {
		case old := <-s.ch:
			s.missed += 1 + old.Missed
		default:
		}
	}
	// Still full after making room: a reader cannot refill the channel, so
	// this only happens if the buffer is tiny; count the event as missed.
	s.missed++
}

// Subscribe returns a channel of events and a function that cancels the
// subscription and closes the channel. Every event after the call is
// delivered, in order, unless the subscriber falls more than
// Config.EventBuffer events behind: then the oldest are dropped (see
// Event.Missed). A subscriber never slows gossip down. The channel is also
// closed by Close; Subscribe after Close returns a closed channel.
// cancel may be called more than once, from any goroutine.
func (g *Gossip) Subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, g.cfg.EventBuffer)}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.subs == nil {
		close(s.ch)
		return s.ch, func() {}
	}
	g.subs[s] = struct{}{}
	cancel := func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if _, ok := g.subs[s]; ok {
			delete(g.subs, s)
			close(s.ch)
		}
	}
	return s.ch, cancel
}

// publishLocked sends ev to every subscriber. g.mu must be held.
func (g *Gossip) publishLocked(ev Event) {
	g.log.Debug("gossip event", "type", ev.Type, "node", ev.Member.Name,
		"state", ev.Member.State, "prev", ev.Prev)
	for s := range g.subs {
		// Each subscriber gets its own copy of the address map.
		e := ev
		e.Member.Meta = ev.Member.Meta.clone()
		s.deliver(e)
	}
}

// closeSubscribersLocked closes every subscriber's channel; later
// Subscribe calls get a closed channel. g.mu must be held.
func (g *Gossip) closeSubscribersLocked() {
	for s := range g.subs {
		close(s.ch)
	}
	g.subs = nil
}
