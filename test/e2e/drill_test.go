package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// drillShop is the production workload of the drill tests: web, 6
// replicas divided evenly over the three datacenters, with a readiness
// probe that passes 4 s after start (so that the RTO is long enough to
// compare with an outside measurement), and a Service in front of it.
const drillShop = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: spread, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}, {apiVersion: v1, kind: Service}]
  placement:
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - {targetCluster: {clusterNames: [dc-a1]}, weight: 1}
        - {targetCluster: {clusterNames: [dc-a2]}, weight: 1}
        - {targetCluster: {clusterNames: [dc-b1]}, weight: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {tier: web}}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: ["sleep", "3600"]
        readinessProbe:
          exec: {command: ["true"]}
          initialDelaySeconds: 4
          periodSeconds: 1
`

// waitShopPlaced waits for shop's placement before the drills: 2 ready
// replicas of web on every member.
func waitShopPlaced(t *testing.T, f *federation, after string) {
	t.Helper()
	for _, s := range topology {
		m := f.members[s.name]
		waitFor(t, s.name+" back to 2 ready replicas after "+after, 60*time.Second, func() bool {
			n := 0
			for _, p := range m.pods(t, "shop") {
				if podReady(p) && p.GetMetadata().GetDeletionTimestamp() == nil {
					n++
				}
			}
			return n == 2
		})
	}
}

// podReady reports whether a pod is Ready.
func podReady(p *meridianv1.Pod) bool {
	for _, c := range p.GetStatus().GetConditions() {
		if c.GetType() == "Ready" {
			return c.GetStatus() == "True"
		}
	}
	return false
}

// productionState is what must not change in production: each member's
// pods of shop (uid and restart counts) and its Service.
func productionState(t testing.TB, f *federation) map[string]string {
	out := map[string]string{}
	for _, s := range topology {
		m := f.members[s.name]
		var pods []string
		for _, p := range m.pods(t, "shop") {
			if p.GetMetadata().GetDeletionTimestamp() != nil {
				continue
			}
			restarts := int32(0)
			for _, cs := range p.GetStatus().GetContainerStatuses() {
				restarts += cs.GetRestartCount()
			}
			pods = append(pods, fmt.Sprintf("%s/%s/r%d/ready=%v", p.GetMetadata().GetName(), p.GetMetadata().GetUid(), restarts, podReady(p)))
		}
		out[s.name+" pods"] = strings.Join(pods, ",")
		svc := memberObject(t, m, "services", "shop", "web").GetService()
		svc.Metadata.ResourceVersion = ""
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(svc)
		out[s.name+" service"] = fmt.Sprintf("%x", b)
	}
	return out
}

func (f *federation) drill(t testing.TB, name string) *meridianv1.Drill {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adminClient(t, f.hub).Get(ctx, &meridianv1.GetRequest{Kind: "drills", Name: name})
	if err != nil {
		t.Fatalf("get drill %s: %v", name, err)
	}
	return resp.GetObject().GetDrill()
}

// TestDrillEndToEnd runs the dev topology as processes: a test drill of
// dc-a1 leaves production untouched (pods, uids, restart counts, the
// Service on every member) and its RTO agrees within 10 % with an
// independent measurement (this test polling the members' local APIs for
// the copies' pods Ready); then a planned and an unplanned drill pass
// through the CLI with --wait and restore the placement, and the report
// renders as a self-contained HTML page.
func TestDrillEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	f := startFederation(t)
	for _, s := range topology {
		tok, pin := f.token(t, "--for-cluster", s.name, "--single-use")
		// dc-a1 is big, the survivors small: a drill of a workload that
		// needs dc-a1's CPU is refused for capacity.
		cpu := "2"
		if s.name == "dc-a1" {
			cpu = "16"
		}
		f.startMember(t, s, t.TempDir(), nil, "--join-token", tok, "--hub-ca-pin", pin, "--node-cpu", cpu)
	}
	waitFor(t, "three Ready clusters", 30*time.Second, func() bool {
		n := 0
		for _, c := range f.clusters(t) {
			if clusterHealth(c) == "Ready" {
				n++
			}
		}
		return n == 3
	})
	if out, err := runCLI(t, f.hub, drillShop, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for _, s := range topology {
		m := f.members[s.name]
		waitFor(t, s.name+" runs 2 ready replicas", 60*time.Second, func() bool {
			n := 0
			for _, p := range m.pods(t, "shop") {
				if podReady(p) && p.GetMetadata().GetDeletionTimestamp() == nil {
					n++
				}
			}
			return n == 2 && memberHas(t, m, "services", "shop", "web")
		})
	}
	before := productionState(t, f)

	// A drill operator's token runs the drills' first one, and may not
	// change anything else.
	out, err := runCLI(t, f.hub, "", "drill", "operator-token", "ops", "--ttl", "1h")
	if err != nil {
		t.Fatalf("drill operator-token: %v\n%s", err, out)
	}
	opToken := strings.Fields(out)[0]
	if out, err := runCLI(t, f.hub, "apiVersion: v1\nkind: Namespace\nmetadata: {name: nope}\n", "--token", opToken, "apply", "-f", "-"); err == nil || !strings.Contains(out, "PermissionDenied") && !strings.Contains(out, "drill operator") {
		t.Errorf("a drill operator applied a Namespace: %v\n%s", err, out)
	}

	// Test drill of dc-a1; this test watches the copies' pods itself.
	if out, err := runCLI(t, f.hub, "", "--token", opToken, "drill", "run", "--scope", "datacenter=dc-a1", "--mode", "test", "--rto", "30s", "--name", "e2e-test"); err != nil {
		t.Fatalf("drill run: %v\n%s", err, out)
	}
	ns := "drill-e2e-test"
	var observedReady time.Time
	waitFor(t, "the copies' pods Ready on the survivors", 60*time.Second, func() bool {
		ready := 0
		for _, s := range topology {
			for _, p := range f.members[s.name].pods(t, ns) {
				if podReady(p) && p.GetMetadata().GetDeletionTimestamp() == nil {
					if s.name == "dc-a1" {
						t.Errorf("a copy runs in the scope: %s", p.GetMetadata().GetName())
					}
					ready++
				}
			}
		}
		if ready >= 2 {
			observedReady = time.Now()
			return true
		}
		return false
	})
	var d *meridianv1.Drill
	waitFor(t, "the drill to end", 60*time.Second, func() bool {
		d = f.drill(t, "e2e-test")
		return d.GetStatus().GetCompletionTime() != nil
	})
	if d.GetStatus().GetPhase() != "Succeeded" {
		t.Fatalf("test drill %s: %s", d.GetStatus().GetPhase(), d.GetStatus().GetMessage())
	}
	w := d.GetStatus().GetWorkloads()[0]
	reported := w.GetRto().AsDuration()
	observed := observedReady.Sub(w.GetDisruptedAt().AsTime())
	t.Logf("test drill RTO: reported %s, observed from outside %s", reported.Round(time.Millisecond), observed.Round(time.Millisecond))
	if diff := math.Abs(float64(reported-observed)) / float64(observed); diff > 0.10 {
		t.Errorf("reported RTO %s and observed %s differ by %.0f%% (> 10%%)", reported, observed, diff*100)
	}
	waitFor(t, "the drill namespace gone from the members", 60*time.Second, func() bool {
		for _, s := range topology {
			if len(f.members[s.name].pods(t, ns)) > 0 {
				return false
			}
		}
		return true
	})
	after := productionState(t, f)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("production changed: %s\nbefore %s\nafter  %s", k, v, after[k])
		}
	}

	// The report, as an auditor gets it.
	out, err = runCLI(t, f.hub, "", "drill", "report", "e2e-test", "-o", "html")
	if err != nil || !strings.Contains(out, "<svg") || strings.Contains(out, "<script") {
		t.Errorf("html report: %v\n%.400s", err, out)
	}

	// A planned drill of dc-a1 through the CLI with --wait: it passes and
	// restores the placement (2 ready replicas per member).
	out, err = runCLI(t, f.hub, "", "drill", "run", "--scope", "datacenter=dc-a1", "--mode", "planned", "--rto", "30s", "--name", "e2e-planned", "--wait")
	if err != nil {
		t.Fatalf("planned drill: %v\n%s", err, out)
	}
	t.Logf("planned drill:\n%s", out)
	waitShopPlaced(t, f, "the planned drill")

	// An unplanned drill of dc-a1, measured from outside as the test
	// drill was: dc-a1 stops serving web at once (a disaster, not a
	// drain), the failover controller moves its replicas after the
	// policy's toleration, and the RTO the drill reports agrees within
	// 10 % with this test's own clock, from the drill's disruption to 6
	// ready replicas on the survivors.
	if out, err := runCLI(t, f.hub, "", "drill", "run", "--scope", "datacenter=dc-a1", "--mode", "unplanned", "--rto", "30s", "--name", "e2e-unplanned"); err != nil {
		t.Fatalf("unplanned drill: %v\n%s", err, out)
	}
	readyIn := func(names ...string) int {
		n := 0
		for _, name := range names {
			for _, p := range f.members[name].pods(t, "shop") {
				if podReady(p) && p.GetMetadata().GetDeletionTimestamp() == nil && p.GetMetadata().GetLabels()["app"] == "web" {
					n++
				}
			}
		}
		return n
	}
	waitFor(t, "dc-a1 to stop serving web", 30*time.Second, func() bool { return readyIn("dc-a1") == 0 })
	observedDown := time.Now()
	waitFor(t, "6 ready replicas of web on the survivors", 60*time.Second, func() bool {
		if n := readyIn("dc-a1"); n != 0 {
			t.Errorf("dc-a1 serves web again (%d ready) before the failover is over", n)
		}
		return readyIn("dc-a2", "dc-b1") == 6
	})
	observedUp := time.Now()
	waitFor(t, "the unplanned drill to end", 60*time.Second, func() bool {
		d = f.drill(t, "e2e-unplanned")
		return d.GetStatus().GetCompletionTime() != nil
	})
	if d.GetStatus().GetPhase() != "Succeeded" {
		t.Fatalf("unplanned drill %s: %s", d.GetStatus().GetPhase(), d.GetStatus().GetMessage())
	}
	w = d.GetStatus().GetWorkloads()[0]
	disrupted := w.GetDisruptedAt().AsTime()
	reported, observed = w.GetRto().AsDuration(), observedUp.Sub(disrupted)
	t.Logf("unplanned drill RTO: reported %s, observed from outside %s; dc-a1 stopped serving %s after the disruption; failover: %s",
		reported.Round(time.Millisecond), observed.Round(time.Millisecond), observedDown.Sub(disrupted).Round(time.Millisecond), w.GetMessage())
	if diff := math.Abs(float64(reported-observed)) / float64(observed); diff > 0.10 {
		t.Errorf("reported RTO %s and observed %s differ by %.0f%% (> 10%%)", reported, observed, diff*100)
	}
	if down := observedDown.Sub(disrupted); down > observed/10 {
		t.Errorf("dc-a1 stopped serving %s after the disruption: not a disaster", down)
	}
	waitShopPlaced(t, f, "the unplanned drill")
	out, err = runCLI(t, f.hub, "", "drill", "list")
	if err != nil || strings.Count(out, "Succeeded") != 3 {
		t.Errorf("drill list: %v\n%s", err, out)
	}

	// Abort mid-drill: an unplanned drill is aborted while dc-a1 is fenced
	// (web's replicas take 4 s to be ready elsewhere); the placement
	// before the drill comes back.
	if out, err := runCLI(t, f.hub, "", "drill", "run", "--scope", "datacenter=dc-a1", "--mode", "unplanned", "--name", "e2e-abort"); err != nil {
		t.Fatalf("drill run: %v\n%s", err, out)
	}
	waitFor(t, "the abort drill's disruption", 30*time.Second, func() bool {
		for _, s := range f.drill(t, "e2e-abort").GetStatus().GetTimeline() {
			if s.GetStep() == "Disruption" {
				return true
			}
		}
		return false
	})
	if out, err := runCLI(t, f.hub, "", "drill", "abort", "e2e-abort"); err != nil {
		t.Fatalf("drill abort: %v\n%s", err, out)
	}
	if out, err := runCLI(t, f.hub, "", "drill", "status", "e2e-abort", "--watch"); err == nil || !strings.Contains(out, "Aborted") {
		t.Errorf("aborted drill: want a non-zero exit and Aborted: %v\n%s", err, out)
	}
	for _, s := range topology {
		m := f.members[s.name]
		waitFor(t, s.name+" back to 2 ready replicas after the abort", 60*time.Second, func() bool {
			n := 0
			for _, p := range m.pods(t, "shop") {
				if podReady(p) && p.GetMetadata().GetDeletionTimestamp() == nil {
					n++
				}
			}
			return n == 2
		})
	}

	// Refused for capacity: big needs 12 CPUs that only dc-a1 has.
	big := `apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: pinned, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: big}]
  priority: 10
  placement:
    clusterAffinity: {clusterNames: [dc-a1]}
    replicaScheduling: {replicaSchedulingType: Divided}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: shop, labels: {tier: big}}
spec:
  replicas: 1
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, command: ["sleep", "3600"], resources: {requests: {cpu: "12"}}}
`
	if out, err := runCLI(t, f.hub, big, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "big on dc-a1", 60*time.Second, func() bool { return runningWith(t, f.members["dc-a1"], "shop", "big") == 1 })
	out, err = runCLI(t, f.hub, "", "drill", "run", "--scope", "datacenter=dc-a1", "--mode", "planned", "--workloads", "tier=big", "--name", "e2e-big", "--wait")
	if err == nil || !strings.Contains(out, "Refused") || !strings.Contains(out, "capacity") {
		t.Errorf("drill of big: want Refused for capacity and a non-zero exit: %v\n%s", err, out)
	}
}
