package failover_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// policy is a PropagationPolicy dividing every Deployment of demo equally
// with the given failover block (YAML flow mapping body).
func policy(name, failoverBlock string) string {
	return `apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: ` + name + `, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {policy: ` + name + `}}}]
  placement:
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  failover: {` + failoverBlock + `}
`
}

// label puts the deployment under policy: its labels select it.
func (f *fixture) label(name, policy string) {
	f.t.Helper()
	_, err := f.st.Update(f.ctx, resource.MustLookup("Deployment"), "demo", name, func(o resource.Object) error {
		md := o.GetMetadata()
		if md.Labels == nil {
			md.Labels = map[string]string{}
		}
		md.Labels["policy"] = policy
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestFailoverGracefulSameRegion: dc-a1 Unreachable past the toleration →
// its 3 replicas go to dc-a2 (same region), not dc-b1; the old copy is
// kept as an eviction until the replacements are ready; the binding
// records failedOver and a Failover history entry, and a FailedOver event
// says what moved.
func TestFailoverGracefulSameRegion(t *testing.T) {
	f := start(t, nil)
	f.apply(policy("fast", "tolerationSeconds: 1"))
	f.place("web", 9, "fast", "dc-a1=3,dc-a2=3,dc-b1=3")
	f.label("web", "fast")

	// Unreachable, but within the toleration: nothing moves yet; 2s
	// after the change it is past it.
	f.setHealth("dc-a1", "Unreachable", 0)
	b := f.waitTargets("web", "dc-a2=6,dc-b1=3")
	if got := time.Since(b.GetStatus().GetHistory()[0].GetTime().AsTime()); got > 5*time.Second {
		t.Errorf("moved %s ago", got)
	}
	ev := b.GetSpec().GetEvicting()
	if len(ev) != 1 || ev[0].GetCluster() != "dc-a1" || ev[0].GetReplicas() != 3 {
		t.Fatalf("evicting = %v, want dc-a1 (3)", ev)
	}
	fo := b.GetSpec().GetFailedOver()
	if len(fo) != 1 || fo[0].GetCluster() != "dc-a1" || fo[0].GetReplicas() != 3 {
		t.Fatalf("failedOver = %v", fo)
	}
	h := b.GetStatus().GetHistory()
	if len(h) != 1 || h[0].GetType() != failover.MoveFailover || targets(h[0].GetFrom()) != "dc-a1=3,dc-a2=3,dc-b1=3" || targets(h[0].GetTo()) != "dc-a2=6,dc-b1=3" {
		t.Fatalf("history = %v", h)
	}
	msg := f.waitEvent("web", failover.ReasonFailedOver)
	if !strings.Contains(msg, "moved 3 replicas from dc-a1 (Unreachable for") || !strings.Contains(msg, "to dc-a2 (3)") {
		t.Errorf("event %q", msg)
	}
	// The move carries the placement status the placement controller
	// would write for it (no placement controller runs here), so that it
	// has nothing left to write: dc-a1 kept out by ClusterHealth.
	var kept string
	for _, v := range b.GetStatus().GetClusters() {
		if v.GetCluster() == "dc-a1" {
			kept = v.GetCode() + "/" + v.GetPlugin() + ": " + v.GetReason()
		}
	}
	if !strings.HasPrefix(kept, "Unschedulable/ClusterHealth: failover is moving") {
		t.Errorf("dc-a1's verdict after the move: %q", kept)
	}
	if c := b.GetStatus().GetConditions(); len(c) != 1 || c[0].GetType() != "Scheduled" || c[0].GetStatus() != "True" {
		t.Errorf("conditions after the move: %v", c)
	}

	// The eviction ends once dc-a2 reports 6 ready.
	f.serve("web")
	f.eventually("the eviction to end", func() (bool, string) {
		b := f.binding("web")
		return len(b.GetSpec().GetEvicting()) == 0, targets(b.GetSpec().GetClusters())
	})
	if fo := f.binding("web").GetSpec().GetFailedOver(); len(fo) != 1 {
		t.Errorf("failedOver cleared with the eviction: %v", fo)
	}
}

// TestPurgeOfUnreachableCopyWaits: once the replacements are ready, the
// copy on a cluster that is still Unreachable is purged no sooner than
// UnreachablePurgeDelay after the move (during a datacenter's failover,
// the moves come first); a cluster that comes back is purged at once.
func TestPurgeOfUnreachableCopyWaits(t *testing.T) {
	const delay = 2 * time.Second
	f := startWith(t, func(c *failover.Config) { c.UnreachablePurgeDelay = delay }, nil)
	f.apply(policy("fast", "tolerationSeconds: 1"))
	f.place("web", 9, "fast", "dc-a1=3,dc-a2=3,dc-b1=3")
	f.label("web", "fast")
	f.setHealth("dc-a1", "Unreachable", 0)
	b := f.waitTargets("web", "dc-a2=6,dc-b1=3")
	since := b.GetSpec().GetEvicting()[0].GetSince().AsTime()
	f.serve("web")
	f.eventually("the eviction to end", func() (bool, string) {
		return len(f.binding("web").GetSpec().GetEvicting()) == 0, ""
	})
	if ended := time.Now(); ended.Before(since.Add(delay)) {
		t.Errorf("the copy on dc-a1 was purged %s after the move, want %s or more", ended.Sub(since), delay)
	}

	// With a delay of an hour, a cluster that comes back is purged at once.
	f = startWith(t, func(c *failover.Config) { c.UnreachablePurgeDelay = time.Hour }, nil)
	f.apply(policy("fast", "tolerationSeconds: 1"))
	f.place("web", 9, "fast", "dc-a1=3,dc-a2=3,dc-b1=3")
	f.label("web", "fast")
	f.setHealth("dc-a1", "Unreachable", 0)
	f.waitTargets("web", "dc-a2=6,dc-b1=3")
	f.serve("web")
	f.setHealth("dc-a1", "Ready", 0)
	f.eventually("the eviction to end once dc-a1 is back", func() (bool, string) {
		return len(f.binding("web").GetSpec().GetEvicting()) == 0, ""
	})

	// Nor does the delay outlast the policy's grace period.
	f = startWith(t, func(c *failover.Config) { c.UnreachablePurgeDelay = time.Hour }, nil)
	f.apply(policy("fast", "tolerationSeconds: 1, gracePeriodSeconds: 1"))
	f.place("web", 9, "fast", "dc-a1=3,dc-a2=3,dc-b1=3")
	f.label("web", "fast")
	f.setHealth("dc-a1", "Unreachable", 0)
	f.waitTargets("web", "dc-a2=6,dc-b1=3")
	f.serve("web")
	f.eventually("the eviction to end with the grace period", func() (bool, string) {
		return len(f.binding("web").GetSpec().GetEvicting()) == 0, ""
	})
}

// TestFailoverImmediatelyAndDisabled: purgeMode Immediately moves without
// an eviction; disabled keeps the workload where it is (checked once the
// other workload, enqueued by the same health change, has moved).
func TestFailoverImmediatelyAndDisabled(t *testing.T) {
	f := start(t, nil)
	f.apply(policy("now", "tolerationSeconds: 0, purgeMode: Immediately"))
	f.apply(policy("never", "disabled: true, tolerationSeconds: 0"))
	f.place("stay", 4, "never", "dc-a1=2,dc-b1=2")
	f.label("stay", "never")
	f.place("go", 4, "now", "dc-a1=2,dc-b1=2")
	f.label("go", "now")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	b := f.waitTargets("go", "dc-a2=2,dc-b1=2")
	if len(b.GetSpec().GetEvicting()) != 0 {
		t.Errorf("Immediately left an eviction: %v", b.GetSpec().GetEvicting())
	}
	if got := targets(f.binding("stay").GetSpec().GetClusters()); got != "dc-a1=2,dc-b1=2" {
		t.Errorf("disabled failover moved the workload: %s", got)
	}
}

// TestFailoverWithoutPolicy: a duplicated workload (no policy) just drops
// the failed cluster, with the default toleration.
func TestFailoverWithoutPolicy(t *testing.T) {
	f := start(t, nil)
	f.place("dup", 2, "", "dc-a1=2,dc-a2=2,dc-b1=2")
	f.setHealth("dc-a1", "Unreachable", failover.DefaultToleration)
	b := f.waitTargets("dup", "dc-a2=2,dc-b1=2")
	if fo := b.GetSpec().GetFailedOver(); len(fo) != 1 || fo[0].GetCluster() != "dc-a1" {
		t.Errorf("failedOver = %v", fo)
	}
}

type vetoAll struct{}

func (vetoAll) Name() string { return "VetoAll" }
func (vetoAll) Failover(context.Context, *framework.Snapshot, []string, []framework.Target) (framework.FailoverDecision, *framework.Status) {
	return framework.FailoverDecision{Veto: true, Reason: "the database lives there"}, nil
}

// TestFailoverVeto: a failover plugin's veto keeps the workload where it
// is and says why.
func TestFailoverVeto(t *testing.T) {
	f := start(t, nil, vetoAll{})
	f.apply(policy("fast", "tolerationSeconds: 0"))
	f.place("web", 4, "fast", "dc-a1=2,dc-a2=2")
	f.label("web", "fast")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	msg := f.waitEvent("web", failover.ReasonFailoverVetoed)
	if !strings.Contains(msg, "VetoAll: the database lives there") {
		t.Errorf("event %q", msg)
	}
	if got := targets(f.binding("web").GetSpec().GetClusters()); got != "dc-a1=2,dc-a2=2" {
		t.Errorf("vetoed failover moved the workload: %s", got)
	}
}

type chooseB struct{}

func (chooseB) Name() string { return "ChooseB" }
func (chooseB) Failover(_ context.Context, s *framework.Snapshot, _ []string, _ []framework.Target) (framework.FailoverDecision, *framework.Status) {
	return framework.FailoverDecision{Targets: []framework.Target{{Cluster: "dc-b1", Replicas: s.Workload.Replicas}}}, nil
}

// TestFailoverPluginTargets: a failover plugin may choose the targets.
func TestFailoverPluginTargets(t *testing.T) {
	f := start(t, nil, chooseB{})
	f.apply(policy("fast", "tolerationSeconds: 0"))
	f.place("web", 4, "fast", "dc-a1=2,dc-a2=2")
	f.label("web", "fast")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	f.waitTargets("web", "dc-b1=4")
}

// TestFailbackInSteps: once dc-a1 is Ready for the stabilization window,
// replicas move back one step (a quarter of the replicas) at a time, each
// after the previous one's replicas are ready; then the failedOver record
// is cleared.
func TestFailbackInSteps(t *testing.T) {
	f := start(t, nil)
	f.apply(`apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: pair, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    clusterAffinity: {clusterNames: [dc-a1, dc-a2]}
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  failover: {tolerationSeconds: 0, purgeMode: Immediately, stabilizationSeconds: 1}
`)
	f.place("web", 8, "pair", "dc-a1=4,dc-a2=4")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	f.waitTargets("web", "dc-a2=8")
	f.serve("web")

	f.setHealth("dc-a1", "Ready", 0)
	b := f.waitTargets("web", "dc-a1=2,dc-a2=6") // max(1, ceil(8/4)) = 2 per step
	if len(b.GetSpec().GetFailedOver()) != 1 {
		t.Fatalf("failedOver cleared after the first step: %v", b.GetSpec())
	}
	// The next step waits for the first one's replicas.
	f.serve("web")
	b = f.waitTargets("web", "dc-a1=4,dc-a2=4")
	if len(b.GetSpec().GetFailedOver()) != 0 {
		t.Errorf("failedOver left after failback: %v", b.GetSpec().GetFailedOver())
	}
	h := b.GetStatus().GetHistory()
	if len(h) != 3 || h[1].GetType() != failover.MoveFailback || h[2].GetType() != failover.MoveFailback {
		t.Errorf("history = %v", h)
	}
	f.waitEvent("web", failover.ReasonFailedBack)
}

// TestFailbackManual: with failback Manual nothing moves back until a
// failback is requested on the binding (checked once an Automatic
// workload has failed back); the request is removed once done.
func TestFailbackManual(t *testing.T) {
	f := start(t, nil)
	f.apply(policy("auto", "tolerationSeconds: 0, purgeMode: Immediately, stabilizationSeconds: 0"))
	f.apply(policy("manual", "tolerationSeconds: 0, purgeMode: Immediately, stabilizationSeconds: 0, failback: Manual"))
	f.place("held", 3, "manual", "dc-a1=1,dc-a2=1,dc-b1=1")
	f.label("held", "manual")
	f.place("back", 3, "auto", "dc-a1=1,dc-a2=1,dc-b1=1")
	f.label("back", "auto")
	f.setHealth("dc-a1", "Unreachable", time.Second)
	f.waitTargets("held", "dc-a2=2,dc-b1=1")
	f.waitTargets("back", "dc-a2=2,dc-b1=1")
	f.serve("held")
	f.serve("back")
	f.setHealth("dc-a1", "Ready", time.Second)
	f.waitEvent("back", failover.ReasonFailedBack)
	if got := targets(f.binding("held").GetSpec().GetClusters()); got != "dc-a2=2,dc-b1=1" {
		t.Fatalf("Manual failback moved without a request: %s", got)
	}
	_, err := f.st.Update(f.ctx, resource.MustLookup("ResourceBinding"), "demo", "deployment.held", func(o resource.Object) error {
		md := o.GetMetadata()
		md.Annotations[failover.AnnotationFailbackRequested] = time.Now().Format(time.RFC3339)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b := f.waitTargets("held", "dc-a1=1,dc-a2=1,dc-b1=1")
	f.eventually("the request to be removed", func() (bool, string) {
		b = f.binding("held")
		_, ok := b.GetMetadata().GetAnnotations()[failover.AnnotationFailbackRequested]
		return !ok && len(b.GetSpec().GetFailedOver()) == 0, b.String()
	})
}

// TestFailoverSingletonWaitsForFence: a singleton moves once the fence
// releases it, with the fence's epoch, and its eviction record keeps no
// Work (the works controller's side is tested in hub/federation).
func TestFailoverSingletonWaitsForFence(t *testing.T) {
	fence := &fakeFence{calls: make(chan string, 1), epoch: 7}
	f := start(t, fence)
	f.apply(policy("fast", "tolerationSeconds: 0"))
	f.placeWith("db", 2, "fast", "dc-a1=1,dc-a2=1", `labels: {policy: fast}, annotations: {meridian.io/singleton: "true"}`)
	f.setHealth("dc-a1", "Unreachable", time.Second)
	b := f.waitTargets("db", "dc-a2=2")
	if got := <-fence.calls; got != "demo/Deployment/db@dc-a1" {
		t.Errorf("fence asked about %q", got)
	}
	if b.GetSpec().GetFencingEpoch() != 7 {
		t.Errorf("fencing epoch %d, want 7", b.GetSpec().GetFencingEpoch())
	}
}

// TestConservativeFence: without a Fence a singleton waits the toleration
// plus FenceMargin; epoch is the binding's plus one.
func TestConservativeFence(t *testing.T) {
	f := start(t, nil)
	f.apply(policy("fast", "tolerationSeconds: 0"))
	f.placeWith("db", 2, "fast", "dc-a1=1,dc-a2=1", `labels: {policy: fast}, annotations: {meridian.io/singleton: "true"}`)
	// Unreachable for the margin less 1.5s: it moves about 1.5s later.
	start := time.Now()
	f.setHealth("dc-a1", "Unreachable", failover.FenceMargin-1500*time.Millisecond)
	b := f.waitTargets("db", "dc-a2=2")
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("moved after %s, before the fence margin", waited)
	}
	if b.GetSpec().GetFencingEpoch() != 1 {
		t.Errorf("fencing epoch %d, want 1", b.GetSpec().GetFencingEpoch())
	}
}

// TestFailoverBlockedKeepsSpread: when the survivors cannot satisfy the
// policy (here: two regions at least, and region-b's only cluster fails)
// nothing moves, and a FailoverBlocked event says why.
func TestFailoverBlockedKeepsSpread(t *testing.T) {
	f := start(t, nil)
	f.apply(`apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: two-regions, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    spreadConstraints: [{spreadByField: region, minGroups: 2}]
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  failover: {tolerationSeconds: 0}
`)
	f.place("web", 4, "two-regions", "dc-a1=2,dc-b1=2")
	f.setHealth("dc-b1", "Unreachable", time.Second)
	msg := f.waitEvent("web", failover.ReasonFailoverBlocked)
	if !strings.Contains(msg, "Cannot move the workload off dc-b1") || !strings.Contains(msg, "region") {
		t.Errorf("event %q", msg)
	}
	if got := targets(f.binding("web").GetSpec().GetClusters()); got != "dc-a1=2,dc-b1=2" {
		t.Errorf("a blocked failover moved the workload: %s", got)
	}
}

// markDrill marks clusters failed by drill on name's binding (as an
// unplanned drill does: hub/drill), since ago.
func (f *fixture) markDrill(name, drill string, clusters []string, ago time.Duration) {
	f.t.Helper()
	_, err := f.st.Update(f.ctx, resource.MustLookup("ResourceBinding"), "demo", "deployment."+name, func(o resource.Object) error {
		b := o.(*meridianv1.ResourceBinding)
		failover.MarkDrillFailure(b, clusters, time.Now().Add(-ago))
		if drill != "" {
			b.Metadata.Annotations[placement.AnnotationDrill] = drill
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestDrillFailedCluster: a cluster an unplanned drill marks failed on one
// binding is Unreachable for that workload alone: after the toleration
// (from the mark) failover moves it as off a failed cluster — same region
// first, the copy purged at once even though the policy purges graciously
// (the cluster is in fact healthy), a history entry and an event that name
// the drill, the metric. Another workload on the same cluster stays, and a
// mark on a binding no drill holds is ignored. ClearDrillFailure removes
// the mark and failover's records of it.
func TestDrillFailedCluster(t *testing.T) {
	f := start(t, nil)
	f.apply(policy("fast", "tolerationSeconds: 1"))
	for _, n := range []string{"web", "other", "stray"} {
		f.place(n, 6, "fast", "dc-a1=2,dc-a2=2,dc-b1=2")
		f.label(n, "fast")
	}
	f.markDrill("stray", "", []string{"dc-a1"}, time.Minute) // no drill holds it
	f.markDrill("other", "d2", []string{"dc-a1"}, 0)
	if _, err := f.st.Update(f.ctx, resource.MustLookup("ResourceBinding"), "demo", "deployment.other", func(o resource.Object) error {
		failover.ClearDrillFailure(o.(*meridianv1.ResourceBinding)) // the drill ended within the toleration
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.markDrill("web", "d1", []string{"dc-a1"}, 0)
	b := f.waitTargets("web", "dc-a2=4,dc-b1=2")
	if got := time.Since(b.GetStatus().GetHistory()[0].GetTime().AsTime()); got > 5*time.Second {
		t.Errorf("moved %s ago", got)
	}
	if ev := b.GetSpec().GetEvicting(); len(ev) != 0 {
		t.Errorf("a drill-failed cluster's copy was kept: evicting %v", ev)
	}
	if fo := b.GetSpec().GetFailedOver(); len(fo) != 1 || fo[0].GetCluster() != "dc-a1" || fo[0].GetReplicas() != 2 {
		t.Errorf("failedOver = %v", fo)
	}
	h := b.GetStatus().GetHistory()
	if len(h) != 1 || h[0].GetType() != failover.MoveFailover || !strings.Contains(h[0].GetReason(), "moved 2 replicas from dc-a1 (failed by drill d1 for 1s) to dc-a2 (2)") {
		t.Errorf("history = %v", h)
	}
	if msg := f.waitEvent("web", failover.ReasonFailedOver); !strings.Contains(msg, "failed by drill d1") {
		t.Errorf("event %q", msg)
	}
	time.Sleep(500 * time.Millisecond) // past other's toleration, had its mark stayed
	for _, n := range []string{"other", "stray"} {
		if got := targets(f.binding(n).GetSpec().GetClusters()); got != "dc-a1=2,dc-a2=2,dc-b1=2" {
			t.Errorf("%s moved: %s", n, got)
		}
	}
	b = f.binding("web")
	if cs, _, d := failover.DrillFailure(b); strings.Join(cs, ",") != "dc-a1" || d != "d1" {
		t.Errorf("DrillFailure = %v %q", cs, d)
	}
	if got := failover.ClearDrillFailure(b); strings.Join(got, ",") != "dc-a1" || len(b.GetSpec().GetFailedOver()) != 0 {
		t.Errorf("ClearDrillFailure = %v, failedOver %v", got, b.GetSpec().GetFailedOver())
	}
	if _, ok := b.GetMetadata().GetAnnotations()[failover.AnnotationDrillFailed]; ok {
		t.Errorf("mark left: %v", b.GetMetadata().GetAnnotations())
	}
}
