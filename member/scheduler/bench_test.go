package scheduler

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The benchmark cluster: 1,000 nodes of 4 cpu and 16 GiB in four zones,
// one in ten tainted for GPU work; 10,000 pods of 100 workloads, each pod
// asking 250m and 512 MiB, one workload in ten pinned to a zone and one in
// ten tolerating the GPU taint. That fills the cluster to about 60%.
const (
	benchNodes = 1000
	benchPods  = 10000
)

func benchNodeObjects() []*meridianv1.Node {
	out := make([]*meridianv1.Node, 0, benchNodes)
	for i := range benchNodes {
		var taints []*meridianv1.Taint
		if i%10 == 9 {
			taints = append(taints, &meridianv1.Taint{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"})
		}
		out = append(out, node(fmt.Sprintf("node-%04d", i), "4", "16Gi",
			map[string]string{"zone": fmt.Sprintf("zone-%d", i%4)}, taints...))
	}
	return out
}

func benchPodObjects() []*meridianv1.Pod {
	out := make([]*meridianv1.Pod, 0, benchPods)
	for i := range benchPods {
		w := i % 100
		p := pod(fmt.Sprintf("w%02d-%05d", w, i), "250m", "512Mi", fmt.Sprintf("w%02d", w))
		resource.Meta(p).Uid = fmt.Sprintf("uid-%05d", i)
		if w%10 == 3 {
			p.Spec.NodeSelector = map[string]string{"zone": "zone-1"}
		}
		if w%10 == 7 {
			p.Spec.Tolerations = []*meridianv1.Toleration{{Key: "dedicated", Operator: "Exists"}}
		}
		out = append(out, p)
	}
	return out
}

// BenchmarkScheduleAlgorithm is the scheduling goroutine alone: filter and
// score 1,000 nodes and assume the pod, for 10,000 pods, in memory.
func BenchmarkScheduleAlgorithm(b *testing.B) {
	nodes := benchNodeObjects()
	pods := make([]*PodInfo, 0, benchPods)
	for _, p := range benchPodObjects() {
		pi, err := NewPodInfo(p)
		if err != nil {
			b.Fatal(err)
		}
		pods = append(pods, pi)
	}
	fw, err := NewFramework(DefaultProfile())
	if err != nil {
		b.Fatal(err)
	}
	var spent time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c := cacheOf(b, nodes...)
		b.StartTimer()
		start := time.Now()
		for _, pi := range pods {
			if _, err := c.ScheduleAndAssume(fw, pi); err != nil {
				b.Fatalf("pod %s: %v", pi.Key, err)
			}
		}
		spent += time.Since(start)
	}
	b.ReportMetric(float64(benchPods*b.N)/spent.Seconds(), "pods/s")
	b.ReportMetric(float64(spent.Microseconds())/float64(benchPods*b.N), "µs/pod")
}

// BenchmarkSchedule is the whole scheduler over a real etcd store: 10,000
// pending pods and 1,000 nodes are in the store, the scheduler starts, and
// the clock stops when every pod is bound (a conditional write each, and a
// Scheduled event each). The figure includes the informers' first list.
func BenchmarkSchedule(b *testing.B) {
	var spent time.Duration
	for range b.N {
		b.StopTimer()
		st, ctx := newStore(b)
		objs := make([]resource.Object, 0, benchNodes+benchPods)
		for _, n := range benchNodeObjects() {
			objs = append(objs, n)
		}
		for _, p := range benchPodObjects() {
			resource.Meta(p).Uid = ""
			objs = append(objs, p)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(objs); i += 32 {
					if err := createWithStatus(ctx, st, objs[i]); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}

		b.StartTimer()
		start := time.Now()
		s := startScheduler(b, st, Config{Binders: 32, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		deadline := time.Now().Add(5 * time.Minute)
		for s.bound.Load() < benchPods {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d pods bound after 5 minutes", s.bound.Load(), benchPods)
			}
			time.Sleep(5 * time.Millisecond)
		}
		spent += time.Since(start)
		b.StopTimer()
	}
	b.ReportMetric(float64(benchPods*b.N)/spent.Seconds(), "pods/s")
}
