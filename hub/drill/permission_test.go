package drill_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestDrillNeedsAdmin: creating, aborting or deleting a Drill goes through
// the admin API, which the hub's method policy reserves to admin
// credentials: a member's credential (which every member holds) is refused
// with PermissionDenied, and so is a caller without a credential.
func TestDrillNeedsAdmin(t *testing.T) {
	h := hubtest.Start(t, hubtest.Config(t, t.TempDir()))
	kp, err := h.CA().IssueClient(pki.Identity{Name: "dc-x", Role: pki.RoleMember, Region: "r", Datacenter: "d"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	d := &meridianv1.Drill{ApiVersion: resource.MeridianAPIVersion, Kind: "Drill", Metadata: &meridianv1.ObjectMeta{Name: "sneaky"},
		Spec: &meridianv1.DrillSpec{Scope: &meridianv1.DrillScope{Datacenter: "dc-a1"}, Mode: "unplanned"}}
	for name, c := range map[string]*tlsCert{"member credential": {&cert}, "no credential": {nil}} {
		tlsCfg, err := pki.ClientTLS(h.CA().Pool(), c.cert, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(h.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cli := meridianv1.NewAdminServiceClient(conn)
		_, err = cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d)})
		if code := status.Code(err); code != codes.PermissionDenied && code != codes.Unauthenticated {
			t.Errorf("%s: Apply of a Drill: %v, want PermissionDenied", name, err)
		} else if name == "member credential" && code != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, err)
		}
		_, err = cli.Delete(ctx(t), &meridianv1.DeleteRequest{Kind: "drills", Name: "sneaky"})
		if code := status.Code(err); code != codes.PermissionDenied && code != codes.Unauthenticated {
			t.Errorf("%s: Delete of a Drill: %v, want PermissionDenied", name, err)
		}
	}
	if _, err := hubtest.Client(t, h).Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d)}); err != nil {
		t.Errorf("admin: %v", err)
	}
}

type tlsCert struct{ cert *tls.Certificate }

// operatorConn dials the hub with a bearer token.
func operatorConn(t *testing.T, h interface {
	CA() *pki.CA
	Addr() string
}, token string) *grpc.ClientConn {
	t.Helper()
	tok, err := pki.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := pki.ClientTLS(h.CA().Pool(), nil, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(h.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)), grpc.WithPerRPCCredentials(pki.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestDrillOperator: an admin mints a drill-operator token; its holder may
// read, and create, abort and delete Drills, and is refused anything
// else — other writes and minting tokens — with PermissionDenied.
func TestDrillOperator(t *testing.T) {
	h := hubtest.Start(t, hubtest.Config(t, t.TempDir()))
	admin := hubtest.Conn(t, h)
	resp, err := meridianv1.NewDrillServiceClient(admin).CreateOperatorToken(ctx(t), &meridianv1.CreateOperatorTokenRequest{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetIdentity() != drill.OperatorPrefix+"alice" {
		t.Errorf("identity %q", resp.GetIdentity())
	}
	op := operatorConn(t, h, resp.GetToken())
	cli := meridianv1.NewAdminServiceClient(op)
	d := &meridianv1.Drill{ApiVersion: resource.MeridianAPIVersion, Kind: "Drill", Metadata: &meridianv1.ObjectMeta{Name: "by-alice"},
		Spec: &meridianv1.DrillSpec{Scope: &meridianv1.DrillScope{Datacenter: "dc-a1"}, Mode: "test"}}
	if _, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d)}); err != nil {
		t.Fatalf("operator Apply of a Drill: %v", err)
	}
	if _, err := cli.List(ctx(t), &meridianv1.ListRequest{Kind: "drills"}); err != nil {
		t.Errorf("operator List: %v", err)
	}
	ns := &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: "nope"}}
	if _, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(ns)}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator Apply of a Namespace: %v, want PermissionDenied", err)
	}
	if _, err := cli.Delete(ctx(t), &meridianv1.DeleteRequest{Kind: "clusters", Name: "dc-a1"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator Delete of a Cluster: %v, want PermissionDenied", err)
	}
	if _, err := meridianv1.NewDrillServiceClient(op).CreateOperatorToken(ctx(t), &meridianv1.CreateOperatorTokenRequest{Name: "mallory"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator minting a token: %v, want PermissionDenied", err)
	}
	if _, err := cli.Delete(ctx(t), &meridianv1.DeleteRequest{Kind: "drills", Name: "by-alice"}); err != nil {
		t.Errorf("operator Delete of a Drill: %v", err)
	}
}

// TestOperatorTokenRevoked: ListOperatorTokens lists the drill-operator
// tokens and nothing else; RevokeOperatorToken ends them, and the next call
// made with a revoked token is Unauthenticated — also when its record is
// removed from etcd behind this hub node's back (a revocation through
// another hub node). Drill operators may neither list nor revoke.
func TestOperatorTokenRevoked(t *testing.T) {
	cfg := hubtest.Config(t, t.TempDir())
	h := hubtest.Start(t, cfg)
	svc := meridianv1.NewDrillServiceClient(hubtest.Conn(t, h))
	mint := func(name string) string {
		t.Helper()
		resp, err := svc.CreateOperatorToken(ctx(t), &meridianv1.CreateOperatorTokenRequest{Name: name, TtlSeconds: 3600})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetToken()
	}
	alice, bob, carol := mint("alice"), mint("bob"), mint("carol")
	idOf := func(tok string) string { p, _ := pki.ParseToken(tok); return p.ID() }
	list, err := svc.ListOperatorTokens(ctx(t), &meridianv1.ListOperatorTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range list.GetTokens() {
		got = append(got, tk.GetName()+"="+tk.GetId()+" "+tk.GetIdentity())
		if tk.GetExpires() == nil || time.Until(tk.GetExpires().AsTime()) > time.Hour {
			t.Errorf("%s expires %v", tk.GetName(), tk.GetExpires())
		}
	}
	want := []string{"alice=" + idOf(alice) + " drill-operator.alice", "bob=" + idOf(bob) + " drill-operator.bob", "carol=" + idOf(carol) + " drill-operator.carol"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tokens %v, want %v", got, want)
	}
	read := func(tok string) error {
		_, err := meridianv1.NewAdminServiceClient(operatorConn(t, h, tok)).List(ctx(t), &meridianv1.ListRequest{Kind: "drills"})
		return err
	}
	for _, tok := range []string{alice, bob, carol} {
		if err := read(tok); err != nil {
			t.Fatalf("before any revocation: %v", err)
		}
	}
	opSvc := meridianv1.NewDrillServiceClient(operatorConn(t, h, alice))
	if _, err := opSvc.ListOperatorTokens(ctx(t), &meridianv1.ListOperatorTokensRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator listing tokens: %v, want PermissionDenied", err)
	}
	if _, err := opSvc.RevokeOperatorToken(ctx(t), &meridianv1.RevokeOperatorTokenRequest{Name: "bob"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator revoking a token: %v, want PermissionDenied", err)
	}

	resp, err := svc.RevokeOperatorToken(ctx(t), &meridianv1.RevokeOperatorTokenRequest{Name: "alice"})
	if err != nil || strings.Join(resp.GetIds(), ",") != idOf(alice) {
		t.Fatalf("revoke alice: %v %v", resp.GetIds(), err)
	}
	if err := read(alice); status.Code(err) != codes.Unauthenticated {
		t.Errorf("alice after the revocation: %v, want Unauthenticated", err)
	}
	if err := read(bob); err != nil {
		t.Errorf("bob after alice's revocation: %v", err)
	}
	if _, err := svc.RevokeOperatorToken(ctx(t), &meridianv1.RevokeOperatorTokenRequest{Id: idOf(bob)}); err != nil {
		t.Fatalf("revoke bob by id: %v", err)
	}
	if err := read(bob); status.Code(err) != codes.Unauthenticated {
		t.Errorf("bob after the revocation: %v, want Unauthenticated", err)
	}
	for _, req := range []*meridianv1.RevokeOperatorTokenRequest{{}, {Name: "a", Id: "b"}} {
		if _, err := svc.RevokeOperatorToken(ctx(t), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("revoke %v: %v, want InvalidArgument", req, err)
		}
	}
	if _, err := svc.RevokeOperatorToken(ctx(t), &meridianv1.RevokeOperatorTokenRequest{Name: "alice"}); status.Code(err) != codes.NotFound {
		t.Errorf("revoke alice again: %v, want NotFound", err)
	}

	// Another hub node revokes carol: her record leaves etcd, this node's
	// set still holds it.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cfg.EtcdClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Delete(ctx(t), "/meridian/pki/admin-tokens/"+idOf(carol)); err != nil {
		t.Fatal(err)
	}
	if err := read(carol); status.Code(err) != codes.Unauthenticated {
		t.Errorf("carol revoked through another node: %v, want Unauthenticated", err)
	}
	if list, err := svc.ListOperatorTokens(ctx(t), &meridianv1.ListOperatorTokensRequest{}); err != nil || len(list.GetTokens()) != 0 {
		t.Errorf("tokens left: %v %v", list.GetTokens(), err)
	}
}
