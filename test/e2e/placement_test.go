package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildPlugin builds an example plugin into dir and returns its path and
// sha256.
func buildPlugin(t testing.TB, dir, name string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", path, "../../plugins/examples/"+name).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

// runningWith counts the running pods of app on a member.
func runningWith(t testing.TB, m *memberProcess, ns, app string) int {
	n := 0
	for _, p := range m.pods(t, ns) {
		if p.GetMetadata().GetLabels()["app"] == app && p.GetMetadata().GetDeletionTimestamp() == nil && p.GetStatus().GetPhase() == "Running" {
			n++
		}
	}
	return n
}

func spreadDeploy(name string, replicas int, labels string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: place, labels: {app: %[1]s%[3]s}}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: ["sleep", "3600"]
`, name, replicas, labels)
}

// TestPlacementEndToEnd runs the three-datacenter topology with a hub that
// loads the residency example plugin: a Deployment of 6 replicas is
// divided over both regions 2:1 (and 3:1 between region-a's datacenters)
// and each member runs its share; labelling it with a jurisdiction makes
// the plugin move it all to region-b; killing the plugin stalls nothing,
// and the hub restarts it.
func TestPlacementEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and a plugin")
	}
	dir := t.TempDir()
	plugin, sum := buildPlugin(t, dir, "residency")
	cfg := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`plugins:
- name: residency
  path: %s
  sha256: %s
  timeout: 500ms
  failureMode: fail-open
  config: {regions: {region-a: us, region-b: eu}}
placement:
  filters: [ClusterAffinity, TaintToleration, ClusterHealth, ResourcesFit, residency]
`, plugin, sum)), 0o600); err != nil {
		t.Fatal(err)
	}
	f := startFederation(t, "--config", cfg)
	for _, s := range topology {
		tok, pin := f.token(t, "--for-cluster", s.name, "--single-use")
		f.startMember(t, s, t.TempDir(), nil, "--join-token", tok, "--hub-ca-pin", pin)
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
	out, err := runCLI(t, f.hub, "", "plugin", "list")
	if err != nil || !regexp.MustCompile(`residency\s+external\s+Filter\s+Running`).MatchString(out) {
		t.Fatalf("plugin list: %v\n%s", err, out)
	}

	// Weights 2:1 over the regions, 3:1 between region-a's datacenters.
	policy := `apiVersion: v1
kind: Namespace
metadata: {name: place}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: spread, namespace: place}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        hierarchicalWeights:
          regions:
          - {name: region-a, weight: 2, datacenters: [{name: dc-a1, weight: 3}, {name: dc-a2, weight: 1}]}
          - {name: region-b, weight: 1}
`
	if out, err := runCLI(t, f.hub, policy+"---\n"+spreadDeploy("web", 6, ""), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	want := map[string]int{"dc-a1": 3, "dc-a2": 1, "dc-b1": 2}
	for name, n := range want {
		m := f.members[name]
		waitFor(t, fmt.Sprintf("%s runs %d replicas of web", name, n), 30*time.Second, func() bool { return runningWith(t, m, "place", "web") == n })
	}
	out, err = runCLI(t, f.hub, "", "describe", "deploy", "web", "-n", "place")
	if err != nil || !strings.Contains(out, "PropagationPolicy place/spread") || !regexp.MustCompile(`dc-a1\s+3`).MatchString(out) {
		t.Fatalf("describe shows no placement: %v\n%s", err, out)
	}

	// The plugin changes the result: an "eu" workload only goes to region-b.
	if out, err := runCLI(t, f.hub, spreadDeploy("web", 6, ", meridian.io/jurisdiction: eu"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "all 6 replicas of web in dc-b1", 30*time.Second, func() bool {
		return runningWith(t, f.members["dc-b1"], "place", "web") == 6 && runningWith(t, f.members["dc-a1"], "place", "web") == 0 &&
			runningWith(t, f.members["dc-a2"], "place", "web") == 0
	})
	out, err = runCLI(t, f.hub, "", "describe", "deploy", "web", "-n", "place")
	if err != nil || !regexp.MustCompile(`dc-a1\s+residency\s+UnschedulableAndUnresolvable`).MatchString(out) {
		t.Fatalf("describe does not say why dc-a1 is out: %v\n%s", err, out)
	}

	// Kill the plugin: placement goes on (fail-open) and the hub restarts it.
	out, _ = runCLI(t, f.hub, "", "plugin", "list", "-o", "wide")
	m := regexp.MustCompile(`(?m)^residency\s+external\s+\S+\s+Running\s+\S+\s+0\s+\S+\s+\S+\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pid for the plugin in:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the plugin: %v", err)
	}
	start := time.Now()
	if out, err := runCLI(t, f.hub, spreadDeploy("after-kill", 3, ""), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for name, n := range map[string]int{"dc-a1": 2, "dc-a2": 0, "dc-b1": 1} {
		m := f.members[name]
		waitFor(t, fmt.Sprintf("%s runs %d replicas of after-kill", name, n), 30*time.Second, func() bool { return runningWith(t, m, "place", "after-kill") == n })
	}
	t.Logf("after-kill placed and running %v after the plugin was killed", time.Since(start).Round(time.Millisecond))
	waitFor(t, "the plugin restarted", 30*time.Second, func() bool {
		out, _ := runCLI(t, f.hub, "", "plugin", "list")
		return regexp.MustCompile(`residency\s+external\s+Filter\s+Running\s+\S+\s+[1-9]`).MatchString(out)
	})
	// Restarted, it judges again.
	if out, err := runCLI(t, f.hub, spreadDeploy("eu-late", 2, ", meridian.io/jurisdiction: eu"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "both replicas of eu-late in dc-b1", 30*time.Second, func() bool {
		return runningWith(t, f.members["dc-b1"], "place", "eu-late") == 2
	})
	if n := runningWith(t, f.members["dc-a1"], "place", "eu-late") + runningWith(t, f.members["dc-a2"], "place", "eu-late"); n != 0 {
		t.Fatalf("%d replicas of eu-late in region-a", n)
	}
}
