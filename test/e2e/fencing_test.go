package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/hub/fencing"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Lease timings of the fencing tests: a 2 s lease, the hub's margin 500 ms
// (the member's is a fifth of the lease, 400 ms).
var fenceHubFlags = []string{"--lease-duration", "2s", "--lease-margin", "500ms", "--heartbeat-timeout", "1500ms"}

// fenceRig is a hub and two members of region-a, each in its own network
// namespace, and a recording singleton (a StatefulSet of one replica).
type fenceRig struct {
	f       *faultFederation
	members map[string]*faultMember // by name
	byIP    map[string]string       // pod CIDR prefix → member name
	records string
	admin   meridianv1.AdminServiceClient
}

func newFenceRig(t *testing.T, failback string) *fenceRig {
	t.Helper()
	lab := newNetLab(t)
	f := startFaultFederation(t, lab, fenceHubFlags...)
	r := &fenceRig{f: f, members: map[string]*faultMember{}, records: filepath.Join(t.TempDir(), "records"),
		byIP: map[string]string{"127.71.": "dc-a1", "127.72.": "dc-a2"}, admin: adminClient(t, f.hub)}
	for _, s := range topology[:2] {
		r.members[s.name] = f.startMember(t, s)
	}
	r.waitReady(t, "dc-a1", "dc-a2")
	if out, err := runCLI(t, f.hub, singletonManifest(r.records, failback), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "the singleton running in dc-a1", 60*time.Second, func() bool { return r.holder(t) == "dc-a1" })
	return r
}

// singletonManifest places the recording StatefulSet on dc-a1 (weight 3
// to 1 over dc-a2), failing over after 1 s; failback is the policy's
// failover block field (e.g. "failback: Manual").
func singletonManifest(records, failback string) string {
	return `apiVersion: v1
kind: Namespace
metadata: {name: fence}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: single, namespace: fence}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: StatefulSet}]
  placement:
    clusterAffinity: {clusterNames: [dc-a1, dc-a2]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        hierarchicalWeights:
          regions:
          - {name: region-a, weight: 1, datacenters: [{name: dc-a1, weight: 3}, {name: dc-a2, weight: 1}]}
  failover: {tolerationSeconds: 1, purgeMode: Immediately, ` + failback + `}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: fence}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: ["sh", "-c", ` + strconv.Quote(singletonScript(records)) + `]
`
}

// waitReady waits until the named clusters are Ready on the hub.
func (r *fenceRig) waitReady(t testing.TB, names ...string) {
	t.Helper()
	waitFor(t, strings.Join(names, ", ")+" Ready", 60*time.Second, func() bool {
		cs := r.f.clusters(t)
		for _, n := range names {
			if clusterHealth(cs[n]) != "Ready" {
				return false
			}
		}
		return true
	})
}

// lives reads the records (none yet is no copy).
func (r *fenceRig) lives(t testing.TB) []copyLife {
	t.Helper()
	lives, err := readLives(r.records)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return lives
}

// holder is the member whose copy wrote a record in the last 500 ms and
// has not stopped ("" if none).
func (r *fenceRig) holder(t testing.TB) string {
	t.Helper()
	now := time.Now()
	for _, c := range r.lives(t) {
		if !c.stopped && now.Sub(c.end.Add(-beatBound)) < 500*time.Millisecond {
			for prefix, name := range r.byIP {
				if strings.HasPrefix(c.member(), prefix) {
					return name
				}
			}
		}
	}
	return ""
}

// check runs the checker over every record so far.
func (r *fenceRig) check(t testing.TB) []copyLife {
	t.Helper()
	lives := r.lives(t)
	if err := checkLives(lives, time.Now()); err != nil {
		t.Error(err)
	}
	return lives
}

// waitMoved waits for a copy on another member than from. A hub without a
// failover controller does not move it: after a while the test moves it
// itself, the way failover does — Release from the fence (a fencing.Table
// over the hub's etcd, as another hub node would have), then the binding
// with the new epoch — and says so.
func (r *fenceRig) waitMoved(t testing.TB, from, to string, fallbackAfter time.Duration) (manual bool) {
	t.Helper()
	deadline := time.Now().Add(fallbackAfter)
	for time.Now().Before(deadline) {
		if h := r.holder(t); h != "" && h != from {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("no failover after %s: moving the singleton by hand (fence, then binding)", fallbackAfter)
	epoch := r.release(t, "fence/StatefulSet/db", from, false)
	r.bind(t, to, epoch)
	waitFor(t, "the singleton running in "+to, 60*time.Second, func() bool { return r.holder(t) == to })
	return true
}

// release calls Release until it grants the move and returns the epoch;
// with revoke, Revoke first (a planned move off a cluster that holds its
// lease).
func (r *fenceRig) release(t testing.TB, workload, cluster string, revoke bool) int64 {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{r.f.etcdURL()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	tb, err := fencing.New(fencing.Config{Client: cli, Lease: 2 * time.Second, Margin: 500 * time.Millisecond, Node: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if revoke {
		if err := tb.Revoke(ctx, workload, cluster); err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	for {
		epoch, wait, err := tb.Release(ctx, workload, cluster)
		if err != nil {
			t.Fatalf("release: %v", err)
		}
		if wait == 0 {
			t.Logf("released %s from %s: epoch %d", workload, cluster, epoch)
			return epoch
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			t.Fatal("release: the lease never expired")
		}
	}
}

// plannedMove moves the singleton from the member that runs it to the
// other, fenced, the way a failback or a switchover must: Revoke against a
// cluster that still holds its lease, the member stops its copy and says
// so with its next renewal, Release then answers with the new epoch, and
// only then does the binding move.
func (r *fenceRig) plannedMove(t testing.TB, from, to string) time.Duration {
	t.Helper()
	start := time.Now()
	epoch := r.release(t, "fence/StatefulSet/db", from, true)
	took := time.Since(start)
	r.bind(t, to, epoch)
	deadline := time.Now().Add(30 * time.Second)
	for r.holder(t) != to {
		if time.Now().After(deadline) {
			out, _ := runCLI(t, r.f.hub, "", "get", "resourcebindings", "-n", "fence", "-o", "yaml")
			t.Fatalf("the singleton does not run in %s 30s after it was bound there with epoch %d; binding:\n%s", to, epoch, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return took
}

// bind places the singleton on cluster with epoch, as failover would.
func (r *fenceRig) bind(t testing.TB, cluster string, epoch int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.admin.Get(ctx, &meridianv1.GetRequest{Kind: "resourcebindings", Namespace: "fence", Name: "statefulset.db"})
	if err != nil {
		t.Fatalf("get the binding: %v", err)
	}
	b := proto.Clone(resp.GetObject().GetResourceBinding()).(*meridianv1.ResourceBinding)
	b.Spec.Clusters = []*meridianv1.TargetCluster{{Name: cluster, Replicas: 1}}
	b.Spec.FencingEpoch = epoch
	// Back to a cluster it failed over from: that is a failback, which
	// clears the failover record (else placement keeps the cluster out).
	b.Spec.FailedOver = slices.DeleteFunc(b.Spec.FailedOver, func(f *meridianv1.FailedOver) bool { return f.GetCluster() == cluster })
	if _, err := r.admin.Apply(ctx, &meridianv1.ApplyRequest{Object: &meridianv1.Object{Kind: &meridianv1.Object_ResourceBinding{ResourceBinding: b}}}); err != nil {
		t.Fatalf("apply the binding: %v", err)
	}
}

// TestSingletonFencing partitions dc-a1 from the hub while it runs a
// singleton: dc-a1 stops its copy before its lease ends, the hub moves the
// singleton to dc-a2 only after that lease has expired plus its margin,
// with a higher fencing epoch, and the pods' own records show that the
// old copy stopped before the new one started.
func TestSingletonFencing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub and two members in network namespaces")
	}
	r := newFenceRig(t, "failback: Manual")
	a1 := r.members["dc-a1"]
	time.Sleep(300 * time.Millisecond)

	cut := time.Now()
	a1.partition(t)
	manual := r.waitMoved(t, "dc-a1", "dc-a2", 25*time.Second)
	time.Sleep(time.Second)
	// Healed, dc-a1 learns that the singleton left (or is fenced off it by
	// its epoch floor) and does not start its old copy again.
	a1.heal(t)
	r.waitReady(t, "dc-a1")
	time.Sleep(1500 * time.Millisecond)
	if h := r.holder(t); h != "dc-a2" {
		t.Errorf("after the heal the singleton runs in %q, want dc-a2", h)
	}

	// A planned move back (dc-a2 keeps its lease): fenced through the
	// member's report, with a higher epoch again.
	took := r.plannedMove(t, "dc-a2", "dc-a1")
	t.Logf("planned move dc-a2 → dc-a1: released after %s (dc-a2 reported its copy fenced)", took.Round(time.Millisecond))

	lives := r.check(t)
	// The first copy on dc-a1 and the first on dc-a2: the failover.
	var old, cur *copyLife
	for i := range lives {
		switch r.byIP[lives[i].member()[:7]] {
		case "dc-a1":
			if old == nil {
				old = &lives[i]
			}
		case "dc-a2":
			if cur == nil {
				cur = &lives[i]
			}
		}
	}
	if old == nil || cur == nil {
		t.Fatalf("records show no copy on dc-a1 or dc-a2:\n%v", lives)
	}
	if !old.stopped {
		t.Errorf("the dc-a1 copy left no stop record (it should fence itself with SIGTERM): %v", old)
	}
	if cur.epoch <= old.epoch {
		t.Errorf("the new copy's epoch %d is not above the old one's %d", cur.epoch, old.epoch)
	}
	t.Logf("partition → old copy stopped %s (lease 2s, member margin 400ms)", old.end.Sub(cut).Round(time.Millisecond))
	t.Logf("partition → new copy started %s; gap between copies %s; moved by hand: %v",
		cur.start.Sub(cut).Round(time.Millisecond), cur.start.Sub(old.end).Round(time.Millisecond), manual)
	for _, c := range lives {
		t.Logf("  %v", c)
	}
}

// TestSingletonFencingRandomized repeats faults of whichever member holds
// the singleton — a partition, a pause (SIGSTOP) or a kill (SIGKILL, then
// a restart), each held for a random time — and fenced planned moves
// between the members, and runs the same checker over every copy's
// records after each round. It takes minutes:
//
//	MERIDIAN_LONG_TESTS=1 go test ./test/e2e -run TestSingletonFencingRandomized -v -timeout 30m
//
// MERIDIAN_FENCE_ROUNDS sets the number of rounds (default 10) and
// MERIDIAN_FENCE_SEED the random seed (default: the time; it is logged).
//
// Failback is Automatic in its policy (stabilization 1 s): after a fault
// that moved the singleton, the hub moves it back itself, fenced (Revoke
// and Release against the member that holds its lease, then the binding
// with the new epoch); the test waits for that before the next round, so
// that both members stay candidates for the next failover. A pause is
// held as long as the other faults: a paused member agent cannot stop its
// pods (they are separate processes), but its fence watchdog kills them at
// the lease deadline — see docs/failover.md, "The fence watchdog".
func TestSingletonFencingRandomized(t *testing.T) {
	if os.Getenv("MERIDIAN_LONG_TESTS") != "1" {
		t.Skip("set MERIDIAN_LONG_TESTS=1 to run (minutes)")
	}
	rounds := 10
	if v, err := strconv.Atoi(os.Getenv("MERIDIAN_FENCE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("MERIDIAN_FENCE_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (MERIDIAN_FENCE_SEED), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	r := newFenceRig(t, "failback: Automatic, stabilizationSeconds: 1")
	other := map[string]string{"dc-a1": "dc-a2", "dc-a2": "dc-a1"}
	failovers, failbacks, planned := 0, 0, 0
	for round := 0; round < rounds; round++ {
		start := time.Now()
		from := r.waitHolder(t, round)
		m := r.members[from]
		x := randomFault(rng, 500*time.Millisecond, 8*time.Second)
		time.Sleep(time.Duration(rng.Int64N(int64(time.Second))))
		t.Logf("round %d: %s holds the singleton; %v", round, from, x)
		switch x.kind {
		case "partition":
			m.partition(t)
			time.Sleep(x.hold)
			m.heal(t)
		case "pause":
			m.pause(t)
			time.Sleep(x.hold)
			m.resume(t)
		case "kill":
			m.kill(t)
			time.Sleep(x.hold)
			r.members[from] = r.f.restartMember(t, m)
		}
		r.waitReady(t, "dc-a1", "dc-a2")
		time.Sleep(2 * time.Second) // a failover under way finishes
		if err := checkLives(r.lives(t), time.Now()); err != nil {
			t.Fatalf("round %d (%v on %s): %v", round, x, from, err)
		}
		fo, fb := r.waitFailedBack(t, round, start)
		failovers, failbacks = failovers+fo, failbacks+fb
		if fo > 0 {
			t.Logf("round %d: failed over %d time(s), failed back %d time(s) by the hub, fenced", round, fo, fb)
		}
		if err := checkLives(r.lives(t), time.Now()); err != nil {
			t.Fatalf("round %d (after the failback): %v", round, err)
		}
		if h := r.waitHolder(t, round); rng.IntN(2) == 0 {
			t.Logf("round %d: planned move %s → %s", round, h, other[h])
			r.plannedMove(t, h, other[h])
			planned++
			if err := checkLives(r.lives(t), time.Now()); err != nil {
				t.Fatalf("round %d (after the planned move): %v", round, err)
			}
		}
	}
	lives := r.check(t)
	t.Logf("%d rounds: %d failovers, %d automatic failbacks, %d planned moves, %d copies, no overlap",
		rounds, failovers, failbacks, planned, len(lives))
}

// waitFailedBack waits (up to a minute) until the singleton's binding has
// no failover left to undo (spec.failedOver empty: the hub failed back, or
// nothing failed over) and a member runs it, and counts the Failover and
// Failback moves of its history since since.
func (r *fenceRig) waitFailedBack(t testing.TB, round int, since time.Time) (failovers, failbacks int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := r.admin.Get(ctx, &meridianv1.GetRequest{Kind: "resourcebindings", Namespace: "fence", Name: "statefulset.db"})
		cancel()
		if err != nil {
			t.Fatalf("get the binding: %v", err)
		}
		b := resp.GetObject().GetResourceBinding()
		if len(b.GetSpec().GetFailedOver()) == 0 && r.holder(t) != "" {
			for _, m := range b.GetStatus().GetHistory() {
				if m.GetTime().AsTime().Before(since) {
					continue
				}
				switch m.GetType() {
				case "Failover":
					failovers++
				case "Failback":
					failbacks++
				}
			}
			return failovers, failbacks
		}
		if time.Now().After(deadline) {
			out, _ := runCLI(t, r.f.hub, "", "get", "resourcebindings", "-n", "fence", "-o", "yaml")
			t.Fatalf("round %d: the singleton did not fail back (or runs nowhere) for 60s; binding:\n%s", round, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHolder waits (up to a minute) for a member to run the singleton and
// names it; a minute without a copy anywhere fails the test (safe, but
// stalled).
func (r *fenceRig) waitHolder(t testing.TB, round int) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if h := r.holder(t); h != "" {
			return h
		}
		if time.Now().After(deadline) {
			out, _ := runCLI(t, r.f.hub, "", "get", "resourcebindings", "-n", "fence", "-o", "yaml")
			t.Fatalf("round %d: no copy of the singleton runs anywhere for 60s (safe, but stalled); binding:\n%s", round, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartMember starts a killed member again on its data, in its
// namespace (its certificate is stored: no token).
func (f *faultFederation) restartMember(t testing.TB, m *faultMember) *faultMember {
	t.Helper()
	args := m.cmd.Args[5:] // ip netns exec <ns> <bin> ...
	var kept []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--join-token" || args[i] == "--hub-ca-pin" {
			i++
			continue
		}
		kept = append(kept, args[i])
	}
	p := &memberProcess{done: make(chan error, 1), api: m.api, httpAddr: m.httpAddr, gossipAddr: m.gossipAddr, cli: m.cli}
	p.cmd = m.ns.command(meridianBinary(t), kept...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	waitReady(t, p.httpAddr, p.done)
	f.members[m.spec.name] = p
	return &faultMember{memberProcess: p, spec: m.spec, ns: m.ns}
}
