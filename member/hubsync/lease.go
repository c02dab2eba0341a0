package hubsync

import (
	"context"
	"sync"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Defaults of the member's side of singleton leases.
const (
	// DefaultClockDrift is the clock-rate drift the member allows for
	// between itself and the hub: 1% of the lease (real clocks drift by
	// well under 0.1%).
	DefaultClockDrift = 0.01
	// sentRenewals is how many renewal send times the member remembers;
	// a grant for an older one is ignored.
	sentRenewals = 64
)

// Lease is the member's view of its singleton lease (docs/failover.md,
// "Fencing"). A grant for the renewal sent at t_send with duration L makes
// the lease held until t_send + L − margin − drift·L, measured on the
// member's own monotonic clock; the member's singleton pods must have
// begun stopping by then. It is safe for concurrent use.
type Lease struct {
	margin func(lease time.Duration) time.Duration
	drift  float64
	now    func() time.Time

	mu        sync.Mutex
	seq       int64               // last seq handed out
	sent      map[int64]time.Time // seq → when its renewal was sent
	until     time.Time           // held until (zero: never granted)
	lease     time.Duration       // the last grant's duration
	renew     time.Duration       // the hub's renew interval
	floors    map[string]int64
	timer     *time.Timer // fires at until
	listeners []func()
	extended  []func(until time.Time, margin time.Duration)
	enforcer  func(floors map[string]int64) map[string]int64
}

// LeaseConfig configures a Lease.
type LeaseConfig struct {
	// Margin is the member's safety margin for a lease of the given
	// length (default: a fifth of it). Stopping the pods must fit in it.
	Margin func(lease time.Duration) time.Duration
	// ClockDrift is the allowed clock-rate drift (default DefaultClockDrift).
	ClockDrift float64
	// Now is the clock (default time.Now); only differences are used.
	Now func() time.Time
}

// NewLease returns a lease that is not held.
func NewLease(cfg LeaseConfig) *Lease {
	if cfg.Margin == nil {
		cfg.Margin = func(l time.Duration) time.Duration { return l / 5 }
	}
	if cfg.ClockDrift <= 0 {
		cfg.ClockDrift = DefaultClockDrift
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Lease{margin: cfg.Margin, drift: cfg.ClockDrift, now: cfg.Now, sent: map[int64]time.Time{}}
}

// next numbers a renewal about to be sent and records its send time. The
// time is taken before the message leaves, so the lease is counted from no
// later than the real send.
func (l *Lease) next() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.sent[l.seq] = l.now()
	delete(l.sent, l.seq-sentRenewals)
	return l.seq
}

// Granted applies a grant from the hub. It reports whether the grant was
// for a renewal this member sent (others are ignored).
func (l *Lease) Granted(g *meridianv1.LeaseGrant) bool {
	l.mu.Lock()
	sentAt, ok := l.sent[g.GetSeq()]
	if !ok || g.GetDurationMs() <= 0 {
		l.mu.Unlock()
		return false
	}
	d := time.Duration(g.GetDurationMs()) * time.Millisecond
	until := sentAt.Add(d - l.margin(d) - time.Duration(l.drift*float64(d)))
	changed := !floorsEqual(l.floors, g.GetMinEpochs())
	wasHeld := l.heldLocked()
	var extended []func(time.Time, time.Duration)
	if until.After(l.until) {
		l.until = until
		extended = append(extended, l.extended...)
	}
	l.lease = d
	l.renew = time.Duration(g.GetRenewIntervalMs()) * time.Millisecond
	l.floors = g.GetMinEpochs()
	changed = changed || wasHeld != l.heldLocked()
	l.armLocked()
	notify := l.listenersIfLocked(changed)
	margin := l.margin(d)
	l.mu.Unlock()
	// The new end goes out before the listeners hear that the lease is
	// held: a pod they start is covered by it.
	for _, f := range extended {
		f(until, margin)
	}
	for _, f := range notify {
		f()
	}
	return true
}

// OnExtend registers f, called (never under a lock) with the lease's new
// end and the member's margin for it whenever a grant extends the lease,
// before Subscribe's listeners hear of the grant. Calls from two grants
// may overlap: keep the latest end. The fence watchdog
// (member/fence/watchdog) publishes its deadline from it.
func (l *Lease) OnExtend(f func(until time.Time, margin time.Duration)) {
	l.mu.Lock()
	l.extended = append(l.extended, f)
	l.mu.Unlock()
}

// Held reports whether the lease is held now.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked()
}

func (l *Lease) heldLocked() bool { return !l.until.IsZero() && l.now().Before(l.until) }

// Remaining is how long the lease is still held (0 if it is not).
func (l *Lease) Remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.until.IsZero() {
		return 0
	}
	return max(0, l.until.Sub(l.now()))
}

// MinEpoch is the epoch a copy of workload ("namespace/Kind/name") must
// carry to run here (0: no floor).
func (l *Lease) MinEpoch(workload string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.floors[workload]
}

// StopGrace is how long a singleton pod the lease no longer covers gets to
// stop before it is killed: half the member's margin for the last lease
// granted (1s before any grant), so that its processes are gone a half
// margin before the lease ends.
func (l *Lease) StopGrace() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease == 0 {
		return time.Second
	}
	return l.margin(l.lease) / 2
}

// RenewInterval is how often to renew: the hub's wish, or a quarter of the
// lease; 0 before the first grant.
func (l *Lease) RenewInterval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.renew > 0 {
		return l.renew
	}
	return l.lease / 4
}

// SetEnforcer sets how the member tells which epoch floors it enforces
// (no pod of the workload below the floor runs any more): f gets the
// current floors and returns those enforced. Renewals report them
// (LeaseRenewal.fenced), which lets the hub move a singleton off this
// cluster while its lease holds. Without an enforcer nothing is reported.
func (l *Lease) SetEnforcer(f func(floors map[string]int64) map[string]int64) {
	l.mu.Lock()
	l.enforcer = f
	l.mu.Unlock()
}

// fenced is what the next renewal reports.
func (l *Lease) fenced() map[string]int64 {
	l.mu.Lock()
	f := l.enforcer
	floors := make(map[string]int64, len(l.floors))
	for w, ep := range l.floors {
		if ep > 0 {
			floors[w] = ep
		}
	}
	l.mu.Unlock()
	if f == nil || len(floors) == 0 {
		return nil
	}
	return f(floors)
}

// Subscribe registers f, called (from another goroutine, never under a
// lock) whenever Held or MinEpoch may have changed. f must not block.
func (l *Lease) Subscribe(f func()) {
	l.mu.Lock()
	l.listeners = append(l.listeners, f)
	l.mu.Unlock()
}

// armLocked sets the timer that tells the listeners when the lease ends.
func (l *Lease) armLocked() {
	if l.timer != nil {
		l.timer.Stop()
	}
	wait := l.until.Sub(l.now())
	if wait <= 0 {
		l.timer = nil
		return
	}
	l.timer = time.AfterFunc(wait, l.expired)
}

func (l *Lease) expired() {
	l.mu.Lock()
	if l.heldLocked() {
		l.armLocked() // extended in the meantime
		l.mu.Unlock()
		return
	}
	notify := l.listenersIfLocked(true)
	l.mu.Unlock()
	for _, f := range notify {
		f()
	}
}

// Stop stops the lease's timer (the lease is then never reported expired
// by a callback; Held still answers).
func (l *Lease) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

func (l *Lease) listenersIfLocked(changed bool) []func() {
	if !changed {
		return nil
	}
	return append([]func(){}, l.listeners...)
}

func floorsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// renewLoop renews the lease once the hub has granted the hello's request
// (a hub that does not grant leases never does, and gets no renewals), then
// every RenewInterval.
func (s *session) renewLoop(ctx context.Context) error {
	l := s.c.cfg.Lease
	if l == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case <-s.leased:
	}
	for {
		every := l.RenewInterval()
		if every <= 0 {
			every = time.Second
		}
		if !sleepCtx(ctx, every) {
			return nil
		}
		// What is fenced is read before the renewal is numbered: a report is
		// never newer than the renewal that carries it.
		fenced := l.fenced()
		msg := &meridianv1.SyncRequest{Message: &meridianv1.SyncRequest_LeaseRenewal{LeaseRenewal: &meridianv1.LeaseRenewal{Seq: l.next(), Fenced: fenced}}}
		if stop, err := s.sendLoopMsg(msg); stop {
			return err
		}
	}
}
