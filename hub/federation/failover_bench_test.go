package federation_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// BenchmarkFailoverRTO measures the recovery time of a failed member: from
// stopping dc-a1's member (in-process: its Sync stream closes, so the hub
// sees it Unreachable at once) to every replica it ran being ready
// elsewhere, as the workloads' aggregated status reports them. Each
// workload is a Deployment of 3 replicas divided over the three members;
// the policy's toleration is 1s (part of the RTO). rto-s is the RTO;
// moved-s is the part after the toleration.
//
//	go test ./hub/federation -run '^$' -bench FailoverRTO -benchtime 1x
//
// To see where the time goes: MERIDIAN_BENCH_CPUPROFILE=FILE profiles the
// failover window alone; MERIDIAN_BENCH_HIST=1 logs how many workloads
// became ready in each quarter second; MERIDIAN_BENCH_STAGES=1 logs when
// each stage of the data path held and the hub's writes
// (stages_bench_test.go).
func BenchmarkFailoverRTO(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("workloads=%d", n), func(b *testing.B) {
			var rto time.Duration
			for range b.N {
				rto += benchFailoverOnce(b, n)
			}
			b.ReportMetric(rto.Seconds()/float64(b.N), "rto-s")
			b.ReportMetric((rto.Seconds()-float64(b.N))/float64(b.N), "moved-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

const benchToleration = "1"

func benchFailoverOnce(b *testing.B, n int) time.Duration {
	b.StopTimer()
	f, _, members := benchFed(b)
	ctx := context.Background()
	// Placed before every cluster is Ready, the workloads would all go
	// to the first one (and stay there: placement is steady).
	waitUntil(b, time.Minute, "three Ready clusters", func() (bool, string) {
		var hs []string
		for _, name := range []string{"dc-a1", "dc-a2", "dc-b1"} {
			cl, err := f.hub.Store().Get(ctx, resource.MustLookup("Cluster"), "", name)
			if err != nil {
				return false, err.Error()
			}
			for _, c := range cl.(*meridianv1.Cluster).GetStatus().GetConditions() {
				if c.GetType() == "Ready" {
					hs = append(hs, c.GetReason())
				}
			}
		}
		return strings.Count(strings.Join(hs, ","), "Ready") == 3, strings.Join(hs, ",")
	})
	nsApply(b, f, "bench")
	docs, err := manifest.Decode([]byte(`apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: spread, namespace: bench}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  failover: {tolerationSeconds: `+benchToleration+`}
`), "policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.admin.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(docs[0].Object)}); err != nil {
		b.Fatal(err)
	}
	three := int32(3)
	for i := range n {
		d := benchDeployment(fmt.Sprintf("w-%04d", i))
		d.Spec.Replicas = &three
		if _, err := f.admin.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(d)}); err != nil {
			b.Fatal(err)
		}
	}
	waitUntil(b, 5*time.Minute, "every replica ready, one per cluster", func() (bool, string) {
		objs, _, err := f.hub.Store().List(ctx, resource.MustLookup("Deployment"), "bench", nil)
		if err != nil {
			return false, err.Error()
		}
		short := 0
		for _, o := range objs {
			per := map[string]int32{}
			for _, c := range o.(*meridianv1.Deployment).GetStatus().GetClusters() {
				if c.GetApplied() {
					per[c.GetCluster()] += c.GetReadyReplicas()
				}
			}
			if per["dc-a1"] != 1 || per["dc-a2"] != 1 || per["dc-b1"] != 1 {
				short++
			}
		}
		return len(objs) == n && short == 0, fmt.Sprintf("%d of %d workloads not 1/1/1", short, len(objs))
	})

	// The clock is read from watches on the bindings and the Deployments
	// (polling 1,000 of each from etcd would load the machine it measures).
	tr := newRTOTracker(b, f, n)

	b.StartTimer()
	// The failover window alone (-cpuprofile, -trace would also take the
	// setup): a CPU profile, an execution trace (go tool trace).
	defer recordWindow(b, "MERIDIAN_BENCH_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)()
	defer recordWindow(b, "MERIDIAN_BENCH_TRACE", trace.Start, trace.Stop)()
	var sg *stages
	if os.Getenv("MERIDIAN_BENCH_STAGES") != "" {
		sctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sg = startStages(sctx, f, members["dc-a2"].Store())
		defer sg.report(b)
	}
	start := time.Now()
	members["dc-a1"].Close()
	decided, rto := tr.wait(b, start, 5*time.Minute)
	b.Logf("%d workloads: bindings moved after %s, replicas ready after %s", n, decided.Round(time.Millisecond), rto.Round(time.Millisecond))
	b.StopTimer()
	return rto
}

// recordWindow starts a recording into the file the environment variable
// env names, if it is set, and returns what stops it.
func recordWindow(b *testing.B, env string, start func(io.Writer) error, stop func()) func() {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := start(f); err != nil {
		b.Fatal(err)
	}
	return func() { stop(); f.Close() }
}

// rtoTracker follows, through watches, how many workloads have been failed
// over (their binding has a failedOver record) and how many have their 3
// replicas ready outside dc-a1 (the Deployment's aggregated status).
type rtoTracker struct {
	n                 int
	bw, dw            <-chan storage.Event
	moved, readyOut   map[string]bool
	nMoved, nReadyOut int
	cancel            context.CancelFunc
	movedAt, readyAt  []time.Time
}

func newRTOTracker(b *testing.B, f *fed, n int) *rtoTracker {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	t := &rtoTracker{n: n, moved: map[string]bool{}, readyOut: map[string]bool{}, cancel: cancel}
	bk, dk := resource.MustLookup("ResourceBinding"), resource.MustLookup("Deployment")
	bs, brev, err := f.hub.Store().List(ctx, bk, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	ds, drev, err := f.hub.Store().List(ctx, dk, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range bs {
		t.binding(o)
	}
	for _, o := range ds {
		t.deployment(o)
	}
	t.bw = f.hub.Store().Watch(ctx, bk, "bench", nil, brev)
	t.dw = f.hub.Store().Watch(ctx, dk, "bench", nil, drev)
	return t
}

// set sets m[k] to v, keeping *n the number of true values.
func set(m map[string]bool, n *int, k string, v bool) {
	if m[k] != v {
		if v {
			*n++
		} else {
			*n--
		}
	}
	m[k] = v
}

func (t *rtoTracker) binding(o resource.Object) {
	if len(o.(*meridianv1.ResourceBinding).GetSpec().GetFailedOver()) > 0 && !t.moved[o.GetMetadata().GetName()] {
		t.movedAt = append(t.movedAt, time.Now())
	}
	set(t.moved, &t.nMoved, o.GetMetadata().GetName(), len(o.(*meridianv1.ResourceBinding).GetSpec().GetFailedOver()) > 0)
}

func (t *rtoTracker) deployment(o resource.Object) {
	var got int32
	for _, c := range o.(*meridianv1.Deployment).GetStatus().GetClusters() {
		if c.GetCluster() != "dc-a1" && c.GetApplied() {
			got += c.GetReadyReplicas()
		}
	}
	if got >= 3 && !t.readyOut[o.GetMetadata().GetName()] {
		t.readyAt = append(t.readyAt, time.Now())
	}
	set(t.readyOut, &t.nReadyOut, o.GetMetadata().GetName(), got >= 3)
}

// wait returns when every binding has moved and every workload is ready
// outside dc-a1: the times from start to both.
func (t *rtoTracker) wait(b *testing.B, start time.Time, d time.Duration) (decided, rto time.Duration) {
	b.Helper()
	defer t.cancel()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		select {
		case ev := <-t.bw:
			if ev.Type == storage.Error {
				b.Fatalf("binding watch: %v", ev.Err)
			}
			if ev.Object != nil {
				t.binding(ev.Object)
			}
		case ev := <-t.dw:
			if ev.Type == storage.Error {
				b.Fatalf("deployment watch: %v", ev.Err)
			}
			if ev.Object != nil {
				t.deployment(ev.Object)
			}
		case <-timeout.C:
			b.Fatalf("after %s: %d of %d bindings moved, %d of %d workloads ready outside dc-a1", d, t.nMoved, t.n, t.nReadyOut, t.n)
		}
		if decided == 0 && t.nMoved == t.n {
			decided = time.Since(start)
		}
		if decided != 0 && t.nReadyOut == t.n {
			q := func(ts []time.Time) string {
				var out []string
				for _, p := range []int{0, 10, 25, 50, 75, 90, 100} {
					i := min(len(ts)-1, p*len(ts)/100)
					out = append(out, fmt.Sprintf("p%d=%s", p, ts[i].Sub(start).Round(10*time.Millisecond)))
				}
				return strings.Join(out, " ")
			}
			b.Logf("bindings moved (time after the stop, by percentile of workloads): %s", q(t.movedAt))
			b.Logf("replicas ready elsewhere: %s", q(t.readyAt))
			if os.Getenv("MERIDIAN_BENCH_HIST") != "" {
				hist := map[int]int{}
				for _, at := range t.readyAt {
					hist[int(at.Sub(start)/(250*time.Millisecond))]++
				}
				for i := 0; i <= int(time.Since(start)/(250*time.Millisecond)); i++ {
					b.Logf("ready %5.2fs %d", float64(i)/4, hist[i])
				}
			}
			return decided, time.Since(start)
		}
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(b *testing.B, d time.Duration, what string, cond func() (bool, string)) {
	b.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s: %s", d, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
