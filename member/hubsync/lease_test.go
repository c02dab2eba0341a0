package hubsync_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/hubsync"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// fakeClock is a settable clock whose readings keep the monotonic reading.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func grant(seq int64, d time.Duration, floors map[string]int64) *meridianv1.LeaseGrant {
	return &meridianv1.LeaseGrant{Seq: seq, DurationMs: d.Milliseconds(), MinEpochs: floors}
}

func TestLeaseCountsFromTheSendOfTheGrantedRenewal(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	l := hubsync.NewLease(hubsync.LeaseConfig{Now: clk.Now})
	defer l.Stop()
	if l.Held() {
		t.Fatal("a new lease is held")
	}
	seq := hubsync.NextRenewal(l) // sent at t0
	clk.Advance(300 * time.Millisecond)
	if l.Granted(grant(seq+1, 10*time.Second, nil)) {
		t.Fatal("a grant of a renewal never sent was applied")
	}
	if !l.Granted(grant(seq, 10*time.Second, nil)) || !l.Held() {
		t.Fatal("the grant did not make the lease held")
	}
	// Held until t0 + L − margin (L/5) − drift (1% of L) = t0 + 7.9s.
	if got, want := l.Remaining(), 7600*time.Millisecond; got != want {
		t.Fatalf("Remaining = %s, want %s", got, want)
	}
	if l.StopGrace() != time.Second {
		t.Fatalf("StopGrace = %s, want half the margin, 1s", l.StopGrace())
	}
	// A later renewal sent at t0+1s, granted: t0+8.9s.
	clk.Advance(700 * time.Millisecond)
	seq2 := hubsync.NextRenewal(l)
	// A late grant of the first renewal does not pull the end back.
	l.Granted(grant(seq2, 10*time.Second, map[string]int64{"default/StatefulSet/db": 3}))
	l.Granted(grant(seq, 10*time.Second, map[string]int64{"default/StatefulSet/db": 3}))
	if got, want := l.Remaining(), 7900*time.Millisecond; got != want {
		t.Fatalf("Remaining after a renewal = %s, want %s", got, want)
	}
	if l.MinEpoch("default/StatefulSet/db") != 3 || l.MinEpoch("default/StatefulSet/other") != 0 {
		t.Fatal("MinEpoch does not follow the grant's floors")
	}
	clk.Advance(7900*time.Millisecond - time.Nanosecond)
	if !l.Held() {
		t.Fatal("the lease ended early")
	}
	clk.Advance(time.Nanosecond)
	if l.Held() {
		t.Fatal("the lease is held past t_send + L − margin − drift")
	}
}

func TestLeaseTellsSubscribersWhenItEnds(t *testing.T) {
	l := hubsync.NewLease(hubsync.LeaseConfig{})
	defer l.Stop()
	var calls atomic.Int32
	l.Subscribe(func() { calls.Add(1) })
	seq := hubsync.NextRenewal(l)
	l.Granted(grant(seq, 200*time.Millisecond, nil))
	if calls.Load() != 1 || !l.Held() {
		t.Fatalf("after the grant: %d calls, held %v; want 1 call, held", calls.Load(), l.Held())
	}
	eventually(t, "the end of the lease", func() bool { return calls.Load() == 2 })
	if l.Held() {
		t.Fatal("subscribers were told before the lease ended")
	}
}

// The member asks for a lease in its hello, renews it once the hub grants
// it, and stops holding it lease − margin − drift after it sent the last
// renewal the hub granted.
func TestLeaseOverTheSyncStream(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	lease := hubsync.NewLease(hubsync.LeaseConfig{})
	cfg.Lease = lease
	_, s, _ := e.start(t, cfg)
	if s.hello.GetLeaseSeq() == 0 {
		t.Fatal("the hello asks for no lease")
	}
	const L = time.Second
	reply := func(seq int64) {
		s.send(t, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_LeaseGrant{LeaseGrant: &meridianv1.LeaseGrant{
			Seq: seq, DurationMs: L.Milliseconds(), RenewIntervalMs: 50,
		}}})
	}
	reply(s.hello.GetLeaseSeq())
	eventually(t, "the lease", lease.Held)
	// The hub answers every renewal for a while.
	answered := 0
	var last renewal
	deadline := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		pending := append([]renewal(nil), s.renewals[answered:]...)
		s.mu.Unlock()
		for _, r := range pending {
			reply(r.seq)
			last = r
			answered++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if answered < 5 {
		t.Fatalf("%d renewals in 600ms at a 50ms interval", answered)
	}
	if !lease.Held() {
		t.Fatal("the lease lapsed while the hub answered every renewal")
	}
	// The hub goes silent: the lease ends no later than the receipt of the
	// last granted renewal + L − margin − drift.
	eventually(t, "the lease to lapse", func() bool { return !lease.Held() })
	lapsed := time.Now()
	if limit := last.at.Add(L - L/5 - L/100); lapsed.After(limit.Add(50 * time.Millisecond)) {
		t.Fatalf("the lease lapsed %s after the last granted renewal, want at most %s", lapsed.Sub(last.at), L-L/5-L/100)
	}
}

// A hub that never grants (an older hub) gets no renewals.
func TestNoRenewalsWithoutAGrant(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Lease = hubsync.NewLease(hubsync.LeaseConfig{})
	_, s, _ := e.start(t, cfg)
	s.waitHeartbeat(t, func(*meridianv1.Heartbeat) bool { return true })
	time.Sleep(300 * time.Millisecond)
	s.mu.Lock()
	n := len(s.renewals)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d renewals sent to a hub that never granted a lease", n)
	}
	if cfg.Lease.Held() {
		t.Fatal("the lease is held without a grant")
	}
}

// Renewals report the floors the member enforces, as its enforcer says.
func TestRenewalsReportWhatIsFenced(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	lease := hubsync.NewLease(hubsync.LeaseConfig{})
	var stopped atomic.Bool
	lease.SetEnforcer(func(floors map[string]int64) map[string]int64 {
		if !stopped.Load() {
			return nil
		}
		return floors
	})
	cfg.Lease = lease
	_, s, _ := e.start(t, cfg)
	const w = "default/StatefulSet/db"
	s.send(t, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_LeaseGrant{LeaseGrant: &meridianv1.LeaseGrant{
		Seq: s.hello.GetLeaseSeq(), DurationMs: 2000, RenewIntervalMs: 20, MinEpochs: map[string]int64{w: 3},
	}}})
	eventually(t, "a renewal without a report", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.renewals) > 0 && len(s.renewals[len(s.renewals)-1].fenced) == 0
	})
	stopped.Store(true)
	eventually(t, "a renewal that reports the floor enforced", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.renewals) > 0 && s.renewals[len(s.renewals)-1].fenced[w] == 3
	})
}

// OnExtend hears of every grant that moves the lease's end, with the
// member's margin, before the Subscribe listeners do; a grant that does not
// move it is not reported.
func TestLeaseOnExtend(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	l := hubsync.NewLease(hubsync.LeaseConfig{Now: clk.Now})
	defer l.Stop()
	var mu sync.Mutex
	var events []string
	var ends []time.Time
	l.OnExtend(func(until time.Time, margin time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "extend "+margin.String())
		ends = append(ends, until)
	})
	l.Subscribe(func() {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "notify")
	})
	t0 := clk.Now()
	seq := hubsync.NextRenewal(l)
	clk.Advance(time.Second)
	seq2 := hubsync.NextRenewal(l)
	if !l.Granted(grant(seq2, 10*time.Second, nil)) {
		t.Fatal("grant not applied")
	}
	if !l.Granted(grant(seq, 10*time.Second, nil)) { // older: does not extend
		t.Fatal("grant not applied")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := len(ends); got != 1 {
		t.Fatalf("%d extensions reported (%v), want 1", got, events)
	}
	if want := t0.Add(time.Second + 7900*time.Millisecond); !ends[0].Equal(want) {
		t.Fatalf("extended to %s after t0, want %s", ends[0].Sub(t0), want.Sub(t0))
	}
	if events[0] != "extend 2s" || events[1] != "notify" {
		t.Fatalf("events %v, want the extension (margin 2s) before the notification", events)
	}
}
