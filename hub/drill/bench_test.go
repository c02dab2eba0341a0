package drill_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// benchWorkloads is how many workloads a benchmark drill concerns.
const benchWorkloads = 100

// benchFed is a federation (sim members, pods start in 500 ms) running
// benchWorkloads Deployments of 3 replicas, one per cluster.
func benchFed(b *testing.B) *fed {
	f := startFed(b, slow(500*time.Millisecond))
	var y strings.Builder
	y.WriteString(strings.SplitN(shopYAML, "---\napiVersion: apps/v1", 2)[0])
	for i := range benchWorkloads {
		fmt.Fprintf(&y, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w%03d, namespace: shop, labels: {tier: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: w%03d}}
  template:
    metadata: {labels: {app: w%03d}}
    spec:
      containers:
      - {name: main, image: app:1}
`, i, i, i)
	}
	f.apply(y.String())
	eventually(b, "every workload ready", func() (bool, string) {
		resp, err := f.admin.List(ctx(b), &meridianv1.ListRequest{Kind: "deploy", Namespace: "shop"})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, it := range resp.GetItems() {
			if it.GetDeployment().GetStatus().GetReadyReplicas() == 3 {
				ready++
			}
		}
		return ready == benchWorkloads, fmt.Sprintf("%d ready", ready)
	})
	return f
}

// stepGap is the time between two steps of a drill's timeline.
func stepGap(d *meridianv1.Drill, from, to string) time.Duration {
	var a, z time.Time
	for _, s := range d.GetStatus().GetTimeline() {
		switch s.GetStep() {
		case from:
			a = s.GetTime().AsTime()
		case to:
			z = s.GetTime().AsTime()
		}
	}
	return z.Sub(a)
}

// benchDrill runs b.N drills of dc-a1 in mode over benchWorkloads
// workloads and reports the worst RTO (rto-s), the time to every
// workload recovered on the survivors (recovered-s) and the whole drill
// with its cleanup or failback (drill-s).
func benchDrill(b *testing.B, mode, from, to string) {
	f := benchFed(b)
	var rto, rec, total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-%s-%d", mode, i)
		f.runDrill(name, "datacenter: dc-a1", mode, "60s", "tier: web")
		d := f.waitEnded(name)
		if d.GetStatus().GetPhase() != "Succeeded" || len(d.GetStatus().GetWorkloads()) != benchWorkloads {
			b.Fatalf("%s: %s (%d workloads)", d.GetStatus().GetPhase(), d.GetStatus().GetMessage(), len(d.GetStatus().GetWorkloads()))
		}
		rto += d.GetStatus().GetRto().AsDuration()
		rec += stepGap(d, from, to)
		total += d.GetStatus().GetCompletionTime().AsTime().Sub(d.GetStatus().GetStartTime().AsTime())
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric((rto / n).Seconds(), "rto-s")
	b.ReportMetric((rec / n).Seconds(), "recovered-s")
	b.ReportMetric((total / n).Seconds(), "drill-s")
}

// BenchmarkDrillTest: test drills of dc-a1 with 100 workloads.
//
//	go test ./hub/drill -run '^$' -bench Drill -benchtime 3x
func BenchmarkDrillTest(b *testing.B) { benchDrill(b, "test", "Disruption", "Ready") }

// BenchmarkDrillPlanned: planned drills (switchover) of dc-a1 with 100
// workloads; rto-s is the worst time below the desired ready replicas.
func BenchmarkDrillPlanned(b *testing.B) { benchDrill(b, "planned", "TargetsUp", "Drained") }

// BenchmarkDrillUnplanned: unplanned drills of dc-a1 with 100 workloads.
func BenchmarkDrillUnplanned(b *testing.B) { benchDrill(b, "unplanned", "Disruption", "Recovered") }
