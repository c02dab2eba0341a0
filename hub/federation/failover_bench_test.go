package federation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
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
	// ready reports whether every workload has 3 ready replicas outside
	// skip ("" counts every cluster).
	ready := func(skip string) (bool, string) {
		objs, _, err := f.hub.Store().List(ctx, resource.MustLookup("Deployment"), "bench", nil)
		if err != nil {
			return false, err.Error()
		}
		short := 0
		for _, o := range objs {
			var got int32
			for _, c := range o.(*meridianv1.Deployment).GetStatus().GetClusters() {
				if c.GetCluster() != skip && c.GetApplied() {
					got += c.GetReadyReplicas()
				}
			}
			if got < 3 {
				short++
			}
		}
		return len(objs) == n && short == 0, fmt.Sprintf("%d of %d workloads short", short, len(objs))
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

	b.StartTimer()
	start := time.Now()
	members["dc-a1"].Close()
	waitUntil(b, time.Minute, "every binding moved", func() (bool, string) {
		objs, _, err := f.hub.Store().List(ctx, resource.MustLookup("ResourceBinding"), "bench", nil)
		if err != nil {
			return false, err.Error()
		}
		moved := 0
		for _, o := range objs {
			if len(o.(*meridianv1.ResourceBinding).GetSpec().GetFailedOver()) > 0 {
				moved++
			}
		}
		if moved == n {
			return true, ""
		}
		var detail []string
		for _, name := range []string{"dc-a1", "dc-a2", "dc-b1"} {
			cl, _ := f.hub.Store().Get(ctx, resource.MustLookup("Cluster"), "", name)
			for _, c := range cl.(*meridianv1.Cluster).GetStatus().GetConditions() {
				if c.GetType() == "Ready" {
					detail = append(detail, name+"="+c.GetReason())
				}
			}
		}
		evs, _, _ := f.hub.Store().List(ctx, resource.MustLookup("Event"), "bench", nil)
		for _, e := range evs {
			detail = append(detail, "event "+e.(*meridianv1.Event).GetReason()+": "+e.(*meridianv1.Event).GetMessage())
		}
		if len(objs) > 0 {
			detail = append(detail, "binding "+objs[0].(*meridianv1.ResourceBinding).String())
		}
		return false, fmt.Sprintf("%d of %d moved; %s", moved, n, strings.Join(detail, "\n"))
	})
	decided := time.Since(start)
	waitUntil(b, 5*time.Minute, "dc-a1's replicas ready elsewhere", func() (bool, string) { return ready("dc-a1") })
	rto := time.Since(start)
	b.Logf("%d workloads: bindings moved after %s, replicas ready after %s", n, decided.Round(time.Millisecond), rto.Round(time.Millisecond))
	b.StopTimer()
	return rto
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
