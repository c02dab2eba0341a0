package hubsync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/hubsync"
	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The test hub: a real gRPC server over loopback TLS with the federation's
// CA, serving FederationService. Join signs the CSR of a request with the
// known token; Sync checks the member certificate against the hello, then
// hands the stream to the test, which scripts what the hub sends and reads
// what the member sent.

const (
	cluster   = "dc-a1"
	goodToken = "abcdef.0123456789abcdef"
	hubID     = "hub-1"
	waitFor   = 15 * time.Second
)

type testHub struct {
	meridianv1.UnimplementedFederationServiceServer
	ca      *pki.CA
	addr    string
	joins   atomic.Int32
	streams chan *hubStream
}

func newTestHub(t *testing.T) *testHub {
	t.Helper()
	ca, err := pki.NewCA("meridian test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ServerTLSClientCertOptional(ca.Pool(), cert)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &testHub{ca: ca, addr: lis.Addr().String(), streams: make(chan *hubStream, 16)}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	meridianv1.RegisterFederationServiceServer(srv, h)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return h
}

func (h *testHub) Join(ctx context.Context, req *meridianv1.JoinRequest) (*meridianv1.JoinResponse, error) {
	h.joins.Add(1)
	if req.GetToken() != goodToken {
		return nil, status.Error(codes.Unauthenticated, "join token abcdef.<redacted>: token expired")
	}
	id := pki.Identity{Name: req.GetName(), Role: pki.RoleMember, Region: req.GetRegion(), Datacenter: req.GetDatacenter()}
	certPEM, err := h.ca.Sign(req.GetCsr(), id, time.Hour)
	if err != nil {
		return nil, pki.StatusError(err)
	}
	return &meridianv1.JoinResponse{Certificate: certPEM, Ca: h.ca.CertPEM(), HubId: hubID}, nil
}

// hubStream is one member stream as the test sees it.
type hubStream struct {
	hello *meridianv1.SyncHello
	out   chan *meridianv1.SyncResponse
	end   chan error
	done  chan struct{}

	mu         sync.Mutex
	acks       []int64
	reports    []*meridianv1.StatusReport
	heartbeats []*meridianv1.Heartbeat
	renewals   []renewal
}

// renewal is a lease renewal the hub received, and when.
type renewal struct {
	seq    int64
	at     time.Time
	fenced map[string]int64
}

func (h *testHub) Sync(stream grpc.BidiStreamingServer[meridianv1.SyncRequest, meridianv1.SyncResponse]) error {
	ctx := stream.Context()
	p, _ := peer.FromContext(ctx)
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return status.Error(codes.Unauthenticated, "no member certificate")
	}
	id, err := pki.IdentityFromCert(info.State.PeerCertificates[0])
	if err != nil || id.Role != pki.RoleMember {
		return status.Error(codes.PermissionDenied, "not a member certificate")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "hello: required first")
	}
	if hello.GetCluster() != id.Name {
		return status.Errorf(codes.PermissionDenied, "cluster %q is not the certificate's %q", hello.GetCluster(), id.Name)
	}
	s := &hubStream{hello: hello, out: make(chan *meridianv1.SyncResponse), end: make(chan error, 1), done: make(chan struct{})}
	defer close(s.done)
	select {
	case h.streams <- s:
	case <-ctx.Done():
		return ctx.Err()
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			s.record(m)
		}
	}()
	for {
		select {
		case m := <-s.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case err := <-s.end:
			return err
		case err := <-recvErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *hubStream) record(m *meridianv1.SyncRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m := m.GetMessage().(type) {
	case *meridianv1.SyncRequest_Ack:
		s.acks = append(s.acks, m.Ack.GetRevision())
	case *meridianv1.SyncRequest_Status:
		s.reports = append(s.reports, m.Status)
	case *meridianv1.SyncRequest_Heartbeat:
		s.heartbeats = append(s.heartbeats, m.Heartbeat)
	case *meridianv1.SyncRequest_LeaseRenewal:
		s.renewals = append(s.renewals, renewal{seq: m.LeaseRenewal.GetSeq(), at: time.Now(), fenced: m.LeaseRenewal.GetFenced()})
	}
}

// nextStream waits for the member's next stream.
func (h *testHub) nextStream(t *testing.T) *hubStream {
	t.Helper()
	select {
	case s := <-h.streams:
		return s
	case <-time.After(waitFor):
		t.Fatal("no sync stream from the member")
		return nil
	}
}

func (s *hubStream) send(t *testing.T, m *meridianv1.SyncResponse) {
	t.Helper()
	select {
	case s.out <- m:
	case <-s.done:
		t.Fatal("the stream ended before the hub could send")
	case <-time.After(waitFor):
		t.Fatal("the hub could not send")
	}
}

// sendSnapshot sends works as a snapshot at rev, in chunks of chunk.
func (s *hubStream) sendSnapshot(t *testing.T, rev int64, chunk int, works ...*meridianv1.Work) {
	t.Helper()
	for i := 0; ; i += chunk {
		j := min(i+chunk, len(works))
		s.send(t, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_Snapshot{Snapshot: &meridianv1.SyncSnapshot{
			HubId: hubID, Revision: rev, Works: works[i:j], Last: j == len(works),
		}}})
		if j == len(works) {
			return
		}
	}
}

func (s *hubStream) sendChanges(t *testing.T, rev int64, changes ...*meridianv1.WorkChange) {
	t.Helper()
	s.send(t, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_Changes{Changes: &meridianv1.SyncChanges{Revision: rev, Changes: changes}}})
}

// waitAck waits for the member's ack of rev.
func (s *hubStream) waitAck(t *testing.T, rev int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("ack of revision %d", rev), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.acks {
			if a == rev {
				return true
			}
		}
		return false
	})
}

// waitReport waits for a status report (from index from on) that has a
// report of work satisfying ok, and returns the report's index.
func (s *hubStream) waitReport(t *testing.T, from int, work string, ok func(r *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool) int {
	t.Helper()
	found := -1
	eventually(t, "a status report of "+work, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := from; i < len(s.reports); i++ {
			for _, w := range s.reports[i].GetWorks() {
				if w.GetWork() == work && ok(s.reports[i], w) {
					found = i
					return true
				}
			}
		}
		return false
	})
	return found
}

// startWithDeployments starts a client of cfg, sends it a snapshot of
// namespace demo and Deployments web (work generation 7) and api, and
// waits until web's status is reported. It returns the stream and the
// index of that report.
func (e *env) startWithDeployments(t *testing.T, cfg hubsync.Config) (*hubStream, int) {
	t.Helper()
	_, s, _ := e.start(t, cfg)
	s.sendSnapshot(t, 5, 500,
		work(namespace("demo", false), 1),
		work(deployment("demo", "web", false, 2), 7),
		work(deployment("demo", "api", false, 1), 1),
	)
	s.waitAck(t, 5)
	i := s.waitReport(t, 0, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetObservedGeneration() == 7
	})
	return s, i
}

// setStatus writes st as the status of Deployment demo/name.
func (e *env) setStatus(t *testing.T, name string, st *meridianv1.DeploymentStatus) {
	t.Helper()
	if _, err := e.st.Update(ctxT(t), kDeployment, "demo", name, func(o resource.Object) error {
		o.(*meridianv1.Deployment).Status = st
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// notReported fails the test if the reports from index from to index to
// (both included) name work.
func (s *hubStream) notReported(t *testing.T, from, to int, work, why string) {
	t.Helper()
	for _, r := range s.reportsCopy()[from : to+1] {
		for _, w := range r.GetWorks() {
			if w.GetWork() == work {
				t.Errorf("%s: %v", why, w)
			}
		}
	}
}

func (s *hubStream) reportsCopy() []*meridianv1.StatusReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*meridianv1.StatusReport(nil), s.reports...)
}

// waitHeartbeat waits for a heartbeat satisfying ok.
func (s *hubStream) waitHeartbeat(t *testing.T, ok func(*meridianv1.Heartbeat) bool) *meridianv1.Heartbeat {
	t.Helper()
	var got *meridianv1.Heartbeat
	eventually(t, "a heartbeat", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, hb := range s.heartbeats {
			if ok(hb) {
				got = hb
				return true
			}
		}
		return false
	})
	return got
}

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// env is a member: a real bbolt store, a state directory and a logger
// whose output is shown when the test fails.
type env struct {
	hub *testHub
	dir string
	st  *store.Store
	log *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{hub: newTestHub(t), dir: filepath.Join(t.TempDir(), "hub")}
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	var buf lockedBuffer
	e.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("member log:\n%s", buf.String())
		}
	})
	// The namespace every member has, not the hub's.
	mustApply(t, e.st, namespace("default", false))
	return e
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (e *env) config() hubsync.Config {
	return hubsync.Config{
		Hub: e.hub.addr, Cluster: cluster, Region: "region-a", Datacenter: "dc-a1",
		APIEndpoint: "127.0.0.1:7600", Version: "test",
		JoinToken: goodToken, CAPin: e.hub.ca.Pin(),
		StateDir: e.dir, Store: e.st, Log: e.log,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		StatusInterval: 20 * time.Millisecond,
	}
}

// start makes a client of cfg, joins and runs it until the test ends (or
// stop is called), and returns its first stream.
func (e *env) start(t *testing.T, cfg hubsync.Config) (c *hubsync.Client, s *hubStream, stop func()) {
	t.Helper()
	c, err := hubsync.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Join(ctx); err != nil {
		cancel()
		t.Fatalf("Join: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return c, e.hub.nextStream(t), stop
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// Objects.

var (
	kNamespace  = resource.MustLookup("Namespace")
	kConfigMap  = resource.MustLookup("ConfigMap")
	kDeployment = resource.MustLookup("Deployment")
	kService    = resource.MustLookup("Service")
	kNode       = resource.MustLookup("Node")
	kPod        = resource.MustLookup("Pod")
)

func managedLabels(managed bool, work string) (map[string]string, map[string]string) {
	if !managed {
		return nil, nil
	}
	return map[string]string{federation.LabelManagedBy: federation.ManagedByHub},
		map[string]string{federation.AnnotationWork: work, federation.AnnotationWorkGeneration: "1"}
}

func namespace(name string, managed bool) *meridianv1.Namespace {
	l, a := managedLabels(managed, "namespace."+name)
	return &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: name, Labels: l, Annotations: a}}
}

func configMap(ns, name string, managed bool, data map[string]string) *meridianv1.ConfigMap {
	l, a := managedLabels(managed, "configmap."+ns+"."+name)
	return &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap", Metadata: &meridianv1.ObjectMeta{Namespace: ns, Name: name, Labels: l, Annotations: a}, Data: data}
}

func deployment(ns, name string, managed bool, replicas int32) *meridianv1.Deployment {
	l, a := managedLabels(managed, "deployment."+ns+"."+name)
	sel := map[string]string{"app": name}
	return &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Namespace: ns, Name: name, Labels: l, Annotations: a},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: proto.Int32(replicas),
			Selector: &meridianv1.LabelSelector{MatchLabels: sel},
			Template: &meridianv1.PodTemplateSpec{
				Metadata: &meridianv1.ObjectMeta{Labels: sel},
				Spec:     &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "app", Image: "example/" + name + ":1"}}},
			},
		},
	}
}

func service(ns, name string) *meridianv1.Service {
	return &meridianv1.Service{
		ApiVersion: "v1", Kind: "Service",
		Metadata: &meridianv1.ObjectMeta{Namespace: ns, Name: name},
		Spec:     &meridianv1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []*meridianv1.ServicePort{{Port: 80}}},
	}
}

// work is the Work of obj for the test cluster, at generation gen.
func work(obj resource.Object, gen int64) *meridianv1.Work {
	key, err := resource.KeyOf(obj)
	if err != nil {
		panic(err)
	}
	return &meridianv1.Work{
		ApiVersion: resource.MeridianAPIVersion, Kind: "Work",
		Metadata: &meridianv1.ObjectMeta{
			Name:       federation.WorkName(key.Kind, key.Namespace, key.Name),
			Namespace:  federation.ClusterNamespace(cluster),
			Generation: gen,
			Labels:     map[string]string{federation.LabelCluster: cluster},
		},
		Spec: &meridianv1.WorkSpec{Cluster: cluster, Workload: resource.MustWrap(proto.Clone(obj).(resource.Object))},
	}
}

func change(w *meridianv1.Work, deleted bool) *meridianv1.WorkChange {
	return &meridianv1.WorkChange{Work: w, Deleted: deleted}
}

func workName(obj resource.Object) string {
	key, _ := resource.KeyOf(obj)
	return federation.WorkName(key.Kind, key.Namespace, key.Name)
}

func mustApply(t *testing.T, st storage.Interface, obj resource.Object) resource.Object {
	t.Helper()
	out, _, err := st.Apply(context.Background(), obj, storage.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply %s: %v", workName(obj), err)
	}
	return out
}

func get(t *testing.T, st storage.Interface, kind *resource.Kind, ns, name string) resource.Object {
	t.Helper()
	o, err := st.Get(context.Background(), kind, ns, name)
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", kind.Plural, ns, name, err)
	}
	return o
}

func absent(t *testing.T, st storage.Interface, kind *resource.Kind, ns, name string) bool {
	t.Helper()
	_, err := st.Get(context.Background(), kind, ns, name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get %s %s/%s: %v", kind.Plural, ns, name, err)
	}
	return err != nil
}
