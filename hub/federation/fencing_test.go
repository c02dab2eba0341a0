package federation_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/federation"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/member"
	"github.com/meridian-fed/meridian/member/fence"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// dbYAML is the singleton of these tests: a StatefulSet of one replica.
const dbYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: main, image: db:1}
`

// podPhases lists a member's pods in ns as name → phase/reason.
func podPhases(t *testing.T, m *member.Member, ns string) map[string]string {
	t.Helper()
	objs, _, err := m.Store().List(ctx(t), resource.MustLookup("Pod"), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		p := o.(*meridianv1.Pod)
		out[p.GetMetadata().GetName()] = p.GetStatus().GetPhase() + "/" + p.GetStatus().GetReason()
	}
	return out
}

// TestSingletonsRunUnderTheLease runs a StatefulSet and a Deployment on a
// member: the StatefulSet's pod runs only while the member holds its lease
// from the hub. With the hub gone longer than the lease, the member stops
// (fences) the singleton and keeps the Deployment; with the hub back, the
// singleton runs again.
func TestSingletonsRunUnderTheLease(t *testing.T) {
	f := startHub(t, func(c *hub.Config) {
		c.Listen = fmt.Sprintf("127.0.0.1:%d", hubtest.FreePort(t)) // the same address after a restart
		c.LeaseDuration, c.LeaseMargin = time.Second, 250*time.Millisecond
	})
	m := f.join(f.memberConfig("dc-a1", "region-a", "dc-a1", 0))
	f.apply(nsYAML + "---\n" + deployYAML("web", 1, "app:1") + "---\n" + dbYAML)
	running := func(want map[string]bool) func() (bool, string) {
		return func() (bool, string) {
			got := podPhases(t, m, "demo")
			dbRunning := got["db-0"] == "Running/"
			webRunning := 0
			for name, st := range got {
				if name != "db-0" && st == "Running/" {
					webRunning++
				}
			}
			return dbRunning == want["db"] && webRunning == 1, fmt.Sprint(got)
		}
	}
	eventually(t, "db-0 and web running", running(map[string]bool{"db": true}))

	f.hub.Close()
	start := time.Now()
	eventually(t, "db-0 fenced, web still running", func() (bool, string) {
		got := podPhases(t, m, "demo")
		ok, detail := running(nil)()
		return ok && got["db-0"] == "Pending/Fenced", detail
	})
	// Held until t_send + 1s − 200ms − 10ms; the last renewal was sent at
	// most a renew interval (250ms) before the hub closed.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the singleton was fenced %s after the hub went away, want about a lease", took)
	}
	f.restartHub()
	eventually(t, "db-0 running again once the hub is back", running(map[string]bool{"db": true}))

	// A planned move off the cluster, which keeps its lease: Revoke, the
	// member fences the copy and reports it, Release commits the epoch.
	fence := f.hub.Federation().Fence()
	rev, ok := fence.(federation.Revoker)
	if !ok {
		t.Fatalf("the hub's fence %T cannot revoke", fence)
	}
	const w = "demo/StatefulSet/db"
	if err := rev.Revoke(ctx(t), w, "dc-a1"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var epoch int64
	eventually(t, "Release to commit after the member's report", func() (bool, string) {
		ep, wait, err := fence.Release(ctx(t), w, "dc-a1")
		if err != nil {
			t.Fatal(err)
		}
		epoch = ep
		return ep > 0, fmt.Sprintf("wait %s; pods %v", wait, podPhases(t, m, "demo"))
	})
	t.Logf("Revoke → committed epoch %d in %s", epoch, time.Since(start).Round(time.Millisecond))
	if got := podPhases(t, m, "demo")["db-0"]; got != "Pending/Fenced" {
		t.Errorf("db-0 is %s after the release, want Pending/Fenced", got)
	}
	if ok, detail := running(nil)(); !ok {
		t.Errorf("web stopped with the singleton: %s", detail)
	}
}

// dbPolicy places the StatefulSet db on cluster alone.
func dbPolicy(cluster string) string {
	return fmt.Sprintf(`apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: db, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: StatefulSet, name: db}]
  placement:
    clusterAffinity: {clusterNames: [%s]}
`, cluster)
}

// TestPolicyMoveFencesSingleton: a policy edit that moves a StatefulSet
// from dc-a1 to dc-a2 goes through the fence: dc-a2 gets its pod only once
// dc-a1's copy has stopped, and with a higher MERIDIAN_FENCING_EPOCH; the
// binding's history records the move.
func TestPolicyMoveFencesSingleton(t *testing.T) {
	f := startHub(t, func(c *hub.Config) { c.LeaseDuration, c.LeaseMargin = time.Second, 250*time.Millisecond })
	a1 := f.join(f.memberConfig("dc-a1", "region-a", "dc-a1", 0))
	a2 := f.join(f.memberConfig("dc-a2", "region-a", "dc-a2", 1))
	eventually(t, "two Ready clusters", func() (bool, string) {
		h1, h2 := health(f.cluster("dc-a1")), health(f.cluster("dc-a2"))
		return h1 == "Ready" && h2 == "Ready", h1 + "," + h2
	})
	f.apply(nsYAML + "---\n" + dbPolicy("dc-a1") + "---\n" + dbYAML)
	eventually(t, "db-0 running on dc-a1", func() (bool, string) {
		got := podPhases(t, a1, "demo")
		return got["db-0"] == "Running/", fmt.Sprint(got)
	})
	old, err := memberGet(a1, "Pod", "demo", "db-0")
	if err != nil {
		t.Fatal(err)
	}
	oldEpoch := fence.Epoch(old.(*meridianv1.Pod))

	// Watch dc-a2's pods from now: the first sight of db-0 there must find
	// dc-a1's copy stopped.
	wctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, rev, err := a2.Store().List(wctx, resource.MustLookup("Pod"), "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	events := a2.Store().Watch(wctx, resource.MustLookup("Pod"), "demo", nil, rev)
	f.apply(dbPolicy("dc-a2"))
	var created *meridianv1.Pod
	for created == nil {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("dc-a2's pods: the watch ended before db-0 came")
			}
			if p, isPod := ev.Object.(*meridianv1.Pod); isPod && p.GetMetadata().GetName() == "db-0" {
				created = p
				// The old copy, as dc-a1 knows it at this moment.
				if st := podPhases(t, a1, "demo")["db-0"]; st == "Running/" {
					t.Errorf("db-0 created on dc-a2 while dc-a1's copy still runs")
				}
			}
		case <-wctx.Done():
			t.Fatalf("db-0 never came to dc-a2: dc-a1 %v", podPhases(t, a1, "demo"))
		}
	}
	if got := fence.Epoch(created); got <= oldEpoch {
		t.Errorf("the moved copy runs with epoch %d, the old one had %d: want higher", got, oldEpoch)
	}
	eventually(t, "db-0 running on dc-a2", func() (bool, string) {
		got := podPhases(t, a2, "demo")
		return got["db-0"] == "Running/", fmt.Sprint(got)
	})
	b := f.get("ResourceBinding", "demo", "statefulset.db").(*meridianv1.ResourceBinding)
	h := b.GetStatus().GetHistory()
	if len(h) == 0 || h[len(h)-1].GetType() != "Placement" || len(b.GetSpec().GetPlannedClusters()) != 0 {
		t.Errorf("binding after the move: history %v, planned %v", h, b.GetSpec().GetPlannedClusters())
	}
}
