package drill_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/member"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const waitTimeout = 60 * time.Second

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return c
}

// fed is an in-process federation: a hub and three sim members, dc-a1 and
// dc-a2 in region-a, dc-b1 in region-b.
type fed struct {
	t       testing.TB
	cfg     hub.Config
	hub     *hub.Hub
	admin   meridianv1.AdminServiceClient
	fed     meridianv1.FederationServiceClient
	members map[string]*member.Member
}

// memberOpts shapes one member of the fixture.
type memberOpts struct {
	startDelay time.Duration
	nodeCPU    string
}

func startFed(t testing.TB, opts map[string]memberOpts) *fed {
	t.Helper()
	cfg := hubtest.Config(t, t.TempDir())
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", hubtest.FreePort(t)) // members find a restarted hub
	cfg.ShutdownTimeout = 300 * time.Millisecond                  // a restart is a leader loss, not a long drain
	f := &fed{t: t, cfg: cfg, hub: hubtest.Start(t, cfg), members: map[string]*member.Member{}}
	conn := hubtest.Conn(t, f.hub)
	f.admin = meridianv1.NewAdminServiceClient(conn)
	f.fed = meridianv1.NewFederationServiceClient(conn)
	for i, m := range []struct{ name, region string }{{"dc-a1", "region-a"}, {"dc-a2", "region-a"}, {"dc-b1", "region-b"}} {
		mc := member.DefaultConfig()
		mc.Name, mc.Region, mc.Datacenter = m.name, m.region, m.name
		mc.DataDir = t.TempDir()
		mc.Listen, mc.HTTPListen = "127.0.0.1:0", ""
		mc.PodCIDR = fmt.Sprintf("127.%d.0.0/16", 140+i)
		mc.ServiceCIDR = fmt.Sprintf("127.%d.0.0/16", 160+i)
		mc.Runtime, mc.NodeCount = "sim", 2
		mc.Hub = f.hub.Addr()
		mc.HeartbeatInterval = 200 * time.Millisecond
		mc.ShutdownTimeout = 5 * time.Second
		mc.LogLevel = "error"
		if o, ok := opts[m.name]; ok {
			mc.SimStartDelay = o.startDelay
			if o.nodeCPU != "" {
				mc.NodeCPU = o.nodeCPU
			}
		}
		tok, err := f.fed.CreateJoinToken(ctx(t), &meridianv1.CreateJoinTokenRequest{Cluster: m.name, TtlSeconds: 600})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		mc.JoinToken, mc.HubCAPin = tok.GetToken(), tok.GetCaPin()
		mm, err := member.Start(ctx(t), mc, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
		if err != nil {
			t.Fatalf("start member %s: %v", m.name, err)
		}
		t.Cleanup(func() { mm.Close() })
		f.members[m.name] = mm
	}
	eventually(t, "three Ready clusters", func() (bool, string) {
		var hs []string
		for n := range f.members {
			hs = append(hs, health(f.get("clusters", "", n).(*meridianv1.Cluster)))
		}
		return strings.Count(strings.Join(hs, ","), "Ready") == 3, strings.Join(hs, ",")
	})
	return f
}

func health(c *meridianv1.Cluster) string {
	for _, cond := range c.GetStatus().GetConditions() {
		if cond.GetType() == "Ready" {
			return cond.GetReason()
		}
	}
	return ""
}

func (f *fed) apply(yaml string) {
	f.t.Helper()
	docs, err := manifest.Decode([]byte(yaml), "test.yaml")
	if err != nil {
		f.t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := f.admin.Apply(ctx(f.t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d.Object)}); err != nil {
			f.t.Fatalf("apply %s: %v", d.Object.GetMetadata().GetName(), err)
		}
	}
}

func (f *fed) get(kind, ns, name string) resource.Object {
	f.t.Helper()
	o, err := f.tryGet(kind, ns, name)
	if err != nil {
		f.t.Fatalf("get %s %s/%s: %v", kind, ns, name, err)
	}
	return o
}

func (f *fed) tryGet(kind, ns, name string) (resource.Object, error) {
	resp, err := f.admin.Get(ctx(f.t), &meridianv1.GetRequest{Kind: kind, Namespace: ns, Name: name})
	if err != nil {
		return nil, err
	}
	o, _, err := resource.Unwrap(resp.GetObject())
	return o, err
}

func (f *fed) drill(name string) *meridianv1.Drill {
	f.t.Helper()
	return f.get("drills", "", name).(*meridianv1.Drill)
}

// runDrill creates a drill.
func (f *fed) runDrill(name, scope, mode, rto, selector string) {
	f.t.Helper()
	f.apply(fmt.Sprintf("apiVersion: meridian.io/v1\nkind: Drill\nmetadata: {name: %s}\nspec:\n  scope: {%s}\n  mode: %s\n  rto: %s\n  workloads: {matchLabels: {%s}}\n", name, scope, mode, rto, selector))
}

// waitEnded waits for a drill to end and returns it.
func (f *fed) waitEnded(name string) *meridianv1.Drill {
	f.t.Helper()
	var d *meridianv1.Drill
	eventually(f.t, "drill "+name+" to end", func() (bool, string) {
		d = f.drill(name)
		switch d.GetStatus().GetPhase() {
		case "Succeeded", "Failed", "Aborted", "Refused":
			return true, ""
		}
		return false, d.GetStatus().GetPhase()
	})
	return d
}

func (f *fed) binding(ns, name string) *meridianv1.ResourceBinding {
	f.t.Helper()
	return f.get("resourcebindings", ns, name).(*meridianv1.ResourceBinding)
}

// memberReplicas is the replicas of a member's copy of a Deployment (-1:
// none).
func (f *fed) memberReplicas(cluster, ns, name string) int32 {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := f.members[cluster].Store().Get(c, resource.MustLookup("deploy"), ns, name)
	if err != nil {
		return -1
	}
	return o.(*meridianv1.Deployment).GetSpec().GetReplicas()
}

// podUIDs are the uids of a member's pods in ns.
func (f *fed) podUIDs(cluster, ns string) []string {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	objs, _, err := f.members[cluster].Store().List(c, resource.MustLookup("pods"), ns, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.GetMetadata().GetName()+"="+o.GetMetadata().GetUid())
	}
	return out
}

func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shopYAML: namespace shop, a policy dividing Deployments labelled
// tier=web evenly over the three clusters, and Deployment web (6 replicas,
// 2 per cluster).
const shopYAML = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: spread, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, labelSelector: {matchLabels: {tier: web}}}]
  placement:
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - targetCluster: {clusterNames: [dc-a1]}
          weight: 1
        - targetCluster: {clusterNames: [dc-a2]}
          weight: 1
        - targetCluster: {clusterNames: [dc-b1]}
          weight: 1
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {tier: web}, annotations: {meridian.io/replication-lag-seconds: "0.5"}}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: main, image: web:1}
`

// waitPlaced waits until web runs 2 replicas on each member.
func (f *fed) waitPlaced() {
	f.t.Helper()
	eventually(f.t, "web on every member", func() (bool, string) {
		var got []string
		ok := true
		for _, c := range []string{"dc-a1", "dc-a2", "dc-b1"} {
			n := f.memberReplicas(c, "shop", "web")
			got = append(got, fmt.Sprintf("%s=%d", c, n))
			ok = ok && n == 2
		}
		d := f.get("deploy", "shop", "web").(*meridianv1.Deployment)
		return ok && d.GetStatus().GetReadyReplicas() == 6, strings.Join(got, ",")
	})
}

func (f *fed) applyObject(o resource.Object) {
	f.t.Helper()
	if _, err := f.admin.Apply(ctx(f.t), &meridianv1.ApplyRequest{Object: resource.MustWrap(o)}); err != nil {
		f.t.Fatalf("apply %s: %v", o.GetMetadata().GetName(), err)
	}
}

// restartHub stops the hub and starts it again on its data and address:
// a new leader.
func (f *fed) restartHub() {
	f.t.Helper()
	f.hub.Close()
	f.hub = hubtest.Start(f.t, f.cfg)
	conn := hubtest.Conn(f.t, f.hub)
	f.admin = meridianv1.NewAdminServiceClient(conn)
	f.fed = meridianv1.NewFederationServiceClient(conn)
}
