package drill_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The singleton tests run the drill runner alone over a local store: the
// test plays the placement controller (it writes the bindings), the works
// controller and the members (a loop that gives every binding target a
// Work and the workload a status with its replicas ready, and records
// every placement it sees), so that the fence's calls can be checked
// against the binding writes.

type unit struct {
	t   *testing.T
	ctx context.Context
	st  storage.Interface

	mu   sync.Mutex
	seen []string // distinct placements of db: "dc-a1=1 epoch 0"
	two  []string // placements that gave db replicas on two clusters
}

// startUnit opens a store with namespace demo, three Ready clusters (dc-a1
// and dc-a2 in region-a, dc-b1 in region-b), a policy that places db on
// dc-a1 or dc-b1, StatefulSet db (1 replica) on dc-a1 and Deployment web
// (2 replicas) on dc-a1; it runs the members' loop and a drill runner
// with fence (nil: none).
func startUnit(t *testing.T, fence drill.Fence) *unit {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	u := &unit{t: t, ctx: ctx, st: st}
	u.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n")
	for _, c := range [][3]string{{"dc-a1", "region-a", "dc-a1"}, {"dc-a2", "region-a", "dc-a2"}, {"dc-b1", "region-b", "dc-b1"}} {
		u.apply(fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", federation.ClusterNamespace(c[0])))
		u.apply(fmt.Sprintf("apiVersion: meridian.io/v1\nkind: Cluster\nmetadata: {name: %s}\nspec: {region: %s, datacenter: %s}\n", c[0], c[1], c[2]))
		if _, err := st.Update(ctx, resource.MustLookup("Cluster"), "", c[0], func(o resource.Object) error {
			o.(*meridianv1.Cluster).Status = &meridianv1.ClusterStatus{Conditions: []*meridianv1.Condition{{
				Type: "Ready", Status: "True", Reason: "Ready", LastTransitionTime: timestamppb.New(time.Now().Add(-time.Minute)),
			}}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	u.apply(`apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: pair, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: StatefulSet}, {apiVersion: apps/v1, kind: Deployment}]
  placement:
    clusterAffinity: {clusterNames: [dc-a1, dc-b1]}
    replicaScheduling: {replicaSchedulingType: Divided}
  failover: {tolerationSeconds: 1}
`)
	u.place("StatefulSet", "db", 1, `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo, labels: {drill: "yes"}}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: main, image: db:1}]}
`)
	u.place("Deployment", "web", 2, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo, labels: {drill: "yes"}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: web:1}]}
`)
	engine, err := placement.New(placement.DefaultConfig(), placement.Builtins())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	r, err := drill.New(drill.Config{Store: st, Engine: engine, Fence: fence, Poll: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	// The failover controller moves what an unplanned drill marks failed.
	inf := controller.NewInformerSet(st, log)
	fcfg := failover.Config{Engine: engine, Store: st, Informers: inf, Log: log}
	if fence != nil {
		fcfg.Fence = fence
	}
	fo, err := failover.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 4)
	go func() { u.members(runCtx); done <- struct{}{} }()
	go func() { r.Run(runCtx); done <- struct{}{} }()
	go func() { inf.Run(runCtx); done <- struct{}{} }()
	go func() { fo.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done; <-done; <-done })
	u.eventually("db and web ready on dc-a1", func() (bool, string) {
		s := u.seenNow()
		return strings.Contains(s, "db: dc-a1=1 epoch 0"), s
	})
	return u
}

func (u *unit) apply(yaml string) resource.Object {
	u.t.Helper()
	docs, err := manifest.Decode([]byte(yaml), "test.yaml")
	if err != nil {
		u.t.Fatal(err)
	}
	var last resource.Object
	for _, d := range docs {
		if last, _, err = u.st.Apply(u.ctx, d.Object, storage.ApplyOptions{}); err != nil {
			u.t.Fatalf("apply %s: %v", d.Object.GetMetadata().GetName(), err)
		}
	}
	return last
}

// place creates the workload and the binding the placement controller
// would write for it: all its replicas on dc-a1.
func (u *unit) place(kind, name string, replicas int32, yaml string) {
	u.t.Helper()
	obj := u.apply(yaml)
	b := &meridianv1.ResourceBinding{
		ApiVersion: resource.MeridianAPIVersion, Kind: "ResourceBinding",
		Metadata: &meridianv1.ObjectMeta{Name: placement.BindingName(kind, name), Namespace: "demo"},
		Spec: &meridianv1.ResourceBindingSpec{
			Resource: &meridianv1.ObjectReference{ApiVersion: "apps/v1", Kind: kind, Namespace: "demo", Name: name, Uid: obj.GetMetadata().GetUid()},
			Replicas: replicas, Clusters: []*meridianv1.TargetCluster{{Name: "dc-a1", Replicas: replicas}},
		},
	}
	if _, err := u.st.Create(u.ctx, b); err != nil {
		u.t.Fatal(err)
	}
}

// members plays the works controller and the members until ctx ends:
// every target of a binding gets a Work (replicas as the target's) that
// reports them all running and ready, a cluster a binding leaves loses
// its Work, and the workload's status.clusters is what the Works report.
func (u *unit) members(ctx context.Context) {
	for ctx.Err() == nil {
		objs, _, err := u.st.List(ctx, resource.MustLookup("ResourceBinding"), "demo", nil)
		if err == nil {
			for _, o := range objs {
				u.serve(ctx, o.(*meridianv1.ResourceBinding))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (u *unit) serve(ctx context.Context, b *meridianv1.ResourceBinding) {
	ref := b.GetSpec().GetResource()
	k := resource.MustLookup(ref.GetKind())
	var parts []string
	var running int
	var cs []*meridianv1.ClusterWorkloadStatus
	want := map[string]bool{}
	for _, tc := range b.GetSpec().GetClusters() {
		want[tc.GetName()] = true
		parts = append(parts, fmt.Sprintf("%s=%d", tc.GetName(), tc.GetReplicas()))
		if tc.GetReplicas() > 0 {
			running++
		}
		n := tc.GetReplicas()
		ns, wn := federation.ClusterNamespace(tc.GetName()), federation.WorkName(k, ref.GetNamespace(), ref.GetName())
		w := &meridianv1.Work{ApiVersion: resource.MeridianAPIVersion, Kind: "Work",
			Metadata: &meridianv1.ObjectMeta{Name: wn, Namespace: ns},
			Spec: &meridianv1.WorkSpec{Cluster: tc.GetName(), Source: ref,
				Workload: resource.MustWrap(&meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap",
					Metadata: &meridianv1.ObjectMeta{Name: ref.GetName(), Namespace: "demo", Annotations: map[string]string{
						"replicas": fmt.Sprint(n), "epoch": fmt.Sprint(b.GetSpec().GetFencingEpoch())}}})}}
		if _, _, err := u.st.Apply(ctx, w, storage.ApplyOptions{}); err != nil {
			continue
		}
		_, _ = u.st.Update(ctx, resource.MustLookup("Work"), ns, wn, func(o resource.Object) error {
			w := o.(*meridianv1.Work)
			w.Status = &meridianv1.WorkStatus{Workload: &meridianv1.ClusterWorkloadStatus{
				Cluster: tc.GetName(), Replicas: n, Current: n, ReadyReplicas: n, Applied: true, ObservedGeneration: w.GetMetadata().GetGeneration()}}
			return nil
		})
		cs = append(cs, &meridianv1.ClusterWorkloadStatus{Cluster: tc.GetName(), Replicas: n, Current: n, ReadyReplicas: n})
	}
	for _, c := range []string{"dc-a1", "dc-a2", "dc-b1"} {
		if !want[c] {
			_, _ = u.st.Delete(ctx, resource.MustLookup("Work"), federation.ClusterNamespace(c), federation.WorkName(k, ref.GetNamespace(), ref.GetName()), "")
		}
	}
	_, _ = u.st.Update(ctx, k, ref.GetNamespace(), ref.GetName(), func(o resource.Object) error {
		var ready int32
		for _, c := range cs {
			ready += c.GetReadyReplicas()
		}
		switch x := o.(type) {
		case *meridianv1.StatefulSet:
			x.Status = &meridianv1.StatefulSetStatus{Clusters: cs, ReadyReplicas: ready, Replicas: ready}
		case *meridianv1.Deployment:
			x.Status = &meridianv1.DeploymentStatus{Clusters: cs, ReadyReplicas: ready, Replicas: ready}
		}
		return nil
	})
	placed := fmt.Sprintf("%s: %s epoch %d", ref.GetName(), strings.Join(parts, ","), b.GetSpec().GetFencingEpoch())
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lastOf(ref.GetName()) != placed {
		u.seen = append(u.seen, placed)
	}
	if ref.GetKind() == "StatefulSet" && running > 1 {
		u.two = append(u.two, placed)
	}
}

// lastOf is the last placement seen of name (u.mu held).
func (u *unit) lastOf(name string) string {
	for i := len(u.seen) - 1; i >= 0; i-- {
		if strings.HasPrefix(u.seen[i], name+": ") {
			return u.seen[i]
		}
	}
	return ""
}

func (u *unit) seenNow() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.seen, " | ")
}

// seenOf is the placements of name seen, in order.
func (u *unit) seenOf(name string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, s := range u.seen {
		if strings.HasPrefix(s, name+": ") {
			out = append(out, strings.TrimPrefix(s, name+": "))
		}
	}
	return out
}

func (u *unit) eventually(what string, cond func() (bool, string)) {
	u.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("timed out waiting for %s: %s", what, detail)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (u *unit) runDrill(name, mode string) {
	u.t.Helper()
	u.apply(fmt.Sprintf("apiVersion: meridian.io/v1\nkind: Drill\nmetadata: {name: %s}\nspec:\n  scope: {datacenter: dc-a1}\n  mode: %s\n  rto: 30s\n  workloads: {matchLabels: {drill: \"yes\"}}\n", name, mode))
}

func (u *unit) drill(name string) *meridianv1.Drill {
	u.t.Helper()
	o, err := u.st.Get(u.ctx, resource.MustLookup("Drill"), "", name)
	if err != nil {
		u.t.Fatal(err)
	}
	return o.(*meridianv1.Drill)
}

func (u *unit) waitEnded(name string) *meridianv1.Drill {
	u.t.Helper()
	var d *meridianv1.Drill
	u.eventually("drill "+name+" to end", func() (bool, string) {
		d = u.drill(name)
		return drill.Ended(d.GetStatus().GetPhase()), d.GetStatus().GetPhase() + " " + steps(d)
	})
	return d
}

func (u *unit) binding(kind, name string) *meridianv1.ResourceBinding {
	u.t.Helper()
	o, err := u.st.Get(u.ctx, resource.MustLookup("ResourceBinding"), "demo", placement.BindingName(kind, name))
	if err != nil {
		u.t.Fatal(err)
	}
	return o.(*meridianv1.ResourceBinding)
}

// details is the drill's timeline details of step.
func details(d *meridianv1.Drill, step string) []string {
	var out []string
	for _, s := range d.GetStatus().GetTimeline() {
		if s.GetStep() == step {
			out = append(out, s.GetDetail())
		}
	}
	return out
}

// fakeFence behaves like hub/fencing.Table for clusters that keep their
// lease: Revoke allocates the next epoch (nothing if one is pending);
// Release without a pending Revoke waits (for a lease a healthy cluster
// keeps renewing), and after one answers wait `waits` times (the member
// stopping its copy) before it commits the pending epoch. needRevokes > 1
// holds the commit until that many Revokes of the cluster. Every call is
// recorded with db's placement at the time of the call.
type fakeFence struct {
	u           *unit
	waits       int
	needRevokes int

	mu       sync.Mutex
	epoch    int64
	revoking map[string]int64
	revokes  map[string]int
	asked    map[string]int
	calls    []string
}

func newFakeFence(epoch int64, waits int) *fakeFence {
	return &fakeFence{epoch: epoch, waits: waits, needRevokes: 1, revoking: map[string]int64{}, revokes: map[string]int{}, asked: map[string]int{}}
}

// placement is db's binding now, read straight from the store (the
// runner's goroutine calls the fence: no t.Fatal here).
func (f *fakeFence) placement() string {
	o, err := f.u.st.Get(context.Background(), resource.MustLookup("ResourceBinding"), "demo", placement.BindingName("StatefulSet", "db"))
	if err != nil {
		return "?"
	}
	b := o.(*meridianv1.ResourceBinding)
	return fmt.Sprintf("%s epoch %d", targets(b), b.GetSpec().GetFencingEpoch())
}

func (f *fakeFence) Revoke(_ context.Context, workload, cluster string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("revoke %s %s [%s]", workload, cluster, f.placement()))
	if f.revoking[cluster] == 0 {
		f.epoch++
		f.revoking[cluster] = f.epoch
	}
	f.revokes[cluster]++
	return nil
}

func (f *fakeFence) Release(_ context.Context, workload, cluster string) (int64, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if workload != "demo/StatefulSet/db" {
		f.calls = append(f.calls, "release of "+workload)
		return 0, 0, errors.New("not a singleton")
	}
	ep := f.revoking[cluster]
	if ep == 0 || f.revokes[cluster] < f.needRevokes {
		f.calls = append(f.calls, fmt.Sprintf("release %s %s: lease holds [%s]", workload, cluster, f.placement()))
		return 0, 20 * time.Millisecond, nil
	}
	if f.asked[cluster]++; f.asked[cluster] <= f.waits {
		f.calls = append(f.calls, fmt.Sprintf("release %s %s: wait [%s]", workload, cluster, f.placement()))
		return 0, 20 * time.Millisecond, nil
	}
	f.calls = append(f.calls, fmt.Sprintf("release %s %s: epoch %d [%s]", workload, cluster, ep, f.placement()))
	delete(f.revoking, cluster)
	f.asked[cluster] = 0
	f.revokes[cluster] = 0
	return ep, 0, nil
}

func (f *fakeFence) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// collapseRevokes drops the Revokes that repeat one still pending: the
// failover controller revokes again each time it retries a release, which
// changes nothing (the drill's own fencing revokes once).
func collapseRevokes(calls []string) []string {
	var out []string
	pending := map[string]bool{}
	for _, c := range calls {
		if strings.HasPrefix(c, "revoke ") {
			if pending[c] {
				continue
			}
			pending[c] = true
		}
		if strings.Contains(c, ": epoch ") {
			pending = map[string]bool{}
		}
		out = append(out, c)
	}
	return out
}

// releaseOnly is a fence that cannot revoke.
type releaseOnly struct{}

func (releaseOnly) Release(context.Context, string, string) (int64, time.Duration, error) {
	return 0, time.Second, nil
}

// checkFencedRoundTrip checks a drill of dc-a1 that moved db to dc-b1
// and back: the fence's calls in order (revoke, then release until the
// epoch, with the binding still on the cluster left at each; then the same
// off dc-b1 for the restore), the placements db went through (never two
// clusters, the epoch raised by each move) and the timeline.
func checkFencedRoundTrip(t *testing.T, u *unit, f *fakeFence, d *meridianv1.Drill) {
	t.Helper()
	want := []string{
		"revoke demo/StatefulSet/db dc-a1 [dc-a1=1 epoch 0]",
		"release demo/StatefulSet/db dc-a1: wait [dc-a1=1 epoch 0]",
		"release demo/StatefulSet/db dc-a1: wait [dc-a1=1 epoch 0]",
		"release demo/StatefulSet/db dc-a1: epoch 3 [dc-a1=1 epoch 0]",
		"revoke demo/StatefulSet/db dc-b1 [dc-b1=1 epoch 3]",
		"release demo/StatefulSet/db dc-b1: wait [dc-b1=1 epoch 3]",
		"release demo/StatefulSet/db dc-b1: wait [dc-b1=1 epoch 3]",
		"release demo/StatefulSet/db dc-b1: epoch 4 [dc-b1=1 epoch 3]",
	}
	if got := collapseRevokes(f.callList()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fence calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	u.eventually("db's placements", func() (bool, string) {
		got := strings.Join(u.seenOf("db"), " > ")
		return got == "dc-a1=1 epoch 0 > dc-b1=1 epoch 3 > dc-a1=1 epoch 4", got
	})
	if len(u.two) > 0 {
		t.Errorf("db ran on two clusters: %v", u.two)
	}
	b := u.binding("StatefulSet", "db")
	if targets(b) != "dc-a1=1" || b.GetSpec().GetFencingEpoch() != 4 || len(b.GetMetadata().GetAnnotations()) != 0 {
		t.Errorf("db's binding after the drill: %s epoch %d %v", targets(b), b.GetSpec().GetFencingEpoch(), b.GetMetadata().GetAnnotations())
	}
	if got := strings.Join(details(d, "Fenced"), "; "); got != "fenced db on dc-a1, epoch 3; fenced db on dc-b1, epoch 4" {
		t.Errorf("Fenced steps: %s", got)
	}
	// web is no singleton: the fence never heard of it (a call for it
	// would be in the list above), and it has no epoch.
	if b := u.binding("Deployment", "web"); targets(b) != "dc-a1=2" || b.GetSpec().GetFencingEpoch() != 0 {
		t.Errorf("web's binding after the drill: %s epoch %d", targets(b), b.GetSpec().GetFencingEpoch())
	}
}

// TestPlannedSingletonFenced: a planned drill of dc-a1 cannot bring the
// StatefulSet db up on dc-b1 first: it revokes db on dc-a1, releases it
// until the fence answers with epoch 3, and only then moves the binding
// (with that epoch); the restore does the same off dc-b1 (epoch 4).
// Deployment web, in the same drill, still switches over targets first.
// db's RTO covers the stop.
func TestPlannedSingletonFenced(t *testing.T) {
	f := newFakeFence(2, 2)
	u := startUnit(t, f)
	f.u = u
	u.runDrill("p", drill.ModePlanned)
	d := u.waitEnded("p")
	if d.GetStatus().GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	checkFencedRoundTrip(t, u, f, d)
	u.eventually("web's placements, targets first", func() (bool, string) {
		got := strings.Join(u.seenOf("web"), " > ")
		return got == "dc-a1=2 epoch 0 > dc-a1=2,dc-b1=2 epoch 0 > dc-b1=2 epoch 0 > dc-a1=2,dc-b1=2 epoch 0 > dc-a1=2 epoch 0", got
	})
	for _, w := range d.GetStatus().GetWorkloads() {
		rto := w.GetRto().AsDuration()
		switch w.GetWorkload().GetName() {
		case "db":
			if rto < 40*time.Millisecond {
				t.Errorf("db's planned RTO %s does not cover the fencing (two waits of 20ms)", rto)
			}
		case "web":
			if rto != 0 {
				t.Errorf("web's planned RTO %s, want 0", rto)
			}
		}
	}
}

// TestUnplannedSingletonFenced: an unplanned drill of dc-a1 marks it
// failed for db and web; the failover controller (not the drill) fences db
// off dc-a1 (revoke, release until epoch 3) before it moves db's binding
// to dc-b1 and records the move with the drill's name; the drill fails
// back the same way (epoch 4).
func TestUnplannedSingletonFenced(t *testing.T) {
	f := newFakeFence(2, 2)
	u := startUnit(t, f)
	f.u = u
	u.runDrill("u", drill.ModeUnplanned)
	d := u.waitEnded("u")
	if d.GetStatus().GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	checkFencedRoundTrip(t, u, f, d)
	for _, w := range d.GetStatus().GetWorkloads() {
		// The policy's toleration (1s) runs before failover moves it.
		if w.GetRto().AsDuration() < time.Second {
			t.Errorf("%s's RTO %s does not cover the toleration and the fencing", w.GetWorkload().GetName(), w.GetRto().AsDuration())
		}
		if !strings.Contains(w.GetMessage(), "failed by drill u") {
			t.Errorf("%s: message %q does not quote failover's move", w.GetWorkload().GetName(), w.GetMessage())
		}
	}
	for _, name := range []string{"db", "web"} {
		kind := map[string]string{"db": "StatefulSet", "web": "Deployment"}[name]
		var got []string
		for _, h := range u.binding(kind, name).GetStatus().GetHistory() {
			got = append(got, h.GetType()+": "+h.GetReason())
		}
		if len(got) != 2 || !strings.HasPrefix(got[0], "Failover: moved ") || !strings.Contains(got[0], "from dc-a1 (failed by drill u for 1s) to dc-b1") ||
			got[1] != "Failback: drill u ended: the placement before it is restored" {
			t.Errorf("%s's history:\n%s", name, strings.Join(got, "\n"))
		}
	}
}

// TestAbortFollowsThroughRevoke: a planned drill aborted while db is revoked on
// dc-a1 and the fence has not released it yet restores db on dc-a1 with
// the epoch that revocation allocated (the restore revokes again, which
// changes nothing, and releases until the epoch), instead of leaving the
// copy stopped for good; db never ran elsewhere.
func TestAbortFollowsThroughRevoke(t *testing.T) {
	f := newFakeFence(2, 0)
	f.needRevokes = 2 // only the restore's Revoke lets the release commit
	u := startUnit(t, f)
	f.u = u
	u.runDrill("a", drill.ModePlanned)
	u.eventually("db revoked on dc-a1", func() (bool, string) {
		calls := f.callList()
		return len(calls) > 1, strings.Join(calls, "\n")
	})
	if b := u.binding("StatefulSet", "db"); b.GetMetadata().GetAnnotations()[drill.AnnotationFencing] != "dc-a1" {
		t.Errorf("db's binding while revoked: %v", b.GetMetadata().GetAnnotations())
	}
	if _, err := u.st.Update(u.ctx, resource.MustLookup("Drill"), "", "a", func(o resource.Object) error {
		o.(*meridianv1.Drill).Spec.Abort = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := u.waitEnded("a")
	if d.GetStatus().GetPhase() != drill.PhaseAborted {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	calls := f.callList()
	if calls[0] != "revoke demo/StatefulSet/db dc-a1 [dc-a1=1 epoch 0]" || calls[len(calls)-1] != "release demo/StatefulSet/db dc-a1: epoch 3 [dc-a1=1 epoch 0]" ||
		calls[len(calls)-2] != "revoke demo/StatefulSet/db dc-a1 [dc-a1=1 epoch 0]" {
		t.Errorf("fence calls:\n%s", strings.Join(calls, "\n"))
	}
	u.eventually("db back on dc-a1 with epoch 3", func() (bool, string) {
		got := strings.Join(u.seenOf("db"), " > ")
		return got == "dc-a1=1 epoch 0 > dc-a1=1 epoch 3", got
	})
	b := u.binding("StatefulSet", "db")
	if targets(b) != "dc-a1=1" || b.GetSpec().GetFencingEpoch() != 3 || len(b.GetMetadata().GetAnnotations()) != 0 {
		t.Errorf("db's binding after the abort: %s epoch %d %v", targets(b), b.GetSpec().GetFencingEpoch(), b.GetMetadata().GetAnnotations())
	}
	if got := strings.Join(details(d, "Fenced"), "; "); got != "fenced db on dc-a1, epoch 3" {
		t.Errorf("Fenced steps: %s", got)
	}
}

// TestSingletonWithoutFence: with no fence a planned drill stops db first
// — dc-a1 scaled to 0 in its binding until its Work reports nothing
// running — then moves it to dc-b1 with the binding's epoch plus one; the
// restore does the same off dc-b1.
func TestSingletonWithoutFence(t *testing.T) {
	u := startUnit(t, nil)
	u.runDrill("nofence", drill.ModePlanned)
	d := u.waitEnded("nofence")
	if d.GetStatus().GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	u.eventually("db's placements", func() (bool, string) {
		got := strings.Join(u.seenOf("db"), " > ")
		return got == "dc-a1=1 epoch 0 > dc-a1=0 epoch 0 > dc-b1=1 epoch 1 > dc-b1=0 epoch 1 > dc-a1=1 epoch 2", got
	})
	if len(u.two) > 0 {
		t.Errorf("db ran on two clusters: %v", u.two)
	}
	if got := strings.Join(details(d, "Fenced"), "; "); !strings.Contains(got, "fenced db on dc-a1, epoch 1") || !strings.Contains(got, "fenced db on dc-b1, epoch 2") {
		t.Errorf("Fenced steps: %s", got)
	}
	if b := u.binding("StatefulSet", "db"); targets(b) != "dc-a1=1" || b.GetSpec().GetFencingEpoch() != 2 || len(b.GetMetadata().GetAnnotations()) != 0 {
		t.Errorf("db's binding after the drill: %s epoch %d %v", targets(b), b.GetSpec().GetFencingEpoch(), b.GetMetadata().GetAnnotations())
	}
}

// TestSingletonNeedsRevoker: a fence that cannot revoke cannot take a
// singleton off a healthy cluster: the drill is refused before it
// changes anything.
func TestSingletonNeedsRevoker(t *testing.T) {
	u := startUnit(t, releaseOnly{})
	u.runDrill("r", drill.ModePlanned)
	d := u.waitEnded("r")
	if d.GetStatus().GetPhase() != drill.PhaseRefused || !strings.Contains(d.GetStatus().GetMessage(), "Revoke") {
		t.Fatalf("phase %s: %s", d.GetStatus().GetPhase(), d.GetStatus().GetMessage())
	}
	if b := u.binding("StatefulSet", "db"); targets(b) != "dc-a1=1" || len(b.GetMetadata().GetAnnotations()) != 0 {
		t.Errorf("a refused drill changed db's binding: %s %v", targets(b), b.GetMetadata().GetAnnotations())
	}
}

// TestSingletonDrillEndToEnd: on a real hub (its fencing.Table) and
// members, a planned drill of dc-a1 moves the StatefulSet db to dc-b1 and
// back fenced — each move a Fenced step with the epoch the hub's fence
// released, the binding back on dc-a1 with the last one — and db never
// runs on two members at once.
func TestSingletonDrillEndToEnd(t *testing.T) {
	f := startFed(t, slow(300*time.Millisecond))
	f.apply(`apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: pair, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: StatefulSet}]
  placement:
    clusterAffinity: {clusterNames: [dc-a1, dc-b1]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - targetCluster: {clusterNames: [dc-a1]}
          weight: 3
        - targetCluster: {clusterNames: [dc-b1]}
          weight: 1
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo, labels: {tier: db}}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: main, image: db:1}
`)
	running := func(cluster string) int {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		objs, _, err := f.members[cluster].Store().List(c, resource.MustLookup("pods"), "demo", nil)
		if err != nil {
			return -1
		}
		n := 0
		for _, o := range objs {
			if p := o.(*meridianv1.Pod); p.GetStatus().GetPhase() == "Running" {
				n++
			}
		}
		return n
	}
	eventually(t, "db running on dc-a1", func() (bool, string) {
		n := running("dc-a1")
		return n == 1, fmt.Sprint(n)
	})
	stop := make(chan struct{})
	both := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(both)
				return
			case <-time.After(10 * time.Millisecond):
			}
			if a, b := running("dc-a1"), running("dc-b1"); a > 0 && b > 0 {
				select {
				case both <- fmt.Sprintf("dc-a1 %d, dc-b1 %d", a, b):
				default:
				}
			}
		}
	}()
	f.runDrill("db1", "datacenter: dc-a1", "planned", "30s", "tier: db")
	d := f.waitEnded("db1")
	close(stop)
	if msg, ok := <-both; ok {
		t.Errorf("db ran on two members at once: %s", msg)
	}
	if d.GetStatus().GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	fenced := details(d, "Fenced")
	if len(fenced) != 2 || !strings.HasPrefix(fenced[0], "fenced db on dc-a1, epoch ") || !strings.HasPrefix(fenced[1], "fenced db on dc-b1, epoch ") {
		t.Fatalf("Fenced steps: %v", fenced)
	}
	var back int64
	fmt.Sscanf(strings.TrimPrefix(fenced[1], "fenced db on dc-b1, epoch "), "%d", &back)
	b := f.binding("demo", placement.BindingName("StatefulSet", "db"))
	if targets(b) != "dc-a1=1" || b.GetSpec().GetFencingEpoch() != back || back < 2 {
		t.Errorf("db's binding after the drill: %s epoch %d (restore released epoch %d)", targets(b), b.GetSpec().GetFencingEpoch(), back)
	}
	eventually(t, "db running on dc-a1 again", func() (bool, string) {
		n := running("dc-a1")
		return n == 1, fmt.Sprint(n)
	})
	for _, st := range d.GetStatus().GetTimeline() {
		t.Logf("%s %s: %s", st.GetTime().AsTime().Sub(d.GetStatus().GetStartTime().AsTime()).Round(time.Millisecond), st.GetStep(), st.GetDetail())
	}
	t.Logf("RTO %s", d.GetStatus().GetRto().AsDuration())
}
