package federation_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const failoverPolicyYAML = `apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: spread, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement:
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  failover: {tolerationSeconds: 1, stabilizationSeconds: 2}
`

func bindingTargets(b *meridianv1.ResourceBinding) string {
	var parts []string
	for _, t := range b.GetSpec().GetClusters() {
		parts = append(parts, fmt.Sprintf("%s=%d", t.GetName(), t.GetReplicas()))
	}
	return strings.Join(parts, ",")
}

// TestFailoverAndFailback runs a hub with three sim members (dc-a1 and
// dc-a2 in region-a, dc-b1 in region-b) and a Deployment divided 4/4/4:
// closing dc-a1's member moves its 4 replicas to dc-a2 (same region
// first) after the toleration; the old copy is a graceful eviction (its
// Work kept) until dc-a2's replicas are ready; starting the member again
// on its data brings the replicas back after the stabilization window.
func TestFailoverAndFailback(t *testing.T) {
	f := startHub(t, nil)
	cfgs := map[string]member.Config{
		"dc-a1": f.memberConfig("dc-a1", "region-a", "dc-a1", 0),
		"dc-a2": f.memberConfig("dc-a2", "region-a", "dc-a2", 1),
		"dc-b1": f.memberConfig("dc-b1", "region-b", "dc-b1", 2),
	}
	members := map[string]*member.Member{}
	for n, cfg := range cfgs {
		members[n] = f.join(cfg)
	}
	eventually(t, "three Ready clusters", func() (bool, string) {
		var hs []string
		for n := range members {
			hs = append(hs, health(f.cluster(n)))
		}
		return strings.Count(strings.Join(hs, ","), "Ready") == 3, strings.Join(hs, ",")
	})
	f.apply(nsYAML + "---\n" + failoverPolicyYAML + "---\n" + deployYAML("web", 12, "app:1"))
	binding := func() *meridianv1.ResourceBinding {
		resp, err := f.admin.Get(ctx(t), &meridianv1.GetRequest{Kind: "resourcebindings", Namespace: "demo", Name: "deployment.web"})
		if err != nil {
			return nil // not placed yet
		}
		return resp.GetObject().GetResourceBinding()
	}
	eventually(t, "web divided 4/4/4", func() (bool, string) {
		b := binding()
		return bindingTargets(b) == "dc-a1=4,dc-a2=4,dc-b1=4", bindingTargets(b)
	})
	for n, m := range members {
		eventually(t, n+" runs 4", func() (bool, string) {
			r, _ := replicasOn(m, "web")
			return r == 4, fmt.Sprint(r)
		})
	}

	members["dc-a1"].Close()
	eventually(t, "dc-a1's replicas on dc-a2", func() (bool, string) {
		b := binding()
		return bindingTargets(b) == "dc-a2=8,dc-b1=4", bindingTargets(b)
	})
	// While dc-a1 is evicting, its Work stays (graceful): a Work read as
	// gone while the binding (read after it) still evicts would be a purge
	// before the replacements are ready.
	workName := federation.WorkName(resource.MustLookup("Deployment"), "demo", "web")
	sawKept := false
	for deadline := time.Now().Add(waitTimeout); ; {
		if time.Now().After(deadline) {
			t.Fatal("the eviction did not end")
		}
		_, err := f.hub.Store().Get(ctx(t), resource.MustLookup("Work"), federation.ClusterNamespace("dc-a1"), workName)
		evicting := len(binding().GetSpec().GetEvicting()) > 0
		if !evicting {
			break
		}
		if err != nil {
			t.Fatalf("dc-a1's Work is gone while the binding still evicts it: %v", err)
		}
		sawKept = true
		time.Sleep(20 * time.Millisecond)
	}
	if !sawKept {
		t.Log("the eviction ended before the test looked")
	}
	eventually(t, "dc-a2 runs 8", func() (bool, string) {
		r, _ := replicasOn(members["dc-a2"], "web")
		return r == 8, fmt.Sprint(r)
	})
	eventually(t, "the eviction ends once dc-a2's replicas are ready", func() (bool, string) {
		b := binding()
		return len(b.GetSpec().GetEvicting()) == 0, fmt.Sprint(b.GetSpec().GetEvicting())
	})
	b := binding()
	if fo := b.GetSpec().GetFailedOver(); len(fo) != 1 || fo[0].GetCluster() != "dc-a1" || fo[0].GetReplicas() != 4 {
		t.Fatalf("failedOver = %v", fo)
	}
	if h := b.GetStatus().GetHistory(); len(h) == 0 || h[len(h)-1].GetType() != "Failover" {
		t.Fatalf("history = %v", h)
	}

	// Back on the same data: after the stabilization window, the replicas
	// come back in two steps (at most 3 of 12 each), which the placement
	// controller leaves alone.
	cfg := cfgs["dc-a1"]
	cfg.JoinToken = ""
	members["dc-a1"] = f.startMember(cfg)
	eventually(t, "failback to dc-a1", func() (bool, string) {
		b := binding()
		return bindingTargets(b) == "dc-a1=4,dc-a2=4,dc-b1=4" && len(b.GetSpec().GetFailedOver()) == 0, bindingTargets(b)
	})
	eventually(t, "dc-a1 runs 4 again", func() (bool, string) {
		r, _ := replicasOn(members["dc-a1"], "web")
		return r == 4, fmt.Sprint(r)
	})
	var steps []string
	for _, m := range binding().GetStatus().GetHistory() {
		if m.GetType() == "Failback" {
			steps = append(steps, bindingTargets(&meridianv1.ResourceBinding{Spec: &meridianv1.ResourceBindingSpec{Clusters: m.GetTo()}}))
		}
	}
	if strings.Join(steps, " → ") != "dc-a1=3,dc-a2=5,dc-b1=4 → dc-a1=4,dc-a2=4,dc-b1=4" {
		t.Errorf("failback steps %v", steps)
	}
}
