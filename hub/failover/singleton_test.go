package failover_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// pairPolicy places every Deployment of demo on dc-a1 (weight 3 to 1 over
// dc-a2, the only other cluster it may use), with the given failover block.
func pairPolicy(failoverBlock string) string {
	return `apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: pair, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    clusterAffinity: {clusterNames: [dc-a1, dc-a2]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        hierarchicalWeights:
          regions:
          - {name: region-a, weight: 1, datacenters: [{name: dc-a1, weight: 3}, {name: dc-a2, weight: 1}]}
  failover: {` + failoverBlock + `}
`
}

// singleton places the deployment name (one replica) on targets, under
// policy, annotated meridian.io/singleton.
func (f *fixture) singleton(name, policy, targets string) {
	f.t.Helper()
	// Annotated from the start: a controller that saw the deployment
	// before its annotation would move it as a non-singleton.
	f.placeWith(name, 1, policy, targets, fmt.Sprintf(`labels: {policy: %q}, annotations: {meridian.io/singleton: "true"}`, policy))
}

// orderFence is a Fence and a Revoker that behaves like hub/fencing.Table
// for one workload and records every call with the binding's targets at
// the time of the call, so a test can check their order against the
// binding writes. A cluster in expired has lost its lease: Release commits
// a new epoch at once. Otherwise Release waits for a Revoke and then for
// acks more calls (the member stopping its copy and reporting it) before
// it commits the epoch Revoke allocated; without a Revoke it waits for a
// lease that a healthy cluster keeps renewing.
type orderFence struct {
	f       *fixture
	name    string // the deployment
	expired map[string]bool
	acks    int
	wait    time.Duration
	// conflict makes the binding write that follows the next commit
	// conflict (as if the placement controller wrote the binding between
	// the Release and the write).
	conflict bool
	// afterConflict, if set, runs right after that conflicting write.
	afterConflict func()

	mu       sync.Mutex
	epoch    int64
	revoking map[string]int64
	asked    map[string]int
	calls    []string
	at       []time.Time
}

func newOrderFence(name string, expired ...string) *orderFence {
	o := &orderFence{name: name, expired: map[string]bool{}, acks: 3, wait: 50 * time.Millisecond,
		revoking: map[string]int64{}, asked: map[string]int{}}
	for _, c := range expired {
		o.expired[c] = true
	}
	return o
}

// attach gives the fence the fixture it reads the binding from.
func (o *orderFence) attach(f *fixture) {
	o.mu.Lock()
	o.f = f
	o.mu.Unlock()
}

// targets is the binding's targets now, read straight from the store (the
// controller's goroutine calls the fence: no t.Fatal here).
func (o *orderFence) targets() string {
	b, err := o.f.st.Get(context.Background(), resource.MustLookup("ResourceBinding"), "demo", placement.BindingName("Deployment", o.name))
	if err != nil {
		return "?"
	}
	return targets(b.(*meridianv1.ResourceBinding).GetSpec().GetClusters())
}

func (o *orderFence) record(call string) {
	o.calls = append(o.calls, call+" ["+o.targets()+"]")
	o.at = append(o.at, time.Now())
}

func (o *orderFence) Revoke(_ context.Context, workload, cluster string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.record("revoke " + cluster)
	if _, pending := o.revoking[cluster]; !pending {
		o.epoch++
		o.revoking[cluster] = o.epoch
		o.asked[cluster] = 0
	}
	return nil
}

func (o *orderFence) Release(_ context.Context, workload, cluster string) (int64, time.Duration, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var epoch int64
	switch pending, revoked := o.revoking[cluster]; {
	case o.expired[cluster] && revoked:
		epoch = pending
	case o.expired[cluster]:
		o.epoch++
		epoch = o.epoch
	case revoked:
		if o.asked[cluster]++; o.asked[cluster] > o.acks {
			epoch = pending
		}
	}
	if epoch == 0 {
		o.record("release " + cluster + " wait")
		return 0, o.wait, nil
	}
	delete(o.revoking, cluster)
	o.record(fmt.Sprintf("release %s epoch=%d", cluster, epoch))
	if o.conflict {
		o.conflict = false
		_, err := o.f.st.Update(context.Background(), resource.MustLookup("ResourceBinding"), "demo", placement.BindingName("Deployment", o.name), func(obj resource.Object) error {
			obj.(*meridianv1.ResourceBinding).Spec.AffinityName = "placement-wrote-this"
			return nil
		})
		if err != nil {
			o.calls = append(o.calls, "conflict: "+err.Error())
		}
		if o.afterConflict != nil {
			o.afterConflict()
		}
	}
	return epoch, 0, nil
}

// log is the calls so far.
func (o *orderFence) log() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...)
}

// commits is how many Release calls returned an epoch.
func commits(calls []string) int {
	n := 0
	for _, c := range calls {
		if strings.Contains(c, " epoch=") {
			n++
		}
	}
	return n
}

// failOverAndRecover moves the singleton db off dc-a1 (Unreachable) to
// dc-a2, serves it there, and brings dc-a1 back Ready.
func (f *fixture) failOverAndRecover(t *testing.T) *meridianv1.ResourceBinding {
	t.Helper()
	f.setHealth("dc-a1", "Unreachable", time.Second)
	b := f.waitTargets("db", "dc-a2=1")
	f.serve("db")
	f.setHealth("dc-a1", "Ready", time.Second)
	return b
}

// TestFailbackSingletonFenced: an Automatic failback of a singleton off a
// healthy cluster revokes that cluster, asks Release until it answers with
// an epoch (re-queued with the wait it returns, not in a busy loop), and
// only then writes the binding, with that epoch.
func TestFailbackSingletonFenced(t *testing.T) {
	fence := newOrderFence("db", "dc-a1")
	f := start(t, fence)
	fence.attach(f)
	f.apply(pairPolicy("tolerationSeconds: 0, purgeMode: Immediately, stabilizationSeconds: 0"))
	f.singleton("db", "pair", "dc-a1=1")

	b := f.failOverAndRecover(t)
	if got := b.GetSpec().GetFencingEpoch(); got != 1 {
		t.Fatalf("failover epoch %d, want 1", got)
	}
	b = f.waitTargets("db", "dc-a1=1")
	calls := fence.log()
	want := []string{"release dc-a1 epoch=1 [dc-a1=1]", "revoke dc-a2 [dc-a2=1]"}
	if len(calls) < 2+fence.acks+1 || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("calls = %q, want %q then Release until it commits", calls, want)
	}
	// After the Revoke: Releases (with Revokes, which change nothing while
	// one is pending) on the old placement, the last one committing.
	for i, c := range calls[2:] {
		last := i == len(calls)-3
		switch {
		case last && c != "release dc-a2 epoch=2 [dc-a2=1]":
			t.Errorf("last call %q, want the commit of epoch 2 before the binding moved", c)
		case !last && c != "release dc-a2 wait [dc-a2=1]" && c != "revoke dc-a2 [dc-a2=1]":
			t.Errorf("call %d %q while the failback waits", i+2, c)
		}
	}
	if got := b.GetSpec().GetFencingEpoch(); got != 2 {
		t.Errorf("failback epoch %d, want 2 (Release's)", got)
	}
	if n := commits(calls); n != 2 {
		t.Errorf("%d commits, want 2: %q", n, calls)
	}
	// Re-queued with the wait, not busy: some call after the Revoke came at
	// least one wait (50 ms) after the one before it. (Not every one: an
	// informer event, a cluster's status say, may sync the workload again
	// sooner, which is how controllers work.)
	fence.mu.Lock()
	var gap time.Duration
	for i := 2; i < len(fence.at); i++ {
		gap = max(gap, fence.at[i].Sub(fence.at[i-1]))
	}
	fence.mu.Unlock()
	if gap < fence.wait {
		t.Errorf("the calls after the Revoke came at most %s apart: not re-queued with Release's wait (%s)", gap, fence.wait)
	}
	h := b.GetStatus().GetHistory()
	if len(h) != 2 || h[1].GetType() != failover.MoveFailback {
		t.Errorf("history = %v", h)
	}
	// Nothing is asked of the fence once the binding carries the epoch.
	f.waitEvent("db", failover.ReasonFailedBack)
	if n := len(fence.log()); n != len(calls) {
		t.Errorf("fence called after the failback: %q", fence.log()[len(calls):])
	}
}

// TestFailbackSingletonWriteConflict: when the binding changes between the
// commit and the write, the write is retried with the epoch released, not
// released again (which would raise the epoch twice).
func TestFailbackSingletonWriteConflict(t *testing.T) {
	fence := newOrderFence("db", "dc-a1")
	f := start(t, fence)
	fence.attach(f)
	f.apply(pairPolicy("tolerationSeconds: 0, purgeMode: Immediately, stabilizationSeconds: 0"))
	f.singleton("db", "pair", "dc-a1=1")
	f.failOverAndRecover(t)
	fence.mu.Lock()
	fence.conflict = true
	fence.mu.Unlock()

	b := f.waitTargets("db", "dc-a1=1")
	calls := fence.log()
	if got := b.GetSpec().GetFencingEpoch(); got != 2 {
		t.Errorf("failback epoch %d, want 2: %q", got, calls)
	}
	if b.GetSpec().GetAffinityName() != "placement-wrote-this" {
		t.Errorf("the conflicting write did not happen: %v", b.GetSpec())
	}
	if n := commits(calls); n != 2 || !strings.HasPrefix(calls[len(calls)-1], "release dc-a2 epoch=2") {
		t.Errorf("calls = %q, want one commit per move, the failback's last", calls)
	}
}

// TestFailoverSingletonWriteConflict: the same for a failover: the epoch
// released off the failed cluster is written on the retry.
func TestFailoverSingletonWriteConflict(t *testing.T) {
	fence := newOrderFence("db", "dc-a1")
	fence.conflict = true
	f := start(t, fence)
	fence.attach(f)
	f.apply(pairPolicy("tolerationSeconds: 0, purgeMode: Immediately, failback: Manual"))
	f.singleton("db", "pair", "dc-a1=1")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	b := f.waitTargets("db", "dc-a2=1")
	calls := fence.log()
	if got := b.GetSpec().GetFencingEpoch(); got != 1 {
		t.Errorf("failover epoch %d, want 1: %q", got, calls)
	}
	if len(calls) != 1 || calls[0] != "release dc-a1 epoch=1 [dc-a1=1]" {
		t.Errorf("calls = %q, want one Release", calls)
	}
}

// vetoLater vetoes failovers once on is set.
type vetoLater struct{ on atomic.Bool }

func (*vetoLater) Name() string { return "VetoLater" }
func (v *vetoLater) Failover(context.Context, *framework.Snapshot, []string, []framework.Target) (framework.FailoverDecision, *framework.Status) {
	return framework.FailoverDecision{Veto: v.on.Load(), Reason: "not now"}, nil
}

// TestSingletonReleaseSettled: a failover whose write conflicted after
// the release, and that no longer applies on the retry (vetoed, then the
// cluster is Ready again), writes the released epoch into the binding as
// it is: the fenced copy runs again with it instead of staying stopped for
// good.
func TestSingletonReleaseSettled(t *testing.T) {
	veto := &vetoLater{}
	fence := newOrderFence("db", "dc-a1")
	fence.conflict = true
	fence.afterConflict = func() { veto.on.Store(true) }
	f := start(t, fence, veto)
	fence.attach(f)
	f.apply(pairPolicy("tolerationSeconds: 0, purgeMode: Immediately"))
	f.singleton("db", "pair", "dc-a1=1")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	f.waitEvent("db", failover.ReasonFailoverVetoed)
	if b := f.binding("db"); b.GetSpec().GetFencingEpoch() != 0 {
		t.Fatalf("vetoed, yet the binding moved: %v", b.GetSpec())
	}
	f.setHealth("dc-a1", "Ready", 0)
	f.eventually("the released epoch in the binding", func() (bool, string) {
		b := f.binding("db")
		return b.GetSpec().GetFencingEpoch() == 1, b.GetSpec().String()
	})
	b := f.binding("db")
	if got := targets(b.GetSpec().GetClusters()); got != "dc-a1=1" || len(b.GetSpec().GetFailedOver()) != 0 {
		t.Errorf("binding %v, want dc-a1=1 and no failover", b.GetSpec())
	}
	if calls := fence.log(); len(calls) != 1 {
		t.Errorf("calls = %q, want one Release", calls)
	}
}

// TestFailoverSingletonNoTargetNoRelease: Release commits (fences the old
// copy for good), so it is never asked when the move cannot happen: no
// cluster fits, or a failover plugin vetoes.
func TestFailoverSingletonNoTargetNoRelease(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		veto         bool
	}{
		{"no target", failover.ReasonFailoverBlocked, false},
		{"vetoed", failover.ReasonFailoverVetoed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fence := newOrderFence("db", "dc-a1")
			var f *fixture
			pol := pairPolicy("tolerationSeconds: 0")
			if tc.veto {
				f = start(t, fence, vetoAll{})
			} else {
				f = start(t, fence)
				// dc-a2 is out: the only cluster the policy allows is
				// the one failing.
				pol = strings.Replace(pol, "[dc-a1, dc-a2]", "[dc-a1]", 1)
			}
			fence.attach(f)
			f.apply(pol)
			f.singleton("db", "pair", "dc-a1=1")
			f.setHealth("dc-a1", "Unreachable", time.Second)
			f.waitEvent("db", tc.reason)
			if calls := fence.log(); len(calls) != 0 {
				t.Errorf("the fence was asked %q for a move that cannot happen", calls)
			}
			b := f.binding("db")
			if got := targets(b.GetSpec().GetClusters()); got != "dc-a1=1" || b.GetSpec().GetFencingEpoch() != 0 {
				t.Errorf("binding %s epoch %d, want dc-a1=1 epoch 0", got, b.GetSpec().GetFencingEpoch())
			}
		})
	}
}

// plainFence is a Fence without Revoke.
type plainFence struct{ epoch int64 }

func (p *plainFence) Release(context.Context, string, string) (int64, time.Duration, error) {
	p.epoch++
	return p.epoch, 0, nil
}

// TestFailbackSingletonNeedsRevoker: a Fence that cannot revoke cannot
// fence a move off a healthy cluster: the failback is held.
func TestFailbackSingletonNeedsRevoker(t *testing.T) {
	f := start(t, &plainFence{})
	f.apply(pairPolicy("tolerationSeconds: 0, purgeMode: Immediately, stabilizationSeconds: 0"))
	f.singleton("db", "pair", "dc-a1=1")
	f.failOverAndRecover(t)
	time.Sleep(time.Second)
	if b := f.binding("db"); targets(b.GetSpec().GetClusters()) != "dc-a2=1" || b.GetSpec().GetFencingEpoch() != 1 {
		t.Errorf("failed back without a Revoker: %v", b.GetSpec())
	}
}
