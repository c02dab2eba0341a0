package sim

import (
	"context"
	"fmt"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// BenchmarkSimStart starts b.N pods over 1,000 simulated nodes and waits
// until all of them run. It reports pods/s (start to all Running) and the
// heap retained per running pod.
func BenchmarkSimStart(b *testing.B) {
	const nodes = 1000
	spec := &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "app", Image: "app:1"}}}
	uids := make([]string, b.N)
	for i := range uids {
		uids[i] = fmt.Sprintf("pod-%08d", i)
	}
	e := newEngine(b, Config{Seed: 1})
	drivers := make([]*Node, nodes)
	for i := range drivers {
		drivers[i] = e.Node(fmt.Sprintf("node-%d", i))
	}
	goruntime.GC()
	var before goruntime.MemStats
	goruntime.ReadMemStats(&before)

	b.ResetTimer()
	begin := time.Now()
	for i, uid := range uids {
		req := &runtime.PodRequest{UID: uid, Namespace: "bench", Name: uid, Spec: spec, PodIP: "127.9.0.2"}
		if err := drivers[i%nodes].Start(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	for e.Stats().Running < b.N {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(begin)
	b.StopTimer()

	goruntime.GC()
	var after goruntime.MemStats
	goruntime.ReadMemStats(&after)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pods/s")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "B/pod")
	goruntime.KeepAlive(uids)
}

// BenchmarkSimStatus measures one Status call on an engine holding 10,000
// running pods: what an agent pays per pod per sync.
func BenchmarkSimStatus(b *testing.B) {
	const pods, nodes = 10_000, 1000
	e := newEngine(b, Config{Seed: 1})
	spec := &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "app"}, {Name: "sidecar"}}}
	for i := 0; i < pods; i++ {
		uid := fmt.Sprintf("pod-%d", i)
		req := &runtime.PodRequest{UID: uid, Spec: spec}
		if err := e.Node(fmt.Sprintf("node-%d", i%nodes)).Start(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	for e.Stats().Running < pods {
		time.Sleep(100 * time.Microsecond)
	}
	n := e.Node("node-0")
	uids := n.Pods()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := n.Status(uids[i%len(uids)]); !ok {
			b.Fatal("pod not found")
		}
	}
}

// BenchmarkSimChurn starts and stops pods on a loaded engine (10,000 pods
// running), as a rolling update does; one op is one start plus one stop.
func BenchmarkSimChurn(b *testing.B) {
	const pods, nodes = 10_000, 1000
	e := newEngine(b, Config{Seed: 1})
	spec := &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "app"}}}
	for i := 0; i < pods; i++ {
		req := &runtime.PodRequest{UID: fmt.Sprintf("base-%d", i), Spec: spec}
		if err := e.Node(fmt.Sprintf("node-%d", i%nodes)).Start(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := e.Node(fmt.Sprintf("node-%d", i%nodes))
		uid := fmt.Sprintf("churn-%d", i)
		if err := n.Start(ctx, &runtime.PodRequest{UID: uid, Spec: spec}); err != nil {
			b.Fatal(err)
		}
		if err := n.Stop(ctx, uid, 0); err != nil {
			b.Fatal(err)
		}
	}
}
