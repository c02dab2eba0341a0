package e2e

import (
	"strings"
	"testing"
	"time"
)

// failoverPolicy divides every Deployment of namespace place equally, with
// a short toleration and stabilization window.
const failoverPolicy = `apiVersion: v1
kind: Namespace
metadata: {name: place}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: spread, namespace: place}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  failover: {tolerationSeconds: 2, stabilizationSeconds: 3}
`

// TestFailoverEndToEnd runs the three-datacenter topology as processes:
// a Deployment of 6 replicas runs 2 per member; kill -9 of the dc-a1
// member moves its 2 replicas to dc-a2 (same region) — dc-b1 keeps its 2
// — and once dc-a1 is back and stable they move back.
func TestFailoverEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	f := startFederation(t)
	dirs := map[string]string{}
	for _, s := range topology {
		tok, pin := f.token(t, "--for-cluster", s.name)
		dirs[s.name] = t.TempDir()
		f.startMember(t, s, dirs[s.name], nil, "--join-token", tok, "--hub-ca-pin", pin)
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
	if out, err := runCLI(t, f.hub, failoverPolicy+"---\n"+spreadDeploy("web", 6, ""), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for _, s := range topology {
		m := f.members[s.name]
		waitFor(t, s.name+" runs 2 replicas of web", 30*time.Second, func() bool { return runningWith(t, m, "place", "web") == 2 })
	}

	victim := f.members["dc-a1"]
	start := time.Now()
	victim.kill9(t)
	waitFor(t, "dc-a2 runs dc-a1's replicas", 60*time.Second, func() bool { return runningWith(t, f.members["dc-a2"], "place", "web") == 4 })
	rto := time.Since(start)
	if n := runningWith(t, f.members["dc-b1"], "place", "web"); n != 2 {
		t.Errorf("dc-b1 runs %d replicas, want its 2: same region first", n)
	}
	t.Logf("RTO (kill -9 to replicas ready in dc-a2): %s", rto.Round(10*time.Millisecond))
	out, err := runCLI(t, f.hub, "", "describe", "deploy", "web", "-n", "place")
	if err != nil || !strings.Contains(out, "Failover") || !strings.Contains(out, "dc-a1") {
		t.Fatalf("describe shows no failover: %v\n%s", err, out)
	}

	// dc-a1 comes back on the same data: after the stabilization window
	// its replicas come back (2 of 6: one step).
	f.startMember(t, topology[0], dirs["dc-a1"], victim)
	waitFor(t, "failback to dc-a1", 60*time.Second, func() bool {
		return runningWith(t, f.members["dc-a1"], "place", "web") == 2 && runningWith(t, f.members["dc-a2"], "place", "web") == 2
	})
	waitFor(t, "the failback recorded", 30*time.Second, func() bool {
		out, err := runCLI(t, f.hub, "", "describe", "deploy", "web", "-n", "place")
		return err == nil && strings.Contains(out, "Failback")
	})
	if n := runningWith(t, f.members["dc-b1"], "place", "web"); n != 2 {
		t.Errorf("dc-b1 runs %d replicas after failback, want 2", n)
	}
}
