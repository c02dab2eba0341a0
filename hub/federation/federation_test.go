package federation_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/member"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestJoinSyncAndStatus joins three members (two regions), applies a
// workload on the hub, and sees every member run its replicas and the
// hub's status sum them.
func TestJoinSyncAndStatus(t *testing.T) {
	f := startHub(t, nil)
	members := map[string]bool{}
	for i, m := range []struct{ name, region, dc string }{{"dc-a1", "region-a", "dc-a1"}, {"dc-a2", "region-a", "dc-a2"}, {"dc-b1", "region-b", "dc-b1"}} {
		f.join(f.memberConfig(m.name, m.region, m.dc, i))
		members[m.name] = true
	}
	for name := range members {
		eventually(t, name+" Ready", func() (bool, string) {
			c := f.cluster(name)
			return health(c) == "Ready" && c.GetStatus().GetNodeCount() == 2, fmt.Sprint(c.GetStatus())
		})
	}
	f.apply(nsYAML + "---\n" + deployYAML("web", 2, "nginx:1"))
	eventually(t, "federation-wide status 6/6", func() (bool, string) {
		d := f.get("deploy", "demo", "web").(*meridianv1.Deployment)
		st := d.GetStatus()
		return st.GetReadyReplicas() == 6 && len(st.GetClusters()) == 3, fmt.Sprint(st)
	})
}

// TestMemberResumesAndResnapshots stops a member, changes what it must
// run, and starts it again: it resumes from its revision; after the hub
// compacted that revision, it gets a clean snapshot instead. Either way it
// ends with exactly the hub's state, and unchanged objects are not
// rewritten.
func TestMemberResumesAndResnapshots(t *testing.T) {
	f := startHub(t, nil)
	cfg := f.memberConfig("dc-a1", "region-a", "dc-a1", 0)
	m := f.join(cfg)
	cfg.JoinToken = ""
	f.apply(nsYAML + "---\n" + deployYAML("keep", 1, "app:1") + "---\n" + deployYAML("gone", 1, "app:1") + "---\n" + deployYAML("change", 1, "app:1"))
	eventually(t, "the member has the three deployments", func() (bool, string) {
		_, err := memberGet(m, "deploy", "demo", "change")
		return err == nil, fmt.Sprint(err)
	})

	for round, compact := range []bool{false, true} {
		m.Close()
		f.apply(deployYAML("change", 2, fmt.Sprintf("app:%d", round+2)) + "---\n" + deployYAML(fmt.Sprintf("new-%d", round), 1, "app:1"))
		if _, err := f.admin.Delete(ctx(t), &meridianv1.DeleteRequest{Kind: "deploy", Namespace: "demo", Name: "gone"}); err != nil && round == 0 {
			t.Fatal(err)
		}
		before := snapshotCount(t, f)
		if compact {
			rev, err := f.hub.Store().Revision(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.hub.Store().Compact(ctx(t), rev); err != nil {
				t.Fatal(err)
			}
		}
		m = f.startMember(cfg)
		eventually(t, "the member catches up", func() (bool, string) {
			o, err := memberGet(m, "deploy", "demo", fmt.Sprintf("new-%d", round))
			if err != nil {
				return false, err.Error()
			}
			c, err := memberGet(m, "deploy", "demo", "change")
			if err != nil {
				return false, err.Error()
			}
			// The hub writes the Works of different objects concurrently:
			// wait for every change, in any order.
			if _, err := memberGet(m, "deploy", "demo", "gone"); err == nil {
				return false, "a deployment deleted on the hub is still on the member"
			}
			return o != nil && c.(*meridianv1.Deployment).GetSpec().GetReplicas() == 2, ""
		})
		k, _ := memberGet(m, "deploy", "demo", "keep")
		if k.GetMetadata().GetGeneration() != 1 {
			t.Errorf("round %d: an unchanged deployment was changed (generation %d)", round, k.GetMetadata().GetGeneration())
		}
		got := snapshotCount(t, f) - before
		if compact && got < 1 {
			t.Errorf("round %d: a compacted revision was resumed without a snapshot", round)
		}
		if !compact && got != 0 {
			t.Errorf("round %d: the member got %v snapshots, want a resume", round, got)
		}
	}
}

// snapshotCount reads meridian_hub_sync_snapshots_total from the hub.
func snapshotCount(t *testing.T, f *fed) float64 {
	t.Helper()
	resp, err := http.Get("http://" + f.hub.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "meridian_hub_sync_snapshots_total{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			total += v
		}
	}
	return total
}

// TestCordonAndTaints: a cordoned cluster or one with a NoSchedule taint
// gets no new workloads but keeps its own; NoExecute removes them. Config
// still goes everywhere.
func TestCordonAndTaints(t *testing.T) {
	f := startHub(t, nil)
	a := f.join(f.memberConfig("dc-a1", "region-a", "dc-a1", 0))
	b := f.join(f.memberConfig("dc-b1", "region-b", "dc-b1", 1))
	f.apply(nsYAML + "---\n" + deployYAML("old", 1, "app:1"))
	eventually(t, "both run old", func() (bool, string) {
		_, e1 := memberGet(a, "deploy", "demo", "old")
		_, e2 := memberGet(b, "deploy", "demo", "old")
		return e1 == nil && e2 == nil, fmt.Sprint(e1, e2)
	})
	setSpec := func(mut func(*meridianv1.ClusterSpec)) {
		cl := f.cluster("dc-b1")
		mut(cl.Spec)
		// Unconditional: the hub writes the status (heartbeats) meanwhile.
		cl.Status, cl.Metadata.ResourceVersion = nil, ""
		if _, err := f.admin.Apply(ctx(t), &meridianv1.ApplyRequest{Object: &meridianv1.Object{Kind: &meridianv1.Object_Cluster{Cluster: cl}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		mut  func(*meridianv1.ClusterSpec)
	}{
		{"cordon", func(s *meridianv1.ClusterSpec) { s.Unschedulable = true }},
		{"NoSchedule", func(s *meridianv1.ClusterSpec) {
			s.Unschedulable = false
			s.Taints = []*meridianv1.Taint{{Key: "maintenance", Value: "true", Effect: "NoSchedule"}}
		}},
	} {
		setSpec(c.mut)
		name := "new-" + strings.ToLower(c.name)
		f.apply(deployYAML(name, 1, "app:1") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg-" + strings.ToLower(c.name) + ", namespace: demo}\n")
		eventually(t, c.name+": dc-a1 gets the new workload and both get the config", func() (bool, string) {
			_, e1 := memberGet(a, "deploy", "demo", name)
			_, e2 := memberGet(b, "configmap", "demo", "cfg-"+strings.ToLower(c.name))
			return e1 == nil && e2 == nil, fmt.Sprint(e1, e2)
		})
		if _, err := memberGet(b, "deploy", "demo", name); err == nil {
			t.Errorf("%s: dc-b1 got a new workload", c.name)
		}
		if _, err := memberGet(b, "deploy", "demo", "old"); err != nil {
			t.Errorf("%s: dc-b1 lost the workload it already ran: %v", c.name, err)
		}
	}
	setSpec(func(s *meridianv1.ClusterSpec) {
		s.Taints = []*meridianv1.Taint{{Key: "evacuate", Value: "true", Effect: "NoExecute"}}
	})
	eventually(t, "NoExecute removes dc-b1's workloads", func() (bool, string) {
		_, err := memberGet(b, "deploy", "demo", "old")
		return err != nil, "still there"
	})
	if _, err := memberGet(b, "configmap", "demo", "cfg-cordon"); err != nil {
		t.Errorf("NoExecute removed config too: %v", err)
	}
}

// TestJoinRefusals: tokens that must not work do not, with the gRPC code
// a caller can act on, and a taken name is refused.
func TestJoinRefusals(t *testing.T) {
	f := startHub(t, nil)
	cfg := f.memberConfig("dc-a1", "region-a", "dc-a1", 0)
	_, pin := f.token("dc-a1")
	for _, c := range []struct {
		token string
		want  codes.Code
	}{
		{"abcdef.0123456789abcdef0123456789abcdef", codes.Unauthenticated},
		{"not-a-token", codes.Unauthenticated},
	} {
		cfg.JoinToken, cfg.HubCAPin = c.token, pin
		_, err := member.Start(ctx(t), cfg, testLog())
		if status.Code(errors.Unwrap(err)) != c.want && !strings.Contains(err.Error(), c.want.String()) && status.Code(err) != c.want {
			t.Errorf("token %q: %v, want %s", c.token, err, c.want)
		}
	}
	other, _ := f.token("dc-b1")
	cfg.JoinToken = other
	if _, err := member.Start(ctx(t), cfg, testLog()); err == nil || status.Code(err) != codes.PermissionDenied {
		t.Errorf("token bound to another cluster: %v", err)
	}
	f.join(cfg)
	again := f.memberConfig("dc-a1", "region-a", "dc-a1", 1)
	again.JoinToken, again.HubCAPin = f.token("dc-a1")
	if _, err := member.Start(ctx(t), again, testLog()); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second member with a taken name: %v", err)
	}
}
