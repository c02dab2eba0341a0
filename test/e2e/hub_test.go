package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestHubBinaryKeepsObjectsAcrossRestart runs the real binary: apply the good
// corpus, stop the hub with SIGTERM, start it again on the same data, and find
// every object.
func TestHubBinaryKeepsObjectsAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	h := startHubProcess(t, dir)
	out, err := runCLI(t, h, "", "apply", "-f", "../testdata/good")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	// The hub's status aggregation writes each workload's status once
	// after it is created: wait until two reads agree.
	var before string
	waitFor(t, "the hub's objects to settle", 20*time.Second, func() bool {
		a, err := runCLI(t, h, "", "get", "deploy", "-A", "-o", "yaml")
		if err != nil {
			t.Fatalf("get: %v\n%s", err, a)
		}
		prev := before
		before = a
		return a == prev
	})
	h.stop(t)
	if !h.cmd.ProcessState.Success() {
		t.Errorf("hub exit after SIGTERM: %v", h.cmd.ProcessState)
	}
	h2 := startHubProcess(t, dir)
	after, err := runCLI(t, h2, "", "get", "deploy", "-A", "-o", "yaml")
	if err != nil {
		t.Fatalf("get after restart: %v\n%s", err, after)
	}
	if before != after || !strings.Contains(after, "kind: Deployment") {
		t.Errorf("objects changed across a restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// BenchmarkHubIdleRSS starts `meridian hub` (embedded etcd, API, metrics),
// lets it settle for two seconds and reports its resident memory.
//
//	go test ./test/e2e -run '^$' -bench BenchmarkHubIdleRSS -benchtime 1x
func BenchmarkHubIdleRSS(b *testing.B) {
	var total float64
	for i := 0; i < b.N; i++ {
		h := startHubProcess(b, b.TempDir())
		time.Sleep(2 * time.Second) // an idle window to measure, not a synchronisation
		rss, err := rssMiB(h.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		total += rss
		h.stop(b)
	}
	b.ReportMetric(total/float64(b.N), "RSS-MiB")
}
