package fencing_test

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/fencing"
)

// clock is a fake clock; its readings keep Go's monotonic reading.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const (
	lease  = 10 * time.Second
	margin = 2 * time.Second
	ahead  = 5 * time.Second
	wl     = "default/StatefulSet/db"
)

func newTable(t *testing.T, cli *clientv3.Client, c *clock, node string) *fencing.Table {
	t.Helper()
	tb, err := fencing.New(fencing.Config{Client: cli, Lease: lease, Margin: margin, WriteAhead: ahead, Node: node, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func leaseRev(t *testing.T, cli *clientv3.Client, cluster string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), fencing.DefaultPrefix+"leases/"+cluster)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].ModRevision
}

func TestGrantWritesOnlyWhenTheHorizonFallsShort(t *testing.T) {
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	c := newClock()
	tb := newTable(t, cli, c, "a")
	ctx := context.Background()

	g, err := tb.Grant(ctx, "dc-a1", c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if g.Duration != lease || g.RenewInterval != lease/4 || len(g.MinEpochs) != 0 {
		t.Fatalf("grant = %+v", g)
	}
	first := leaseRev(t, cli, "dc-a1")
	if first == 0 {
		t.Fatal("the first grant wrote no lease record")
	}
	// The record reaches lease+ahead = 15s: grants received in the next
	// ahead (5s) are covered without a write.
	for i := 0; i < 4; i++ {
		c.Advance(time.Second)
		if _, err := tb.Grant(ctx, "dc-a1", c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := leaseRev(t, cli, "dc-a1"); got != first {
		t.Fatalf("grants within the horizon wrote the record (revision %d → %d)", first, got)
	}
	c.Advance(2 * time.Second) // 6s after the write: 6+10 > 15
	if _, err := tb.Grant(ctx, "dc-a1", c.Now()); err != nil {
		t.Fatal(err)
	}
	if got := leaseRev(t, cli, "dc-a1"); got == first {
		t.Fatal("a grant beyond the horizon did not extend the record")
	}
}

func TestReleaseWaitsForTheLeasePlusMargin(t *testing.T) {
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	c := newClock()
	tb := newTable(t, cli, c, "a")
	ctx := context.Background()

	if _, err := tb.Grant(ctx, "dc-a1", c.Now()); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	// The record was written at t0 (this node knows it: no later than the
	// Put returned) and reaches 15s; +2s margin; 1s has passed: 16s to go.
	if left, err := tb.Expiry(ctx, "dc-a1"); err != nil || left < 15*time.Second || left > 16*time.Second+time.Millisecond {
		t.Fatalf("Expiry = %s, %v; want ~16s", left, err)
	}
	ep, wait, err := tb.Release(ctx, wl, "dc-a1")
	if err != nil {
		t.Fatal(err)
	}
	if ep != 0 || wait < 15*time.Second || wait > 16*time.Second+time.Millisecond {
		t.Fatalf("Release during the lease = (%d, %s), want (0, ~16s)", ep, wait)
	}
	// Asking has no effect: the grants carry no floor, no epoch is taken.
	if g, err := tb.Grant(ctx, "dc-a1", c.Now()); err != nil || len(g.MinEpochs) != 0 {
		t.Fatalf("grant after a Release that waits = %+v, %v; want no floors", g, err)
	}
	if got, _ := tb.Epoch(ctx, wl); got != 0 {
		t.Fatalf("a Release that waits took epoch %d", got)
	}
	c.Advance(wait - time.Millisecond)
	if ep, wait, _ = tb.Release(ctx, wl, "dc-a1"); ep != 0 || wait <= 0 {
		t.Fatalf("Release a moment before expiry+margin = (%d, %s), want a wait", ep, wait)
	}
	c.Advance(time.Millisecond)
	if ep, wait, err = tb.Release(ctx, wl, "dc-a1"); err != nil || ep != 1 || wait != 0 {
		t.Fatalf("Release after expiry+margin = (%d, %s, %v), want (1, 0, nil)", ep, wait, err)
	}
	// Every release raises the epoch.
	if ep, _, _ = tb.Release(ctx, wl, "dc-a1"); ep != 2 {
		t.Fatalf("second Release = epoch %d, want 2", ep)
	}
	if ep, _, _ = tb.Release(ctx, wl, "dc-a2"); ep != 3 {
		t.Fatalf("Release from a cluster with no lease = epoch %d, want 3", ep)
	}
	if got, err := tb.Epoch(ctx, wl); err != nil || got != 3 {
		t.Fatalf("Epoch = %d, %v; want 3", got, err)
	}
	// The next grant to dc-a1 carries the floor.
	g, err := tb.Grant(ctx, "dc-a1", c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if g.MinEpochs[wl] != 2 {
		t.Fatalf("grant after the release: min epochs %v, want %s: 2", g.MinEpochs, wl)
	}
}

// A singleton leaves a cluster that keeps its lease (a failback, a planned
// move): Revoke's pending floor goes out with the next grant, and Release
// completes once the member reports it enforces it.
func TestReleaseFromAClusterThatHoldsItsLease(t *testing.T) {
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	c := newClock()
	a, b := newTable(t, cli, c, "a"), newTable(t, cli, c, "b")
	ctx := context.Background()
	if _, err := b.Grant(ctx, "dc-a2", c.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, wl, "dc-a2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, wl, "dc-a2"); err != nil { // pending already: no new epoch
		t.Fatal(err)
	}
	if ep, wait, err := a.Release(ctx, wl, "dc-a2"); err != nil || ep != 0 || wait != lease/4 {
		t.Fatalf("Release while revoking = (%d, %s, %v), want (0, %s)", ep, wait, err, lease/4)
	}
	// b serves the stream: its next extension (at most WriteAhead away)
	// reads the pending floor.
	c.Advance(ahead + time.Second)
	g, err := b.Grant(ctx, "dc-a2", c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if g.MinEpochs[wl] != 1 {
		t.Fatalf("grant while revoking: min epochs %v, want %s: 1", g.MinEpochs, wl)
	}
	// A report of a lower floor, or of another workload, does nothing.
	if err := b.Ack(ctx, "dc-a2", map[string]int64{wl: 0, "default/StatefulSet/other": 9}); err != nil {
		t.Fatal(err)
	}
	if ep, _, _ := a.Release(ctx, wl, "dc-a2"); ep != 0 {
		t.Fatalf("Release before the member's report = epoch %d", ep)
	}
	if err := b.Ack(ctx, "dc-a2", map[string]int64{wl: 1}); err != nil {
		t.Fatal(err)
	}
	ep, wait, err := a.Release(ctx, wl, "dc-a2")
	if err != nil || ep != 1 || wait != 0 {
		t.Fatalf("Release after the member's report = (%d, %s, %v), want (1, 0, nil)", ep, wait, err)
	}
	// Committed: the floor stays in every grant; the next release is a
	// new one with a higher epoch.
	c.Advance(ahead + time.Second)
	if g, _ = b.Grant(ctx, "dc-a2", c.Now()); g.MinEpochs[wl] != 1 {
		t.Fatalf("grant after the release: min epochs %v", g.MinEpochs)
	}
	if err := a.Revoke(ctx, wl, "dc-a2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Epoch(ctx, wl); got != 2 {
		t.Fatalf("the new revocation allocated epoch %d, want 2", got)
	}
}

func TestAnotherNodeCountsTheLeaseFromWhenItSawIt(t *testing.T) {
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	ca, cb := newClock(), newClock()
	a, b := newTable(t, cli, ca, "a"), newTable(t, cli, cb, "b")
	ctx := context.Background()

	if _, err := a.Grant(ctx, "dc-a1", ca.Now()); err != nil {
		t.Fatal(err)
	}
	// b has no idea when the record was written: it waits the whole
	// horizon from now, whatever its wall clock says.
	cb.Advance(time.Hour)
	wait, err := b.Expiry(ctx, "dc-a1")
	if err != nil {
		t.Fatal(err)
	}
	if wait != lease+ahead+margin+time.Millisecond {
		t.Fatalf("first sight wait = %s, want %s", wait, lease+ahead+margin+time.Millisecond)
	}
	// A grant by a renews the record: b sees a new revision and waits again.
	ca.Advance(6 * time.Second)
	if _, err := a.Grant(ctx, "dc-a1", ca.Now()); err != nil {
		t.Fatal(err)
	}
	cb.Advance(10 * time.Second)
	if wait, _ = b.Expiry(ctx, "dc-a1"); wait < lease+ahead {
		t.Fatalf("wait after a renewal by another node = %s, want at least %s", wait, lease+ahead)
	}
	// b grants too: it must write (it knows no lower bound of a's write),
	// and its record keeps a's horizon.
	if _, err := b.Grant(ctx, "dc-a1", cb.Now()); err != nil {
		t.Fatal(err)
	}
	// a's cached revision is stale now: its next extension goes through
	// the compare-and-swap retry.
	ca.Advance(10 * time.Second)
	if _, err := a.Grant(ctx, "dc-a1", ca.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestEpochsSurviveAHubRestart(t *testing.T) {
	node := etcdnodetest.StartNode(t)
	cli := etcdnodetest.Client(t, node.Endpoints())
	c := newClock()
	tb := newTable(t, cli, c, "a")
	ctx := context.Background()
	if _, err := tb.Grant(ctx, "dc-a1", c.Now()); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if ep, _, err := tb.Release(ctx, wl, "dc-a1"); err != nil || ep != 1 {
		t.Fatalf("Release = %d, %v", ep, err)
	}
	if _, err := tb.Grant(ctx, "dc-a1", c.Now()); err != nil {
		t.Fatal(err)
	}
	_ = cli.Close()
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}

	node = etcdnodetest.StartConfig(t, node.Config())
	cli = etcdnodetest.Client(t, node.Endpoints())
	c2 := newClock()
	tb = newTable(t, cli, c2, "a")
	// The new hub respects the lease it finds, counted from now.
	wait, err := tb.Expiry(ctx, "dc-a1")
	if err != nil {
		t.Fatal(err)
	}
	if wait < lease+ahead+margin {
		t.Fatalf("wait after a restart = %s, want at least %s", wait, lease+ahead+margin)
	}
	c2.Advance(wait)
	ep, _, err := tb.Release(ctx, wl, "dc-a1")
	if err != nil || ep != 2 {
		t.Fatalf("Release after a restart = %d, %v; want epoch 2", ep, err)
	}
	g, err := tb.Grant(ctx, "dc-a1", c2.Now())
	if err != nil || g.MinEpochs[wl] != 2 {
		t.Fatalf("grant after a restart = %+v, %v; want the floor 2", g, err)
	}
}

func TestReleaseRejectsBadNames(t *testing.T) {
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	tb := newTable(t, cli, newClock(), "a")
	for _, w := range []string{"", "db", "default/db", "a//b"} {
		if _, _, err := tb.Release(context.Background(), w, "dc-a1"); err == nil {
			t.Errorf("Release(%q) succeeded", w)
		}
	}
	if _, _, err := tb.Release(context.Background(), wl, "a/b"); err == nil {
		t.Error("Release from cluster a/b succeeded")
	}
}
