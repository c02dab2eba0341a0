package hubsync_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	kres "k8s.io/apimachinery/pkg/api/resource"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/hubsync"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestJoin(t *testing.T) {
	e := newEnv(t)
	c, err := hubsync.New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctxT(t)); err != nil {
		t.Fatalf("Join: %v", err)
	}
	key, err := os.Stat(filepath.Join(e.dir, hubsync.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if key.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", hubsync.KeyFile, key.Mode().Perm())
	}
	caPEM, err := os.ReadFile(filepath.Join(e.dir, hubsync.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(caPEM) != string(e.hub.ca.CertPEM()) {
		t.Errorf("%s is not the hub's CA", hubsync.CAFile)
	}
	certPEM, err := os.ReadFile(filepath.Join(e.dir, hubsync.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(filepath.Join(e.dir, hubsync.KeyFile))
	kp, err := pki.LoadKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("the stored certificate and key do not load: %v", err)
	}
	id, err := pki.IdentityFromCert(kp.Cert)
	if err != nil || id.Name != cluster || id.Role != pki.RoleMember || id.Region != "region-a" {
		t.Errorf("stored identity = %v, %v; want member/%s in region-a", id, err, cluster)
	}

	// Joined: Join again does nothing, and a token is no longer needed.
	if err := c.Join(ctxT(t)); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	cfg := e.config()
	cfg.JoinToken, cfg.CAPin = "", ""
	c2, err := hubsync.New(cfg)
	if err != nil {
		t.Fatalf("New without a token once joined: %v", err)
	}
	if err := c2.Join(ctxT(t)); err != nil {
		t.Fatalf("Join once joined: %v", err)
	}
	if n := e.hub.joins.Load(); n != 1 {
		t.Errorf("the hub saw %d joins, want 1", n)
	}
	after, _ := os.ReadFile(filepath.Join(e.dir, hubsync.CertFile))
	if string(after) != string(certPEM) {
		t.Error("a Join once joined replaced the certificate")
	}

	// A stored certificate for another name is an error, not a silent
	// join under the old name.
	cfg.Cluster = "dc-b1"
	c3, err := hubsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Join(ctxT(t)); err == nil || !strings.HasPrefix(err.Error(), "name:") {
		t.Errorf("Join with a certificate for another name: %v, want a name: error", err)
	}
}

func TestJoinRefused(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.JoinToken = "abcdef.wrongwrongwrong"
	c, err := hubsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Join(ctxT(t))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Join with a bad token: code %v (%v), want Unauthenticated", status.Code(err), err)
	}
	want := "join hub " + e.hub.addr + " as " + cluster + ": "
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "token expired") {
		t.Errorf("error %q, want it to start with %q and say why", err, want)
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) != 0 {
		t.Errorf("a refused join left files: %v", entries)
	}

	// A hub whose CA is not the pinned one never sees the token.
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg = e.config()
	cfg.CAPin = other.Pin()
	c, err = hubsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	joins := e.hub.joins.Load()
	err = c.Join(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "pin") {
		t.Fatalf("Join to a hub with another CA: %v, want a pin mismatch", err)
	}
	if e.hub.joins.Load() != joins {
		t.Error("the token was sent to a hub whose CA is not the pinned one")
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) != 0 {
		t.Errorf("a refused join left files: %v", entries)
	}
}

func TestJoinWithCAFile(t *testing.T) {
	e := newEnv(t)
	caFile := filepath.Join(t.TempDir(), "hub-ca.pem")
	if err := os.WriteFile(caFile, e.hub.ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.CAPin, cfg.CAFile = "", caFile
	c, err := hubsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctxT(t)); err != nil {
		t.Fatalf("Join with hub-ca-file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, hubsync.CertFile)); err != nil {
		t.Fatal(err)
	}
}

func TestNewValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		mutate func(*hubsync.Config)
		want   string
	}{
		{"no hub", func(c *hubsync.Config) { c.Hub = "" }, "hub: "},
		{"hub without port", func(c *hubsync.Config) { c.Hub = "hub.example" }, "hub: "},
		{"second hub without port", func(c *hubsync.Config) { c.Hub = "127.0.0.1:7700,hub.example" }, "hub: "},
		{"no name", func(c *hubsync.Config) { c.Cluster = "" }, "name: "},
		{"bad name", func(c *hubsync.Config) { c.Cluster = "DC_A1" }, "name: "},
		{"no state dir", func(c *hubsync.Config) { c.StateDir = "" }, "state-dir: "},
		{"no store", func(c *hubsync.Config) { c.Store = nil }, "store: "},
		{"token without pin", func(c *hubsync.Config) { c.CAPin = "" }, "hub-ca-pin: "},
		{"malformed pin", func(c *hubsync.Config) { c.CAPin = "sha256:abc" }, "hub-ca-pin: "},
		{"missing ca file", func(c *hubsync.Config) { c.CAFile = filepath.Join(t.TempDir(), "nope.pem") }, "hub-ca-file: "},
		{"neither token nor certificate", func(c *hubsync.Config) { c.JoinToken = "" }, "join-token: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config()
			tc.mutate(&cfg)
			_, err := hubsync.New(cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error starting with %q", err, tc.want)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	e := newEnv(t)
	// What the member holds before: its own objects, and hub-managed ones
	// whose works are gone.
	localCM := mustApply(t, e.st, configMap("default", "local", false, map[string]string{"a": "1"}))
	mine := mustApply(t, e.st, deployment("default", "mine", false, 1))
	mustApply(t, e.st, configMap("default", "stale", true, nil))
	mustApply(t, e.st, namespace("old", true))
	mustApply(t, e.st, configMap("old", "x", true, nil))
	mustApply(t, e.st, namespace("keep", true))
	mustApply(t, e.st, configMap("keep", "operator", false, nil))

	_, s, _ := e.start(t, e.config())
	if s.hello.GetRevision() != 0 || s.hello.GetHubId() != "" || s.hello.GetCluster() != cluster {
		t.Fatalf("first hello = %v, want cluster %s, no hub and revision 0", s.hello, cluster)
	}
	// Out of apply order, in two chunks.
	s.sendSnapshot(t, 10, 2,
		work(deployment("demo", "web", false, 2), 3),
		work(configMap("demo", "config", false, map[string]string{"k": "v"}), 2),
		work(deployment("default", "mine", false, 5), 1),
		work(namespace("demo", false), 1),
	)
	s.waitAck(t, 10)

	ns := get(t, e.st, kNamespace, "", "demo")
	cm := get(t, e.st, kConfigMap, "demo", "config")
	web := get(t, e.st, kDeployment, "demo", "web")
	for _, o := range []resource.Object{ns, cm, web} {
		md := o.GetMetadata()
		if !federation.IsManagedByHub(o) || md.GetAnnotations()[federation.AnnotationWork] != workName(o) {
			t.Errorf("%s: labels %v annotations %v, want managed by the hub with its work", workName(o), md.GetLabels(), md.GetAnnotations())
		}
	}
	if g := web.GetMetadata().GetAnnotations()[federation.AnnotationWorkGeneration]; g != "3" {
		t.Errorf("work generation annotation %q, want 3", g)
	}
	rv := func(o resource.Object) int64 {
		n, _ := strconv.ParseInt(o.GetMetadata().GetResourceVersion(), 10, 64)
		return n
	}
	if !(rv(ns) < rv(cm) && rv(cm) < rv(web)) {
		t.Errorf("applied out of order: namespace rv %d, configmap rv %d, deployment rv %d", rv(ns), rv(cm), rv(web))
	}
	// Local objects are left alone, even where a work names them.
	if got := get(t, e.st, kDeployment, "default", "mine"); !proto.Equal(got, mine) {
		t.Errorf("the local deployment changed:\n%v\nwas\n%v", got, mine)
	}
	if got := get(t, e.st, kConfigMap, "default", "local"); !proto.Equal(got, localCM) {
		t.Error("the local configmap changed")
	}
	// Stale hub-managed objects are gone; a namespace with local objects stays.
	if !absent(t, e.st, kConfigMap, "default", "stale") {
		t.Error("a stale hub-managed configmap was not deleted")
	}
	if !absent(t, e.st, kNamespace, "", "old") || !absent(t, e.st, kConfigMap, "old", "x") {
		t.Error("a stale hub-managed namespace was not deleted")
	}
	if absent(t, e.st, kNamespace, "", "keep") || absent(t, e.st, kConfigMap, "keep", "operator") {
		t.Error("a hub-managed namespace holding a local object was deleted")
	}

	// Persisted, then acknowledged.
	data, err := os.ReadFile(filepath.Join(e.dir, hubsync.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		HubID    string `json:"hub_id"`
		Revision int64  `json:"revision"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.HubID != hubID || st.Revision != 10 {
		t.Errorf("%s = %s (%v), want hub %s at 10", hubsync.StateFile, data, err, hubID)
	}

	// The work over the local object is reported as not applied.
	s.waitReport(t, 0, "deployment.default.mine", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		c := w.GetStatus().GetConditions()
		return len(c) == 1 && c[0].GetType() == "Applied" && c[0].GetStatus() == "False" && c[0].GetReason() == hubsync.ReasonConflict &&
			strings.Contains(c[0].GetMessage(), "not the hub's") && !w.GetStatus().GetWorkload().GetApplied()
	})
	s.waitReport(t, 0, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		c := w.GetStatus().GetConditions()
		return len(c) == 1 && c[0].GetStatus() == "True" && c[0].GetObservedGeneration() == 3 &&
			w.GetStatus().GetWorkload().GetApplied() && w.GetStatus().GetWorkload().GetReplicas() == 2
	})
}

func TestChanges(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e.st, configMap("default", "local", false, nil))
	c, s, _ := e.start(t, e.config())
	web := deployment("demo", "web", false, 2)
	s.sendSnapshot(t, 10, 500,
		work(namespace("demo", false), 1),
		work(configMap("demo", "config", false, nil), 1),
		work(web, 1),
	)
	s.waitAck(t, 10)
	webBefore := get(t, e.st, kDeployment, "demo", "web")

	web.Spec.Replicas = proto.Int32(3)
	s.sendChanges(t, 11,
		change(work(configMap("demo", "extra", false, map[string]string{"x": "y"}), 1), false),
		change(work(web, 2), false),
		change(work(configMap("demo", "config", false, nil), 1), true),
		change(work(configMap("demo", "never-there", false, nil), 1), true), // NotFound is fine
		change(work(configMap("default", "local", false, nil), 1), true),    // not the hub's: kept
		change(work(configMap("auto", "cfg", false, nil), 1), false),        // its namespace is created
	)
	s.waitAck(t, 11)
	if got := c.State(); !got.Connected || got.HubID != hubID || got.Revision != 11 {
		t.Errorf("State() = %+v, want connected to %s at 11", got, hubID)
	}
	get(t, e.st, kConfigMap, "demo", "extra")
	if !absent(t, e.st, kConfigMap, "demo", "config") {
		t.Error("a deleted work's configmap is still there")
	}
	if absent(t, e.st, kConfigMap, "default", "local") {
		t.Error("the deletion of a work deleted a local object")
	}
	w := get(t, e.st, kDeployment, "demo", "web").(*meridianv1.Deployment)
	if w.GetSpec().GetReplicas() != 3 || w.GetMetadata().GetGeneration() != webBefore.GetMetadata().GetGeneration()+1 ||
		w.GetMetadata().GetAnnotations()[federation.AnnotationWorkGeneration] != "2" {
		t.Errorf("deployment after the change: replicas %d generation %d annotations %v", w.GetSpec().GetReplicas(), w.GetMetadata().GetGeneration(), w.GetMetadata().GetAnnotations())
	}
	auto := get(t, e.st, kNamespace, "", "auto")
	if !federation.IsManagedByHub(auto) {
		t.Errorf("the namespace created for a work is not hub-managed: %v", auto.GetMetadata().GetLabels())
	}
	get(t, e.st, kConfigMap, "auto", "cfg")

	// A snapshot that still has objects in the created namespace keeps it;
	// one without them deletes it.
	s.sendSnapshot(t, 12, 500, work(namespace("demo", false), 1), work(configMap("auto", "cfg", false, nil), 1))
	s.waitAck(t, 12)
	if absent(t, e.st, kNamespace, "", "auto") {
		t.Error("a snapshot deleted a namespace its works need")
	}
	if !absent(t, e.st, kDeployment, "demo", "web") || !absent(t, e.st, kConfigMap, "demo", "extra") {
		t.Error("a snapshot kept objects it does not list")
	}
	s.sendSnapshot(t, 13, 500, work(namespace("demo", false), 1))
	s.waitAck(t, 13)
	if !absent(t, e.st, kNamespace, "", "auto") || !absent(t, e.st, kConfigMap, "auto", "cfg") {
		t.Error("a snapshot kept a created namespace no work needs")
	}
}

func TestRestartResumesFromPersistedRevision(t *testing.T) {
	e := newEnv(t)
	_, s, stop := e.start(t, e.config())
	s.sendSnapshot(t, 10, 500, work(namespace("demo", false), 1), work(configMap("demo", "a", false, nil), 1))
	s.waitAck(t, 10)
	stop()

	// A new client (the member restarted) says where it was.
	cfg := e.config()
	cfg.JoinToken, cfg.CAPin = "", ""
	c, s2, _ := e.start(t, cfg)
	if s2.hello.GetHubId() != hubID || s2.hello.GetRevision() != 10 {
		t.Fatalf("hello after a restart = %v, want hub %s at revision 10", s2.hello, hubID)
	}
	if st := c.State(); st.Revision != 10 || st.HubID != hubID {
		t.Errorf("State() after a restart = %+v", st)
	}
	s2.sendChanges(t, 11, change(work(configMap("demo", "b", false, nil), 1), false))
	s2.waitAck(t, 11)
	get(t, e.st, kConfigMap, "demo", "b")
	if e.hub.joins.Load() != 1 {
		t.Errorf("the hub saw %d joins, want 1", e.hub.joins.Load())
	}
}

func TestReconnect(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	cfg := e.config()
	cfg.Registry = reg
	c, s, _ := e.start(t, cfg)
	s.sendSnapshot(t, 5, 500, work(namespace("demo", false), 1), work(deployment("demo", "web", false, 1), 1))
	s.waitAck(t, 5)
	s.waitReport(t, 0, "deployment.demo.web", func(*meridianv1.StatusReport, *meridianv1.WorkStatusReport) bool { return true })

	// The hub drops the stream; the member comes back where it was.
	s.end <- status.Error(codes.Unavailable, "hub restarting")
	s2 := e.hub.nextStream(t)
	if s2.hello.GetHubId() != hubID || s2.hello.GetRevision() != 5 {
		t.Fatalf("hello after a reconnect = %v, want hub %s at revision 5", s2.hello, hubID)
	}
	// A full report again, with every work.
	s2.waitReport(t, 0, "deployment.demo.web", func(r *meridianv1.StatusReport, _ *meridianv1.WorkStatusReport) bool {
		return r.GetFull() && len(r.GetWorks()) == 2
	})
	s2.waitHeartbeat(t, func(*meridianv1.Heartbeat) bool { return true })
	s2.sendChanges(t, 6, change(work(configMap("demo", "after", false, nil), 1), false))
	s2.waitAck(t, 6)
	get(t, e.st, kConfigMap, "demo", "after")
	if st := c.State(); !st.Connected || st.Revision != 6 {
		t.Errorf("State() = %+v, want connected at 6", st)
	}

	values := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				values[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				values[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
	}
	if values["meridian_member_sync_reconnects_total"] < 1 || values["meridian_member_sync_connected"] != 1 ||
		values["meridian_member_sync_revision"] != 6 || values["meridian_member_sync_applied_total"] < 3 {
		t.Errorf("metrics = %v", values)
	}
}

func TestReapplyIsNoOp(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	works := []*meridianv1.Work{
		work(namespace("demo", false), 1),
		work(configMap("demo", "config", false, map[string]string{"k": "v"}), 1),
		work(deployment("demo", "web", false, 2), 4),
		work(service("demo", "web"), 1),
	}
	_, s, _ := e.start(t, e.config())
	s.sendSnapshot(t, 5, 500, works...)
	s.waitAck(t, 5)

	// What the member's controllers write: a deployment's revision
	// annotation, a service's clusterIP.
	if _, err := e.st.Update(ctx, kDeployment, "demo", "web", func(o resource.Object) error {
		resource.Meta(o).Annotations["deployment.kubernetes.io/revision"] = "1"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Update(ctx, kService, "demo", "web", func(o resource.Object) error {
		svc := o.(*meridianv1.Service)
		svc.Spec.ClusterIp, svc.Spec.ClusterIps = "10.96.0.10", []string{"10.96.0.10"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := map[string]resource.Object{}
	for _, w := range works {
		obj, _, _ := federation.MemberObject(proto.Clone(w).(*meridianv1.Work))
		key, _ := resource.KeyOf(obj)
		before[w.GetMetadata().GetName()] = get(t, e.st, key.Kind, key.Namespace, key.Name)
	}
	rev, err := e.st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}

	s.sendSnapshot(t, 6, 500, works...)
	s.waitAck(t, 6)
	s.sendChanges(t, 7, change(works[2], false), change(works[3], false))
	s.waitAck(t, 7)
	for name, old := range before {
		key, _ := resource.KeyOf(old)
		now := get(t, e.st, key.Kind, key.Namespace, key.Name)
		if now.GetMetadata().GetResourceVersion() != old.GetMetadata().GetResourceVersion() ||
			now.GetMetadata().GetGeneration() != old.GetMetadata().GetGeneration() {
			t.Errorf("%s: re-applying changed resourceVersion %s→%s, generation %d→%d", name,
				old.GetMetadata().GetResourceVersion(), now.GetMetadata().GetResourceVersion(),
				old.GetMetadata().GetGeneration(), now.GetMetadata().GetGeneration())
		}
	}
	if now, _ := e.st.Revision(ctx); now != rev {
		t.Errorf("re-applying wrote to the store: revision %d → %d", rev, now)
	}
}

func TestStatusReport(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	s, _ := e.startWithDeployments(t, e.config())

	// The member's controllers report progress.
	if _, err := e.st.Update(ctx, kDeployment, "demo", "web", func(o resource.Object) error {
		o.(*meridianv1.Deployment).Status = &meridianv1.DeploymentStatus{
			ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 1,
			Conditions: []*meridianv1.Condition{{Type: "Available", Status: "False", Reason: "MinimumReplicasUnavailable"}},
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	i := s.waitReport(t, 0, "deployment.demo.web", func(r *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetReadyReplicas() == 2
	})
	r := s.reportsCopy()[i]
	if r.GetFull() {
		t.Error("a change was reported as a full report")
	}
	var got *meridianv1.WorkStatusReport
	for _, w := range r.GetWorks() {
		if w.GetWork() == "deployment.demo.web" {
			got = w
		}
	}
	want := &meridianv1.WorkStatusReport{Work: "deployment.demo.web", Status: &meridianv1.WorkStatus{
		Conditions: []*meridianv1.Condition{{Type: "Applied", Status: "True", Reason: "Applied", ObservedGeneration: 7}},
		Workload: &meridianv1.ClusterWorkloadStatus{
			Cluster: cluster, Replicas: 2, Current: 2, ReadyReplicas: 2, AvailableReplicas: 1, UpdatedReplicas: 2,
			Applied: true, ObservedGeneration: 7,
			Conditions: []*meridianv1.Condition{{Type: "Available", Status: "False", Reason: "MinimumReplicasUnavailable"}},
		},
	}}
	if !proto.Equal(got, want) {
		t.Errorf("report:\n%v\nwant\n%v", got, want)
	}

	// A change that does not change the summary is not reported: web's
	// label change comes before api's status change, so it would be in a
	// report up to the one of api.
	if _, err := e.st.Update(ctx, kDeployment, "demo", "web", func(o resource.Object) error {
		resource.Meta(o).Labels["team"] = "blue"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Update(ctx, kDeployment, "demo", "api", func(o resource.Object) error {
		o.(*meridianv1.Deployment).Status = &meridianv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	j := s.waitReport(t, i+1, "deployment.demo.api", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetReadyReplicas() == 1
	})
	s.notReported(t, i+1, j, "deployment.demo.web", "an unchanged status was reported again")
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	node := func(name, ready string, capacity, allocatable map[string]string) *meridianv1.Node {
		return &meridianv1.Node{ApiVersion: "v1", Kind: "Node", Metadata: &meridianv1.ObjectMeta{Name: name},
			Status: &meridianv1.NodeStatus{Capacity: capacity, Allocatable: allocatable,
				Conditions: []*meridianv1.Condition{{Type: "Ready", Status: ready}}}}
	}
	pod := func(name, nodeName, phase string, init map[string]string, requests ...map[string]string) *meridianv1.Pod {
		p := &meridianv1.Pod{ApiVersion: "v1", Kind: "Pod", Metadata: &meridianv1.ObjectMeta{Namespace: "default", Name: name},
			Spec: &meridianv1.PodSpec{NodeName: nodeName}, Status: &meridianv1.PodStatus{Phase: phase}}
		for i, r := range requests {
			p.Spec.Containers = append(p.Spec.Containers, &meridianv1.Container{Name: "c" + strconv.Itoa(i), Image: "x", Resources: &meridianv1.ResourceRequirements{Requests: r}})
		}
		if init != nil {
			p.Spec.InitContainers = []*meridianv1.Container{{Name: "init", Image: "x", Resources: &meridianv1.ResourceRequirements{Requests: init}}}
		}
		return p
	}
	// Nodes and pods are written with Update where they carry status, as
	// the member's agents do (Apply keeps the stored status).
	put := func(o resource.Object) {
		t.Helper()
		want := proto.Clone(o).(resource.Object)
		mustApply(t, e.st, o)
		key, _ := resource.KeyOf(o)
		if _, err := e.st.Update(ctx, key.Kind, key.Namespace, key.Name, func(cur resource.Object) error {
			resource.CopyStatus(cur, want)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(node("n1", "True", map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"}, map[string]string{"cpu": "3800m", "memory": "7Gi", "pods": "110"}))
	put(node("n2", "False", map[string]string{"cpu": "2", "memory": "4Gi", "pods": "110"}, map[string]string{"cpu": "2", "memory": "4Gi", "pods": "110"}))
	put(pod("running", "n1", "Running", nil, map[string]string{"cpu": "500m", "memory": "1Gi"}, map[string]string{"cpu": "250m"}))
	put(pod("pending", "n2", "Pending", map[string]string{"cpu": "1"}, map[string]string{"cpu": "200m", "memory": "512Mi"}))
	put(pod("done", "n1", "Succeeded", nil, map[string]string{"cpu": "1"}))
	put(pod("unbound", "", "Pending", nil, map[string]string{"cpu": "1"}))

	// With the member's informer set, as member.Start will pass it.
	inf := controller.NewInformerSet(e.st, e.log)
	cfg := e.config()
	cfg.Informers = inf
	cfg.HeartbeatInterval = 20 * time.Millisecond
	c, err := hubsync.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { inf.Run(runCtx); done <- struct{}{} }()
	go func() { c.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	s := e.hub.nextStream(t)

	eq := func(m map[string]string, name, want string) bool {
		v, err := kres.ParseQuantity(m[name])
		return err == nil && v.Cmp(kres.MustParse(want)) == 0
	}
	matches := func(hb *meridianv1.Heartbeat, cpuAvail, podsAvail string) bool {
		return hb.GetNodeCount() == 2 && hb.GetReadyNodeCount() == 1 &&
			eq(hb.GetCapacity(), "cpu", "6") && eq(hb.GetCapacity(), "memory", "12Gi") && eq(hb.GetCapacity(), "pods", "220") &&
			eq(hb.GetAllocatable(), "cpu", "5800m") && eq(hb.GetAllocatable(), "memory", "11Gi") && eq(hb.GetAllocatable(), "pods", "220") &&
			// running: 750m, 1Gi; pending: max(init 1, 200m) = 1 cpu, 512Mi.
			eq(hb.GetAvailable(), "cpu", cpuAvail) && eq(hb.GetAvailable(), "memory", "9728Mi") && eq(hb.GetAvailable(), "pods", podsAvail) &&
			hb.GetTime() != nil
	}
	s.waitHeartbeat(t, func(hb *meridianv1.Heartbeat) bool { return matches(hb, "4050m", "218") })

	// A new pod shows in a later heartbeat.
	put(pod("more", "n1", "Running", nil, map[string]string{"cpu": "50m"}))
	s.waitHeartbeat(t, func(hb *meridianv1.Heartbeat) bool { return matches(hb, "4000m", "217") })
}

func TestRunWithoutCertificateRetries(t *testing.T) {
	// Run before Join: it retries (and says why) instead of giving up, and
	// connects once the member has joined.
	e := newEnv(t)
	c, err := hubsync.New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, "an error in State", func() bool {
		return strings.Contains(c.State().LastError, "member certificate")
	})
	if err := c.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s := e.hub.nextStream(t)
	if s.hello.GetCluster() != cluster {
		t.Errorf("hello = %v", s.hello)
	}
	eventually(t, "connected", func() bool { return c.State().Connected && c.State().LastError == "" })
}

// TestSeveralHubAddresses: with every node of a multi-node hub listed, a
// member joins through the one that answers, and when its stream ends it
// moves on (here past a dead node) and resumes where it was.
func TestSeveralHubAddresses(t *testing.T) {
	e := newEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close() // nothing listens there now: connections are refused
	cfg := e.config()
	cfg.Hub = dead + ", " + e.hub.addr
	_, s, _ := e.start(t, cfg)
	s.sendSnapshot(t, 3, 500, work(namespace("demo", false), 1))
	s.waitAck(t, 3)

	s.end <- status.Error(codes.Unavailable, "hub node stopping")
	s2 := e.hub.nextStream(t)
	if s2.hello.GetRevision() != 3 {
		t.Fatalf("hello after moving past the dead node = %v, want revision 3", s2.hello)
	}
	s2.sendChanges(t, 4, change(work(configMap("demo", "after", false, nil), 1), false))
	s2.waitAck(t, 4)
	get(t, e.st, kConfigMap, "demo", "after")
}
