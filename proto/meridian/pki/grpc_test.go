package pki_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/proto/meridian/pki"
)

// These tests run real gRPC servers and clients over TLS on loopback, with
// the health service standing in for the hub's API.

const serverName = "localhost"

// fixture is a federation: its CA, a hub server certificate, and client
// certificates for a member and an admin.
type fixture struct {
	ca     *pki.CA
	server tls.Certificate
	member tls.Certificate
	admin  tls.Certificate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca := newCA(t)
	server, err := ca.IssueServer([]string{serverName, "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	return &fixture{
		ca:     ca,
		server: tlsCert(t, server),
		member: clientCert(t, ca, memberA),
		admin:  clientCert(t, ca, adminID),
	}
}

// clientCert issues a client certificate for id, valid for an hour.
func clientCert(t *testing.T, ca *pki.CA, id pki.Identity) tls.Certificate {
	t.Helper()
	kp, err := ca.IssueClient(id, time.Hour)
	if err != nil {
		t.Fatalf("IssueClient(%v): %v", id, err)
	}
	return tlsCert(t, kp)
}

func tlsCert(t *testing.T, kp *pki.KeyPair) tls.Certificate {
	t.Helper()
	c, err := kp.TLSCertificate()
	if err != nil {
		t.Fatalf("TLSCertificate: %v", err)
	}
	return c
}

// recordingHealth is the health service with the caller's identity
// recorded by Check and Watch, and a List that only admins may call
// (checked in the handler, with Require).
type recordingHealth struct {
	*health.Server
	ids chan pki.Identity
}

func (h *recordingHealth) record(ctx context.Context) {
	if id, ok := pki.IdentityFrom(ctx); ok {
		select {
		case h.ids <- id:
		default:
		}
	}
}

func (h *recordingHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.record(ctx)
	return h.Server.Check(ctx, req)
}

func (h *recordingHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	h.record(stream.Context())
	return h.Server.Watch(req, stream)
}

func (h *recordingHealth) List(ctx context.Context, req *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	if _, err := pki.Require(ctx, pki.RoleAdmin); err != nil {
		return nil, err
	}
	return h.Server.List(ctx, req)
}

// serve starts a gRPC server with cfg, auth and (if not nil) policy on
// 127.0.0.1:0, stopped when the test ends.
func serve(t *testing.T, cfg *tls.Config, auth *pki.Authenticator, policy *pki.Policy) (string, *recordingHealth) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	unary := []grpc.UnaryServerInterceptor{auth.Unary()}
	stream := []grpc.StreamServerInterceptor{auth.Stream()}
	if policy != nil {
		unary = append(unary, policy.Unary())
		stream = append(stream, policy.Stream())
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)
	h := &recordingHealth{Server: health.NewServer(), ids: make(chan pki.Identity, 16)}
	healthpb.RegisterHealthServer(srv, h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when Stop closes the listener
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), h
}

func strictServer(t *testing.T, f *fixture, auth *pki.Authenticator, policy *pki.Policy) (string, *recordingHealth) {
	t.Helper()
	cfg, err := pki.ServerTLS(f.ca.Pool(), f.server)
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	return serve(t, cfg, auth, policy)
}

func optionalServer(t *testing.T, f *fixture, auth *pki.Authenticator, policy *pki.Policy) (string, *recordingHealth) {
	t.Helper()
	cfg, err := pki.ServerTLSClientCertOptional(f.ca.Pool(), f.server)
	if err != nil {
		t.Fatalf("ServerTLSClientCertOptional: %v", err)
	}
	return serve(t, cfg, auth, policy)
}

// dial returns a health client of addr over cfg.
func dial(t *testing.T, addr string, cfg *tls.Config, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// clientTLS is ClientTLS with f's CA; cert nil presents none.
func clientTLS(t *testing.T, f *fixture, cert *tls.Certificate) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLS(f.ca.Pool(), cert, serverName)
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	return cfg
}

func check(ctx context.Context, c healthpb.HealthClient) error {
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
}

func TestMTLSIdentityReachesHandler(t *testing.T) {
	ctx := testContext(t)
	f := newFixture(t)
	addr, h := strictServer(t, f, &pki.Authenticator{}, nil)
	c := dial(t, addr, clientTLS(t, f, &f.member))

	if err := check(ctx, c); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := <-h.ids; got != memberA {
		t.Fatalf("unary handler saw %v, want %v", got, memberA)
	}

	// Streams carry the identity too.
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := c.Watch(streamCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatalf("Watch.Recv: %v", err)
	}
	if got := <-h.ids; got != memberA {
		t.Fatalf("stream handler saw %v, want %v", got, memberA)
	}
}

// TestHandshakeRejections: a bad certificate on either side never reaches
// a handler; the client sees codes.Unavailable.
func TestHandshakeRejections(t *testing.T) {
	f := newFixture(t)
	foreign := newFixture(t) // another federation
	// Issued two days ago for an hour, by the injectable clock.
	expired := clientCert(t, f.ca.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) }), memberA)
	strict, _ := strictServer(t, f, &pki.Authenticator{}, nil)
	optional, _ := optionalServer(t, f, &pki.Authenticator{}, nil)
	// A server that presents a client certificate as its own.
	clientAsServerCfg, err := pki.ServerTLS(f.ca.Pool(), f.member)
	if err != nil {
		t.Fatal(err)
	}
	clientAsServer, _ := serve(t, clientAsServerCfg, &pki.Authenticator{}, nil)

	for _, tc := range []struct {
		name string
		addr string
		cfg  *tls.Config
	}{
		{"no client certificate", strict, clientTLS(t, f, nil)},
		{"certificate of another CA", strict, clientTLS(t, f, &foreign.member)},
		{"expired certificate", strict, clientTLS(t, f, &expired)},
		{"server certificate as client", strict, clientTLS(t, f, &f.server)},
		{"another CA, optional port", optional, clientTLS(t, f, &foreign.member)},
		{"expired, optional port", optional, clientTLS(t, f, &expired)},
		{"server of another CA", strict, clientTLS(t, foreign, &foreign.member)},
		{"client certificate as server", clientAsServer, clientTLS(t, f, &f.member)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			err := check(ctx, dial(t, tc.addr, tc.cfg))
			t.Log(err)
			wantCode(t, err, codes.Unavailable)
		})
	}
}

func TestPolicy(t *testing.T) {
	f := newFixture(t)
	policy, err := pki.NewPolicy(map[string][]pki.Role{
		"/grpc.health.v1.Health/Check": {pki.RoleAdmin},
		"/grpc.health.v1.Health/Watch": {pki.RoleMember, pki.RoleAdmin},
	})
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	addr, _ := optionalServer(t, f, &pki.Authenticator{}, policy)
	member := dial(t, addr, clientTLS(t, f, &f.member))
	admin := dial(t, addr, clientTLS(t, f, &f.admin))
	anonymous := dial(t, addr, clientTLS(t, f, nil))
	ctx := testContext(t)

	wantCode(t, check(ctx, member), codes.PermissionDenied)
	wantCode(t, check(ctx, admin), codes.OK)
	wantCode(t, check(ctx, anonymous), codes.Unauthenticated)

	watch := func(c healthpb.HealthClient) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = w.Recv()
		return err
	}
	wantCode(t, watch(member), codes.OK)
	wantCode(t, watch(anonymous), codes.Unauthenticated)

	// List has no rule: closed to everyone, admins included.
	_, err = admin.List(ctx, &healthpb.HealthListRequest{})
	wantCode(t, err, codes.PermissionDenied)
}

func TestPolicyPublicAndService(t *testing.T) {
	f := newFixture(t)
	policy, err := pki.NewPolicy(
		map[string][]pki.Role{"/grpc.health.v1.Health/": {pki.RoleMember}},
		"/grpc.health.v1.Health/Check",
	)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	addr, _ := optionalServer(t, f, &pki.Authenticator{}, policy)
	ctx := testContext(t)
	anonymous := dial(t, addr, clientTLS(t, f, nil))
	wantCode(t, check(ctx, anonymous), codes.OK) // public method
	_, err = anonymous.List(ctx, &healthpb.HealthListRequest{})
	wantCode(t, err, codes.Unauthenticated) // the service's rule
	_, err = dial(t, addr, clientTLS(t, f, &f.admin)).List(ctx, &healthpb.HealthListRequest{})
	wantCode(t, err, codes.PermissionDenied) // the service's rule: members only
}

func TestNewPolicyRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		rules  map[string][]pki.Role
		public []string
	}{
		"no leading slash": {rules: map[string][]pki.Role{"svc/M": {pki.RoleAdmin}}},
		"no method part":   {rules: map[string][]pki.Role{"/svc": {pki.RoleAdmin}}},
		"too many parts":   {rules: map[string][]pki.Role{"/a/b/c": {pki.RoleAdmin}}},
		"no roles":         {rules: map[string][]pki.Role{"/svc/M": nil}},
		"unknown role":     {rules: map[string][]pki.Role{"/svc/M": {"root"}}},
		"public and rule":  {rules: map[string][]pki.Role{"/svc/M": {pki.RoleAdmin}}, public: []string{"/svc/M"}},
		"bad public":       {public: []string{"svc"}},
	} {
		if _, err := pki.NewPolicy(tc.rules, tc.public...); err == nil {
			t.Errorf("%s: NewPolicy succeeded", name)
		}
	}
}

// TestRequireInHandler: List calls Require(admin) itself; no Policy.
func TestRequireInHandler(t *testing.T) {
	f := newFixture(t)
	addr, _ := optionalServer(t, f, &pki.Authenticator{}, nil)
	ctx := testContext(t)
	list := func(cert *tls.Certificate) error {
		_, err := dial(t, addr, clientTLS(t, f, cert)).List(ctx, &healthpb.HealthListRequest{})
		return err
	}
	wantCode(t, list(&f.member), codes.PermissionDenied)
	wantCode(t, list(nil), codes.Unauthenticated)
	wantCode(t, list(&f.admin), codes.OK)

	// Outside gRPC, on a bare context.
	if _, err := pki.Require(context.Background(), pki.RoleAdmin); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Require(no identity) = %v", err)
	}
	id, err := pki.Require(pki.WithIdentity(context.Background(), hubID), pki.RoleHub, pki.RoleAdmin)
	if err != nil || id != hubID {
		t.Errorf("Require(hub) = %v, %v", id, err)
	}
}

// rawAuthorization sends a literal authorization header.
type rawAuthorization string

func (r rawAuthorization) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(r)}, nil
}
func (rawAuthorization) RequireTransportSecurity() bool { return true }

func TestAdminBearerToken(t *testing.T) {
	f := newFixture(t)
	tok, rec, err := pki.NewAdminToken("alice", 0)
	if err != nil {
		t.Fatalf("NewAdminToken: %v", err)
	}
	oldTok, oldRec, err := pki.NewAdminToken("bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldRec.Expires = time.Now().Add(-time.Minute)
	set, err := pki.NewAdminTokenSet(rec, oldRec)
	if err != nil {
		t.Fatalf("NewAdminTokenSet: %v", err)
	}
	policy, err := pki.NewPolicy(map[string][]pki.Role{"/grpc.health.v1.Health/": {pki.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	addr, h := optionalServer(t, f, &pki.Authenticator{AdminTokens: set}, policy)
	ctx := testContext(t)
	withBearer := func(creds credentials.PerRPCCredentials) healthpb.HealthClient {
		return dial(t, addr, clientTLS(t, f, nil), grpc.WithPerRPCCredentials(creds))
	}

	if err := check(ctx, withBearer(pki.BearerToken(tok))); err != nil {
		t.Fatalf("Check with a valid admin token: %v", err)
	}
	if got, want := <-h.ids, (pki.Identity{Name: "alice", Role: pki.RoleAdmin}); got != want {
		t.Fatalf("handler saw %v, want %v", got, want)
	}

	wrong, err := pki.ParseToken(tok.ID() + "." + strings.Repeat("0", 32))
	if err != nil {
		t.Fatal(err)
	}
	joinTok, _, err := pki.NewToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, creds := range map[string]credentials.PerRPCCredentials{
		"wrong secret": pki.BearerToken(wrong),
		"expired":      pki.BearerToken(oldTok),
		"malformed":    rawAuthorization("Bearer not-a-token"),
		"not bearer":   rawAuthorization("Basic " + tok.Value()),
		"empty bearer": rawAuthorization("Bearer "),
		"a join token": pki.BearerToken(joinTok),
		"unknown ID":   rawAuthorization("Bearer zzzzzz." + strings.Repeat("y", 32)),
	} {
		t.Run(name, func(t *testing.T) {
			err := check(ctx, withBearer(creds))
			wantCode(t, err, codes.Unauthenticated)
			if strings.Contains(err.Error(), tok.Value()) {
				t.Fatalf("the error repeats the token: %v", err)
			}
		})
	}
	// The scheme is case-insensitive (RFC 7235).
	if err := check(ctx, withBearer(rawAuthorization("bearer "+tok.Value()))); err != nil {
		t.Errorf("lower-case scheme: %v", err)
	}
	// Removing the record revokes the token.
	if !set.Remove(rec.ID) {
		t.Fatalf("Remove found no record")
	}
	wantCode(t, check(ctx, withBearer(pki.BearerToken(tok))), codes.Unauthenticated)

	// A client certificate still works on the same port, and wins over a
	// bearer token.
	admin := dial(t, addr, clientTLS(t, f, &f.admin), grpc.WithPerRPCCredentials(pki.BearerToken(wrong)))
	if err := check(ctx, admin); err != nil {
		t.Fatalf("Check with an admin certificate: %v", err)
	}
	if got := <-h.ids; got != adminID {
		t.Fatalf("handler saw %v, want %v", got, adminID)
	}
}

func TestBearerTokenRefusedWithoutVerifier(t *testing.T) {
	f := newFixture(t)
	tok, _, err := pki.NewAdminToken("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := optionalServer(t, f, &pki.Authenticator{}, nil)
	c := dial(t, addr, clientTLS(t, f, nil), grpc.WithPerRPCCredentials(pki.BearerToken(tok)))
	wantCode(t, check(testContext(t), c), codes.Unauthenticated)
}

func TestAdminTokenSetRejectsBadRecords(t *testing.T) {
	_, rec, err := pki.NewAdminToken("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*pki.AdminTokenRecord){
		"bad ID":   func(r *pki.AdminTokenRecord) { r.ID = "x/y" },
		"no hash":  func(r *pki.AdminTokenRecord) { r.SecretHash = nil },
		"bad name": func(r *pki.AdminTokenRecord) { r.Name = "Alice Smith" },
	} {
		r := rec
		change(&r)
		if _, err := pki.NewAdminTokenSet(r); err == nil {
			t.Errorf("%s: NewAdminTokenSet accepted the record", name)
		}
	}
	if _, _, err := pki.NewAdminToken("", 0); !errors.Is(err, pki.ErrInvalidIdentity) {
		t.Errorf("NewAdminToken(no name) = %v, want ErrInvalidIdentity", err)
	}
}

// TestJoinOverPinnedTLS: a member with nothing but a token and the CA pin
// reaches the hub's optional-certificate port; with a wrong pin it does
// not, so its token never leaves the machine.
func TestJoinOverPinnedTLS(t *testing.T) {
	f := newFixture(t)
	foreign := newFixture(t)
	addr, _ := optionalServer(t, f, &pki.Authenticator{}, nil)
	ctx := testContext(t)

	cfg, err := pki.JoinClientTLS(f.ca.Pin(), serverName)
	if err != nil {
		t.Fatalf("JoinClientTLS: %v", err)
	}
	if err := check(ctx, dial(t, addr, cfg)); err != nil {
		t.Fatalf("Check over pinned TLS: %v", err)
	}

	for name, pin := range map[string]string{"another CA": foreign.ca.Pin()} {
		cfg, err := pki.JoinClientTLS(pin, serverName)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { wantCode(t, check(ctx, dial(t, addr, cfg)), codes.Unavailable) })
	}
	// The right pin, the wrong server name.
	cfg, err = pki.JoinClientTLS(f.ca.Pin(), "hub.elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, check(ctx, dial(t, addr, cfg)), codes.Unavailable)

	for _, bad := range []string{"", "sha256:", "md5:" + strings.Repeat("0", 64), "sha256:" + strings.Repeat("g", 64)} {
		if _, err := pki.JoinClientTLS(bad, serverName); !errors.Is(err, pki.ErrInvalidPin) {
			t.Errorf("JoinClientTLS(%q) = %v, want ErrInvalidPin", bad, err)
		}
	}
	if err := pki.CheckPin(f.ca.Certificate(), f.ca.Pin()); err != nil {
		t.Errorf("CheckPin(own pin) = %v", err)
	}
	if err := pki.CheckPin(f.ca.Certificate(), foreign.ca.Pin()); !errors.Is(err, pki.ErrPinMismatch) {
		t.Errorf("CheckPin(other pin) = %v, want ErrPinMismatch", err)
	}
}

func TestTLSConfigs(t *testing.T) {
	f := newFixture(t)
	cfg, err := pki.ServerTLS(f.ca.Pool(), f.server)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ServerTLS: MinVersion %x, ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	cfg, err = pki.ServerTLSClientCertOptional(f.ca.Pool(), f.server)
	if err != nil || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("ServerTLSClientCertOptional: %v, ClientAuth %v", err, cfg.ClientAuth)
	}
	if _, err := pki.ServerTLS(nil, f.server); err == nil {
		t.Errorf("ServerTLS without a CA pool succeeded")
	}
	if _, err := pki.ServerTLS(f.ca.Pool(), tls.Certificate{}); err == nil {
		t.Errorf("ServerTLS without a certificate succeeded")
	}
	if _, err := pki.ClientTLS(nil, &f.member, serverName); err == nil {
		t.Errorf("ClientTLS without a CA pool succeeded (it would trust the system's CAs)")
	}
	if _, err := pki.ClientTLS(f.ca.Pool(), &tls.Certificate{}, serverName); err == nil {
		t.Errorf("ClientTLS with an empty certificate succeeded")
	}
}
