package drill_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/hub/drill/report"
	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func steps(d *meridianv1.Drill) string {
	var s []string
	for _, st := range d.GetStatus().GetTimeline() {
		s = append(s, st.GetStep())
	}
	return strings.Join(s, ",")
}

func targets(b *meridianv1.ResourceBinding) string {
	var s []string
	for _, t := range b.GetSpec().GetClusters() {
		s = append(s, fmt.Sprintf("%s=%d", t.GetName(), t.GetReplicas()))
	}
	return strings.Join(s, ",")
}

// slow makes every member take delay to start a pod.
func slow(delay time.Duration) map[string]memberOpts {
	return map[string]memberOpts{"dc-a1": {startDelay: delay}, "dc-a2": {startDelay: delay}, "dc-b1": {startDelay: delay}}
}

// TestTestMode: a test drill of dc-a1 starts copies of web on dc-a2 and
// dc-b1 in its own namespace, measures their RTO, cleans up, and leaves
// production exactly as it was (binding, pods and their uids).
func TestTestMode(t *testing.T) {
	f := startFed(t, slow(300*time.Millisecond))
	f.apply(shopYAML)
	f.waitPlaced()
	before := targets(f.binding("shop", "deployment.web"))
	pods := map[string][]string{}
	for c := range f.members {
		pods[c] = f.podUIDs(c, "shop")
	}
	f.runDrill("t1", "datacenter: dc-a1", "test", "30s", "tier: web")
	d := f.waitEnded("t1")
	st := d.GetStatus()
	if st.GetPhase() != drill.PhaseSucceeded || st.GetVerdict() != drill.VerdictPass {
		t.Fatalf("phase %s verdict %s: %s (%s)", st.GetPhase(), st.GetVerdict(), st.GetMessage(), steps(d))
	}
	if len(st.GetWorkloads()) != 1 {
		t.Fatalf("workloads: %v", st.GetWorkloads())
	}
	w := st.GetWorkloads()[0]
	if rto := w.GetRto().AsDuration(); rto < 300*time.Millisecond || rto > 10*time.Second || !w.GetRtoMet() {
		t.Errorf("rto %s met %v", rto, w.GetRtoMet())
	}
	if w.GetRpo().AsDuration() != 500*time.Millisecond || !w.GetRpoMet() {
		t.Errorf("rpo %s met %v", w.GetRpo().AsDuration(), w.GetRpoMet())
	}
	for _, to := range w.GetTo() {
		if to.GetName() == "dc-a1" {
			t.Errorf("a copy ran in the scope: %v", w.GetTo())
		}
	}
	for _, want := range []string{"Start", "Namespace", "Disruption", "Ready", "Cleanup", "Verdict"} {
		if !strings.Contains(steps(d), want) {
			t.Errorf("timeline %s lacks %s", steps(d), want)
		}
	}
	eventually(t, "the drill namespace gone", func() (bool, string) {
		_, err := f.tryGet("namespaces", "", drill.Namespace("t1"))
		return err != nil, "still there"
	})
	if after := targets(f.binding("shop", "deployment.web")); after != before {
		t.Errorf("binding changed: %s -> %s", before, after)
	}
	for c, p := range pods {
		if got := f.podUIDs(c, "shop"); !slices.Equal(got, p) {
			t.Errorf("%s pods changed: %v -> %v", c, p, got)
		}
	}
}

// TestPlannedMode: a planned drill of dc-a1 brings web's replicas up on
// the survivors first, drains dc-a1 (web never has fewer ready replicas
// than desired for long), then restores the placement.
func TestPlannedMode(t *testing.T) {
	f := startFed(t, slow(300*time.Millisecond))
	f.apply(shopYAML)
	f.waitPlaced()
	before := targets(f.binding("shop", "deployment.web"))
	f.runDrill("p1", "datacenter: dc-a1", "planned", "5s", "tier: web")
	sawDrained := false
	eventually(t, "dc-a1 drained during the drill", func() (bool, string) {
		sawDrained = sawDrained || f.memberReplicas("dc-a1", "shop", "web") == -1
		ph := f.drill("p1").GetStatus().GetPhase()
		return sawDrained || drill.Ended(ph), ph
	})
	d := f.waitEnded("p1")
	st := d.GetStatus()
	if st.GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", st.GetPhase(), st.GetMessage(), steps(d))
	}
	if !sawDrained {
		t.Errorf("dc-a1 kept web during the drill")
	}
	for _, want := range []string{"TargetsUp", "TargetsReady", "Drain", "Drained", "Failback", "Restored"} {
		if !strings.Contains(steps(d), want) {
			t.Errorf("timeline %s lacks %s", steps(d), want)
		}
	}
	if rto := st.GetRto().AsDuration(); rto > time.Second {
		t.Errorf("planned RTO (time below the desired ready replicas) %s", rto)
	}
	b := f.binding("shop", "deployment.web")
	if after := targets(b); after != before || b.GetMetadata().GetAnnotations()[drill.AnnotationDrill] != "" {
		t.Errorf("binding not restored: %s -> %s %v", before, after, b.GetMetadata().GetAnnotations())
	}
	f.waitPlaced()
}

// TestUnplannedMode: an unplanned drill of dc-a1 marks dc-a1 failed for
// web; the failover controller moves web off it after the policy's
// toleration (its FailedOver event, its metric and its history entry name
// the drill); the drill measures the time to web's replicas ready on the
// survivors, then restores the placement before it.
func TestUnplannedMode(t *testing.T) {
	f := startFed(t, slow(300*time.Millisecond))
	f.apply(shopYAML)
	f.waitPlaced()
	before := targets(f.binding("shop", "deployment.web"))
	f.runDrill("u1", "datacenter: dc-a1", "unplanned", "10s", "tier: web")
	// The disaster is immediate: dc-a1 stops serving web (its copy goes)
	// while failover still waits out the toleration.
	eventually(t, "dc-a1's copy of web gone", func() (bool, string) {
		n := f.memberReplicas("dc-a1", "shop", "web")
		return n == -1, fmt.Sprintf("dc-a1 has web with %d replicas", n)
	})
	if s := steps(f.drill("u1")); strings.Contains(s, "FailedOver") {
		t.Errorf("dc-a1's copy went only with the failover: %s", s)
	}
	d := f.waitEnded("u1")
	st := d.GetStatus()
	if st.GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", st.GetPhase(), st.GetMessage(), steps(d))
	}
	w := st.GetWorkloads()[0]
	// The default toleration (5s) runs before failover moves web, then its
	// pods take 300ms to start.
	if rto := w.GetRto().AsDuration(); rto < failover.DefaultToleration+300*time.Millisecond || !w.GetRtoMet() {
		t.Errorf("rto %s met %v", rto, w.GetRtoMet())
	}
	if !strings.Contains(w.GetMessage(), "from dc-a1 (failed by drill u1 for 5s)") {
		t.Errorf("message %q does not quote failover's move", w.GetMessage())
	}
	var to int32
	for _, tc := range w.GetTo() {
		if tc.GetName() == "dc-a1" {
			t.Errorf("target in the scope: %v", w.GetTo())
		}
		to += tc.GetReplicas()
	}
	if to != 6 {
		t.Errorf("targets %v: want 6 replicas on the survivors", w.GetTo())
	}
	for _, want := range []string{"Disruption", "FailedOver", "Recovered", "Unmarked", "Failback", "Restored", "Verdict"} {
		if !strings.Contains(steps(d), want) {
			t.Errorf("timeline %s lacks %s", steps(d), want)
		}
	}
	b := f.binding("shop", "deployment.web")
	for k := range b.GetMetadata().GetAnnotations() {
		if strings.HasPrefix(k, "meridian.io/drill") {
			t.Errorf("annotation %s left on the binding", k)
		}
	}
	if after := targets(b); after != before {
		t.Errorf("binding not restored: %s -> %s", before, after)
	}
	if len(b.GetSpec().GetFailedOver()) != 0 || len(b.GetSpec().GetEvicting()) != 0 {
		t.Errorf("failover records left: %v %v", b.GetSpec().GetFailedOver(), b.GetSpec().GetEvicting())
	}
	// The failover controller made the move: its history entry, its event
	// and its metric.
	var hist []string
	for _, h := range b.GetStatus().GetHistory() {
		hist = append(hist, h.GetType()+": "+h.GetReason())
	}
	if len(hist) < 2 || !strings.HasPrefix(hist[len(hist)-2], "Failover: moved 2 replicas from dc-a1 (failed by drill u1 for 5s) to ") ||
		hist[len(hist)-1] != "Failback: drill u1 ended: the placement before it is restored" {
		t.Errorf("history:\n%s", strings.Join(hist, "\n"))
	}
	resp, err := f.admin.List(ctx(t), &meridianv1.ListRequest{Kind: "events", Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	found := false
	for _, it := range resp.GetItems() {
		o, _, err := resource.Unwrap(it)
		if err != nil {
			t.Fatal(err)
		}
		ev := o.(*meridianv1.Event)
		events = append(events, ev.GetReason()+": "+ev.GetMessage())
		found = found || ev.GetReason() == failover.ReasonFailedOver && ev.GetInvolvedObject().GetName() == "web" && strings.Contains(ev.GetMessage(), "failed by drill u1")
	}
	if !found {
		t.Errorf("no FailedOver event naming the drill:\n%s", strings.Join(events, "\n"))
	}
	if m := metric(t, f, `meridian_failovers_total{cluster="dc-a1",result="moved"}`); m != "1" {
		t.Errorf("meridian_failovers_total{dc-a1,moved} = %q, want 1", m)
	}
	f.waitPlaced()
}

// metric is the value of one sample of the hub's /metrics ("" if absent).
func metric(t *testing.T, f *fed, sample string) string {
	t.Helper()
	resp, err := http.Get("http://" + f.hub.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestAbortAndOneDrillPerScope: while an unplanned drill of dc-a1 runs, a
// second drill of the region that holds dc-a1 is refused; aborting the
// first restores the placement before the drill.
func TestAbortAndOneDrillPerScope(t *testing.T) {
	f := startFed(t, slow(2*time.Second))
	f.apply(shopYAML)
	f.waitPlaced()
	before := targets(f.binding("shop", "deployment.web"))
	f.runDrill("a1", "datacenter: dc-a1", "unplanned", "60s", "tier: web")
	eventually(t, "the disruption", func() (bool, string) {
		d := f.drill("a1")
		return strings.Contains(steps(d), "Disruption"), steps(d)
	})
	f.runDrill("a2", "region: region-a", "test", "60s", "tier: web")
	d2 := f.waitEnded("a2")
	if d2.GetStatus().GetPhase() != drill.PhaseRefused || !strings.Contains(d2.GetStatus().GetMessage(), "drill a1") {
		t.Errorf("second drill: %s: %s", d2.GetStatus().GetPhase(), d2.GetStatus().GetMessage())
	}
	d := f.drill("a1")
	d.Spec.Abort = true
	f.applyObject(d)
	d = f.waitEnded("a1")
	if d.GetStatus().GetPhase() != drill.PhaseAborted {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	b := f.binding("shop", "deployment.web")
	if after := targets(b); after != before || b.GetMetadata().GetAnnotations()[drill.AnnotationDrill] != "" {
		t.Errorf("binding not restored: %s -> %s", before, after)
	}
	f.waitPlaced()
}

// TestRefusedForCapacity: a drill whose survivors cannot take the scope's
// replicas is refused before it changes anything.
func TestRefusedForCapacity(t *testing.T) {
	f := startFed(t, map[string]memberOpts{"dc-a1": {nodeCPU: "8"}, "dc-a2": {nodeCPU: "1"}, "dc-b1": {nodeCPU: "1"}})
	f.apply(`apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: pinned, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: big}]
  placement:
    clusterAffinity: {clusterNames: [dc-a1]}
    replicaScheduling: {replicaSchedulingType: Divided}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: shop, labels: {tier: big}}
spec:
  replicas: 4
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      containers:
      - {name: main, image: big:1, resources: {requests: {cpu: "2"}}}
`)
	eventually(t, "big placed on dc-a1", func() (bool, string) {
		n := f.memberReplicas("dc-a1", "shop", "big")
		return n == 4, fmt.Sprint(n)
	})
	f.runDrill("c1", "datacenter: dc-a1", "planned", "30s", "tier: big")
	d := f.waitEnded("c1")
	if d.GetStatus().GetPhase() != drill.PhaseRefused || !strings.Contains(d.GetStatus().GetMessage(), "capacity") {
		t.Fatalf("phase %s: %s", d.GetStatus().GetPhase(), d.GetStatus().GetMessage())
	}
	if b := f.binding("shop", "deployment.big"); b.GetMetadata().GetAnnotations()[drill.AnnotationDrill] != "" {
		t.Errorf("a refused drill held the binding")
	}
}

// TestRealFailureAbortsDrill: a cluster outside the scope failing during
// a drill aborts it, and the drill's changes are undone.
func TestRealFailureAbortsDrill(t *testing.T) {
	f := startFed(t, slow(2*time.Second))
	f.apply(shopYAML)
	f.waitPlaced()
	f.runDrill("rf", "datacenter: dc-a1", "test", "60s", "tier: web")
	eventually(t, "the disruption", func() (bool, string) {
		d := f.drill("rf")
		return strings.Contains(steps(d), "Disruption"), steps(d)
	})
	f.members["dc-b1"].Close()
	d := f.waitEnded("rf")
	if d.GetStatus().GetPhase() != drill.PhaseAborted || !strings.Contains(d.GetStatus().GetMessage(), "real failure") || !strings.Contains(d.GetStatus().GetMessage(), "dc-b1") {
		t.Fatalf("phase %s: %s", d.GetStatus().GetPhase(), d.GetStatus().GetMessage())
	}
	eventually(t, "the drill namespace gone", func() (bool, string) {
		_, err := f.tryGet("namespaces", "", drill.Namespace("rf"))
		return err != nil, "still there"
	})
}

// TestLeaderChangeUndoesDrill: a drill running when the hub leader
// changes is not resumed half-way: the new leader restores the bindings
// it held and marks it Failed.
func TestLeaderChangeUndoesDrill(t *testing.T) {
	f := startFed(t, slow(2*time.Second))
	f.apply(shopYAML)
	f.waitPlaced()
	before := targets(f.binding("shop", "deployment.web"))
	f.runDrill("lc", "datacenter: dc-a1", "unplanned", "60s", "tier: web")
	eventually(t, "the disruption", func() (bool, string) {
		d := f.drill("lc")
		return strings.Contains(steps(d), "Disruption"), steps(d)
	})
	f.restartHub()
	d := f.waitEnded("lc")
	if d.GetStatus().GetPhase() != drill.PhaseFailed || !strings.Contains(d.GetStatus().GetMessage(), "leader changed") {
		t.Fatalf("phase %s: %s (%s)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), steps(d))
	}
	b := f.binding("shop", "deployment.web")
	if after := targets(b); after != before || b.GetMetadata().GetAnnotations()[drill.AnnotationDrill] != "" {
		t.Errorf("binding not restored: %s -> %s", before, after)
	}
	f.waitPlaced()
}

// dbYAML: StatefulSet db in shop (a singleton, selected by tier=web), 1
// replica; no policy places it everywhere.
const dbYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop, labels: {tier: web}}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: main, image: db:1}
`

// TestTestModeSkipsSingletons: a test drill leaves the singleton db out
// by default — no copy of it in the drill namespace, reported as skipped
// with the reason in the status and every report format — and copies it
// with spec.includeSingletons.
func TestTestModeSkipsSingletons(t *testing.T) {
	f := startFed(t, nil)
	f.apply(shopYAML)
	f.apply(dbYAML)
	f.waitPlaced()
	eventually(t, "db placed on dc-a1", func() (bool, string) {
		b, err := f.tryGet("resourcebindings", "shop", "statefulset.db")
		if err != nil {
			return false, err.Error()
		}
		got := targets(b.(*meridianv1.ResourceBinding))
		return strings.Contains(got, "dc-a1="), got
	})
	f.runDrill("skip", "datacenter: dc-a1", "test", "30s", "tier: web")
	d := f.waitEnded("skip")
	st := d.GetStatus()
	if st.GetPhase() != drill.PhaseSucceeded {
		t.Fatalf("phase %s: %s (%s)", st.GetPhase(), st.GetMessage(), steps(d))
	}
	if len(st.GetWorkloads()) != 1 || st.GetWorkloads()[0].GetWorkload().GetName() != "web" {
		t.Errorf("workloads: %v", st.GetWorkloads())
	}
	sk := st.GetSkipped()
	if len(sk) != 1 || sk[0].GetWorkload().GetKind() != "StatefulSet" || sk[0].GetWorkload().GetName() != "db" || sk[0].GetReason() != drill.SkipSingletonReason {
		t.Fatalf("skipped: %v", sk)
	}
	if !strings.Contains(steps(d), "Skipped") || !strings.Contains(st.GetMessage(), "1 singletons skipped") {
		t.Errorf("timeline %s, message %q", steps(d), st.GetMessage())
	}
	for _, format := range report.Formats {
		var b strings.Builder
		if err := report.Render(&b, d, format); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "statefulset/shop/db") && !strings.Contains(b.String(), `"db"`) || !strings.Contains(b.String(), "include-singletons") {
			t.Errorf("%s report lacks the skipped db:\n%s", format, b.String())
		}
	}

	f.apply("apiVersion: meridian.io/v1\nkind: Drill\nmetadata: {name: incl}\nspec:\n  scope: {datacenter: dc-a1}\n  mode: test\n  rto: 30s\n  workloads: {matchLabels: {tier: web}}\n  includeSingletons: true\n")
	d = f.waitEnded("incl")
	st = d.GetStatus()
	if st.GetPhase() != drill.PhaseSucceeded || len(st.GetSkipped()) != 0 {
		t.Fatalf("phase %s: %s, skipped %v (%s)", st.GetPhase(), st.GetMessage(), st.GetSkipped(), steps(d))
	}
	var names []string
	for _, w := range st.GetWorkloads() {
		names = append(names, w.GetWorkload().GetKind()+"/"+w.GetWorkload().GetName())
	}
	if strings.Join(names, ",") != "Deployment/web,StatefulSet/db" {
		t.Errorf("workloads with includeSingletons: %v", names)
	}
}
