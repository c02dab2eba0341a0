package pki_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
)

func newTokens(t *testing.T) *pki.Tokens {
	t.Helper()
	return pki.NewTokens(pki.NewEtcdTokenStore(etcdnodetest.Client(t, etcdnodetest.Start(t))))
}

// addToken makes and stores a token; change, if not nil, edits its record
// first.
func addToken(ctx context.Context, t *testing.T, tokens *pki.Tokens, change func(*pki.TokenRecord), usages ...pki.Usage) (pki.Token, pki.TokenRecord) {
	t.Helper()
	tok, rec, err := pki.NewToken(time.Hour, usages...)
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	if change != nil {
		change(&rec)
	}
	if err := tokens.Add(ctx, rec); err != nil {
		t.Fatalf("Add: %v", err)
	}
	return tok, rec
}

var joinMember = pki.TokenUse{Usage: pki.UsageJoinMember, Cluster: "dc-a1"}

func TestTokenFormat(t *testing.T) {
	tok, rec, err := pki.NewToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := tok.Value()
	if id, secret, ok := strings.Cut(v, "."); !ok || len(id) != 6 || len(secret) != 32 || id != tok.ID() || id != rec.ID {
		t.Fatalf("token %q: want <6>.<32> with the record's ID %q", v, rec.ID)
	}
	parsed, err := pki.ParseToken(v)
	if err != nil || parsed != tok {
		t.Fatalf("ParseToken(Value()) = %v, %v", parsed, err)
	}
	if got := tok.String(); got != tok.ID()+".<redacted>" {
		t.Errorf("String() = %q", got)
	}
	if len(rec.SecretHash) != 32 || strings.Contains(string(rec.SecretHash), v[7:]) {
		t.Errorf("record keeps %d bytes of hash, want the 32 of SHA-256 and no secret", len(rec.SecretHash))
	}
	if !rec.Allows(pki.UsageJoinMember) || rec.Allows(pki.UsageJoinHub) {
		t.Errorf("default usages = %v, want join-member only", rec.Usages)
	}
	if _, _, err := pki.NewToken(0); !errors.Is(err, pki.ErrInvalidValidity) {
		t.Errorf("NewToken(0) = %v, want ErrInvalidValidity", err)
	}
	if _, err := pki.NewTokens(nil).Verify(t.Context(), tok.Value(), pki.TokenUse{}, time.Now()); err == nil {
		t.Errorf("Verify without a usage to check succeeded")
	}
	if _, _, err := pki.NewToken(time.Hour, "root"); err == nil {
		t.Errorf("NewToken with an unknown usage succeeded")
	}
}

func TestTokenLifecycle(t *testing.T) {
	ctx := testContext(t)
	tokens := newTokens(t)
	tok, rec := addToken(ctx, t, tokens, nil)
	now := time.Now()
	for i := range 3 { // multi-use by default
		got, err := tokens.Verify(ctx, tok.Value(), joinMember, now)
		if err != nil {
			t.Fatalf("Verify #%d: %v", i+1, err)
		}
		if got.ID != rec.ID {
			t.Fatalf("Verify returned record %s, want %s", got.ID, rec.ID)
		}
	}
	list, err := tokens.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != rec.ID {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := tokens.Add(ctx, rec); !errors.Is(err, pki.ErrTokenExists) {
		t.Errorf("Add(same ID) = %v, want ErrTokenExists", err)
	}
	if err := tokens.Revoke(ctx, rec.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := tokens.Verify(ctx, tok.Value(), joinMember, now); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Errorf("Verify after Revoke = %v, want ErrTokenUnknown", err)
	}
	if err := tokens.Revoke(ctx, rec.ID); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Errorf("second Revoke = %v, want ErrTokenUnknown", err)
	}
}

func TestTokenVerifyErrors(t *testing.T) {
	ctx := testContext(t)
	tokens := newTokens(t)
	tok, rec := addToken(ctx, t, tokens, nil)
	bound, _ := addToken(ctx, t, tokens, func(r *pki.TokenRecord) { r.Cluster = "dc-b1" })
	hubTok, _ := addToken(ctx, t, tokens, nil, pki.UsageJoinHub)
	id, secret, _ := strings.Cut(tok.Value(), ".")
	wrongSecret := id + "." + strings.Repeat("a", 32)
	unknownID := "zzzzzz." + secret
	now := time.Now()
	for _, tc := range []struct {
		name  string
		token string
		use   pki.TokenUse
		now   time.Time
		want  error
	}{
		{"empty", "", joinMember, now, pki.ErrTokenMalformed},
		{"no dot", id + secret, joinMember, now, pki.ErrTokenMalformed},
		{"short secret", id + "." + secret[:16], joinMember, now, pki.ErrTokenMalformed},
		{"upper case", strings.ToUpper(tok.Value()), joinMember, now, pki.ErrTokenMalformed},
		{"two dots", tok.Value() + ".x", joinMember, now, pki.ErrTokenMalformed},
		{"unknown ID", unknownID, joinMember, now, pki.ErrTokenUnknown},
		{"wrong secret", wrongSecret, joinMember, now, pki.ErrTokenUnknown},
		{"expired", tok.Value(), joinMember, rec.Expires, pki.ErrTokenExpired},
		{"long expired", tok.Value(), joinMember, rec.Expires.Add(time.Hour), pki.ErrTokenExpired},
		{"wrong usage", tok.Value(), pki.TokenUse{Usage: pki.UsageJoinHub, Cluster: "hub-0"}, now, pki.ErrTokenUsage},
		{"member token for a hub", hubTok.Value(), joinMember, now, pki.ErrTokenUsage},
		{"bound to another cluster", bound.Value(), joinMember, now, pki.ErrTokenUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tokens.Verify(ctx, tc.token, tc.use, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error repeats the secret: %v", err)
			}
		})
	}
	// The bound token works for its own cluster.
	if _, err := tokens.Verify(ctx, bound.Value(), pki.TokenUse{Usage: pki.UsageJoinMember, Cluster: "dc-b1"}, now); err != nil {
		t.Errorf("Verify(bound, its cluster) = %v", err)
	}
}

func TestTokenSingleUse(t *testing.T) {
	ctx := testContext(t)
	tokens := newTokens(t)
	tok, rec := addToken(ctx, t, tokens, func(r *pki.TokenRecord) { r.SingleUse = true })
	now := time.Now()
	got, err := tokens.Verify(ctx, tok.Value(), joinMember, now)
	if err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	if got.UsedBy != "dc-a1" || got.UsedAt.IsZero() {
		t.Errorf("used record = by %q at %v", got.UsedBy, got.UsedAt)
	}
	if _, err := tokens.Verify(ctx, tok.Value(), joinMember, now); !errors.Is(err, pki.ErrTokenUsed) {
		t.Fatalf("second Verify = %v, want ErrTokenUsed", err)
	}
	list, err := tokens.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != rec.ID || list[0].UsedBy != "dc-a1" {
		t.Fatalf("List = %+v, %v; want the record marked used", list, err)
	}
}

func TestTokenSingleUseConcurrent(t *testing.T) {
	ctx := testContext(t)
	tokens := newTokens(t)
	tok, _ := addToken(ctx, t, tokens, func(r *pki.TokenRecord) { r.SingleUse = true })
	const callers = 8
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { _, errs[i] = tokens.Verify(ctx, tok.Value(), joinMember, time.Now()) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, pki.ErrTokenUsed):
			t.Errorf("caller %d: %v, want ErrTokenUsed", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d callers used a single-use token, want 1", won)
	}
}

// TestEtcdTokenRecordsExpire checks that a record carries a lease, so
// that etcd deletes it TokenRetention after the token expires.
func TestEtcdTokenRecordsExpire(t *testing.T) {
	ctx := testContext(t)
	endpoints := etcdnodetest.Start(t)
	cli := etcdnodetest.Client(t, endpoints)
	tokens := pki.NewTokens(pki.NewEtcdTokenStore(cli))
	_, rec := addToken(ctx, t, tokens, nil)
	resp, err := cli.Get(ctx, pki.EtcdTokenPrefix+rec.ID)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", resp, err)
	}
	if resp.Kvs[0].Lease == 0 {
		t.Fatalf("the token record has no lease")
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		t.Fatalf("TimeToLive: %v", err)
	}
	want := time.Hour + pki.TokenRetention
	if got := time.Duration(ttl.TTL) * time.Second; got < want-time.Minute || got > want+time.Minute {
		t.Errorf("lease TTL = %v, want about %v", got, want)
	}
	// Marking it used keeps the lease.
	rec.SingleUse = true
	store := pki.NewEtcdTokenStore(cli)
	_, version, _, err := store.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if won, err := store.Update(ctx, rec, version); err != nil || !won {
		t.Fatalf("Update = %v, %v", won, err)
	}
	if won, err := store.Update(ctx, rec, version); err != nil || won {
		t.Fatalf("Update at a stale version = %v, %v; want false", won, err)
	}
	resp, err = cli.Get(ctx, pki.EtcdTokenPrefix+rec.ID)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("after Update: %v, %v; want the record with its lease", resp, err)
	}
}

func TestEnroll(t *testing.T) {
	ctx := testContext(t)
	tokens := newTokens(t)
	ca := newCA(t)
	tok, _ := addToken(ctx, t, tokens, func(r *pki.TokenRecord) { r.SingleUse = true })
	csr, keyPEM, err := pki.NewCSR(memberA)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	// A bad CSR is refused before the single-use token is spent.
	_, err = pki.Enroll(ctx, tokens, ca, pki.EnrollRequest{Token: tok.Value(), CSR: []byte("junk"), Identity: memberA}, now)
	if !errors.Is(err, pki.ErrInvalidCSR) {
		t.Fatalf("Enroll(bad CSR) = %v, want ErrInvalidCSR", err)
	}
	// A member token does not make a hub.
	hub := pki.Identity{Name: "dc-a1", Role: pki.RoleHub}
	_, err = pki.Enroll(ctx, tokens, ca, pki.EnrollRequest{Token: tok.Value(), CSR: csr, Identity: hub}, now)
	if !errors.Is(err, pki.ErrTokenUsage) || status.Code(pki.StatusError(err)) != codes.PermissionDenied {
		t.Fatalf("Enroll(as hub) = %v, want ErrTokenUsage → PermissionDenied", err)
	}

	certPEM, err := pki.Enroll(ctx, tokens, ca, pki.EnrollRequest{Token: tok.Value(), CSR: csr, Identity: memberA}, now)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	kp, err := pki.LoadKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	if id, err := pki.IdentityFromCert(kp.Cert); err != nil || id != memberA {
		t.Fatalf("identity = %v, %v", id, err)
	}
	// Validity defaults to DefaultCertValidity, capped by the test CA's day.
	if !kp.Cert.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", kp.Cert.NotAfter, ca.Certificate().NotAfter)
	}

	_, err = pki.Enroll(ctx, tokens, ca, pki.EnrollRequest{Token: tok.Value(), CSR: csr, Identity: memberA}, now)
	if !errors.Is(err, pki.ErrTokenUsed) || status.Code(pki.StatusError(err)) != codes.Unauthenticated {
		t.Fatalf("second Enroll = %v, want ErrTokenUsed → Unauthenticated", err)
	}
}

func TestStatusError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{pki.ErrTokenMalformed, codes.Unauthenticated},
		{pki.ErrTokenUnknown, codes.Unauthenticated},
		{pki.ErrTokenExpired, codes.Unauthenticated},
		{pki.ErrTokenUsed, codes.Unauthenticated},
		{pki.ErrTokenUsage, codes.PermissionDenied},
		{pki.ErrInvalidCSR, codes.InvalidArgument},
		{pki.ErrInvalidIdentity, codes.InvalidArgument},
		{pki.ErrCAExpired, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("etcd is down"), codes.Unavailable},
		{status.Error(codes.NotFound, "x"), codes.NotFound},
	} {
		if got := status.Code(pki.StatusError(tc.err)); got != tc.want {
			t.Errorf("StatusError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
