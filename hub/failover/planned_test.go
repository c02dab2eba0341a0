package failover_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// plan writes what the placement controller writes when a policy change
// moves the singleton name: the targets it keeps, and the planned ones.
func (f *fixture) plan(name, planned string) {
	f.t.Helper()
	b := f.binding(name)
	_, err := f.st.Update(f.ctx, resource.MustLookup("ResourceBinding"), "demo", b.GetMetadata().GetName(), func(o resource.Object) error {
		o.(*meridianv1.ResourceBinding).Spec.PlannedClusters = parseTargets(planned)
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestPlannedMoveSingletonFenced: a singleton that a policy change moves
// off a healthy cluster keeps its targets while that cluster is revoked
// and Release waits for the member's report; the binding gets the planned
// targets only after the commit, with its epoch, a history entry and an
// event.
func TestPlannedMoveSingletonFenced(t *testing.T) {
	fence := newOrderFence("db")
	f := start(t, fence)
	fence.attach(f)
	f.apply(pairPolicy("purgeMode: Immediately"))
	f.singleton("db", "pair", "dc-a1=1")
	f.plan("db", "dc-a2=1")

	b := f.waitTargets("db", "dc-a2=1")
	calls := fence.log()
	if len(calls) < 1+fence.acks+1 || calls[0] != "revoke dc-a1 [dc-a1=1]" {
		t.Fatalf("calls = %q, want a Revoke of dc-a1 first, then Release until it commits", calls)
	}
	for i, c := range calls[1:] {
		last := i == len(calls)-2
		switch {
		case last && c != "release dc-a1 epoch=1 [dc-a1=1]":
			t.Errorf("last call %q, want the commit of epoch 1 while the binding still targets dc-a1", c)
		case !last && c != "release dc-a1 wait [dc-a1=1]" && c != "revoke dc-a1 [dc-a1=1]":
			t.Errorf("call %d %q while the move waits", i+1, c)
		}
	}
	spec := b.GetSpec()
	if spec.GetFencingEpoch() != 1 || len(spec.GetPlannedClusters()) != 0 {
		t.Errorf("after the move: epoch %d (want 1), planned %v (want none)", spec.GetFencingEpoch(), spec.GetPlannedClusters())
	}
	h := b.GetStatus().GetHistory()
	if len(h) != 1 || h[0].GetType() != failover.MovePlacement || targets(h[0].GetFrom()) != "dc-a1=1" || targets(h[0].GetTo()) != "dc-a2=1" {
		t.Errorf("history = %v", h)
	}
	if msg := f.waitEvent("db", failover.ReasonMoved); !strings.Contains(msg, "dc-a1 stopped") || !strings.Contains(msg, "epoch 1") {
		t.Errorf("event %q", msg)
	}
	if n := commits(calls); n != 1 {
		t.Errorf("%d commits, want 1: %q", n, calls)
	}
	if n := f.counter("meridian_singleton_policy_moves_total", map[string]string{"cluster": "dc-a1"}); n != 1 {
		t.Errorf("meridian_singleton_policy_moves_total{cluster=dc-a1} = %v, want 1", n)
	}
}

// TestPlannedMoveOffUnreachableWaitsForLease: off a cluster that does not
// answer, the move waits until Release commits (the lease expired plus
// the margin), exactly as a failover would.
func TestPlannedMoveOffUnreachableWaitsForLease(t *testing.T) {
	fence := newOrderFence("db")
	fence.acks = 1 << 30 // the member never reports
	f := start(t, fence)
	fence.attach(f)
	f.apply(pairPolicy("tolerationSeconds: 3600, purgeMode: Immediately"))
	f.singleton("db", "pair", "dc-a1=1")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	f.plan("db", "dc-a2=1")
	f.eventually("Release asked a few times", func() (bool, string) {
		calls := fence.log()
		return len(calls) >= 4, strings.Join(calls, "; ")
	})
	if b := f.binding("db"); targets(b.GetSpec().GetClusters()) != "dc-a1=1" {
		t.Fatalf("moved before the fence released dc-a1: %v", b.GetSpec())
	}
	fence.mu.Lock()
	fence.expired["dc-a1"] = true // the lease ran out
	fence.mu.Unlock()
	b := f.waitTargets("db", "dc-a2=1")
	if b.GetSpec().GetFencingEpoch() != 1 {
		t.Errorf("epoch %d, want 1", b.GetSpec().GetFencingEpoch())
	}
}

// TestPlannedMoveNotSingleton: a planned move of a workload that is not a
// singleton (it stopped being one) is written without the fence.
func TestPlannedMoveNotSingleton(t *testing.T) {
	fence := newOrderFence("web")
	f := start(t, fence)
	fence.attach(f)
	f.apply(pairPolicy("purgeMode: Immediately"))
	f.place("web", 1, "pair", "dc-a1=1")
	f.plan("web", "dc-a2=1")
	b := f.waitTargets("web", "dc-a2=1")
	if calls := fence.log(); len(calls) != 0 || b.GetSpec().GetFencingEpoch() != 0 {
		t.Errorf("fence called %q, epoch %d: want neither", calls, b.GetSpec().GetFencingEpoch())
	}
}
