package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/pki"
)

var (
	memberA = pki.Identity{Name: "dc-a1", Role: pki.RoleMember, Region: "region-a", Datacenter: "dc-a1"}
	adminID = pki.Identity{Name: "alice", Role: pki.RoleAdmin}
	hubID   = pki.Identity{Name: "hub-0", Role: pki.RoleHub, Region: "region-a", Datacenter: "dc-a1"}
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test-ca", 24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func TestCARoundTrip(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM := ca.MarshalPEM()
	loaded, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !bytes.Equal(loaded.Certificate().Raw, ca.Certificate().Raw) || loaded.Pin() != ca.Pin() {
		t.Fatalf("loaded CA differs from the original")
	}
	c := ca.Certificate()
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.Subject.CommonName != "test-ca" {
		t.Errorf("CA certificate: IsCA=%v MaxPathLen=%d zero=%v CN=%q", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.Subject.CommonName)
	}
	// A certificate the loaded CA issues verifies against the original.
	kp, err := loaded.IssueClient(memberA, time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify against the original CA: %v", err)
	}
}

func TestLoadCARejects(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	certPEM, keyPEM := ca.MarshalPEM()
	_, otherKey := other.MarshalPEM()
	leaf, err := ca.IssueClient(memberA, time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"key of another CA", certPEM, otherKey},
		{"leaf certificate", leaf.CertPEM, leaf.KeyPEM},
		{"no certificate", []byte("garbage"), keyPEM},
		{"no key", certPEM, nil},
		{"certificate as key", certPEM, certPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := pki.LoadCA(tc.cert, tc.key); !errors.Is(err, pki.ErrInvalidCA) {
				t.Fatalf("LoadCA = %v, want ErrInvalidCA", err)
			}
		})
	}
}

func TestIssueServer(t *testing.T) {
	ca := newCA(t)
	kp, err := ca.IssueServer([]string{"hub.example", "127.0.0.1", "::1"}, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	for _, name := range []string{"hub.example", "127.0.0.1", "::1"} {
		if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Errorf("a server certificate verified as a client certificate")
	}
	if _, err := pki.IdentityFromCert(kp.Cert); !errors.Is(err, pki.ErrNoIdentity) {
		t.Errorf("IdentityFromCert(server) = %v, want ErrNoIdentity", err)
	}
	if _, err := kp.TLSCertificate(); err != nil {
		t.Errorf("TLSCertificate: %v", err)
	}
	for _, names := range [][]string{nil, {""}, {"a b"}, {"http://x"}} {
		if _, err := ca.IssueServer(names, time.Hour); !errors.Is(err, pki.ErrInvalidServerName) {
			t.Errorf("IssueServer(%q) = %v, want ErrInvalidServerName", names, err)
		}
	}
	if _, err := ca.IssueServer([]string{"x"}, 0); !errors.Is(err, pki.ErrInvalidValidity) {
		t.Errorf("IssueServer(validity 0) = %v, want ErrInvalidValidity", err)
	}
}

func TestIssueClientCarriesIdentity(t *testing.T) {
	ca := newCA(t)
	kp, err := ca.IssueClient(memberA, 10*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	got, err := pki.IdentityFromCert(kp.Cert)
	if err != nil || got != memberA {
		t.Fatalf("IdentityFromCert = %v, %v; want %v", got, err, memberA)
	}
	c := kp.Cert
	if want := "meridian://member/dc-a1?datacenter=dc-a1&region=region-a"; len(c.URIs) != 1 || c.URIs[0].String() != want {
		t.Errorf("URIs = %v, want [%s]", c.URIs, want)
	}
	if c.Subject.CommonName != "dc-a1" || fmt.Sprint(c.Subject.Organization) != "[member]" || fmt.Sprint(c.Subject.OrganizationalUnit) != "[region-a/dc-a1]" {
		t.Errorf("subject = %v", c.Subject)
	}
	// Ten days asked, but the CA ends in one: the certificate ends with it.
	if !c.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", c.NotAfter, ca.Certificate().NotAfter)
	}
	if skew := time.Since(c.NotBefore); skew < pki.ClockSkew-time.Minute || skew > pki.ClockSkew+time.Minute {
		t.Errorf("NotBefore is %v ago, want about %v", skew, pki.ClockSkew)
	}
	if _, err := ca.IssueClient(pki.Identity{Name: "x", Role: "root"}, time.Hour); !errors.Is(err, pki.ErrInvalidIdentity) {
		t.Errorf("IssueClient(bad role) = %v, want ErrInvalidIdentity", err)
	}
}

func TestIdentityValidate(t *testing.T) {
	for _, tc := range []struct {
		id Identity
		ok bool
	}{
		{memberA, true},
		{adminID, true},
		{hubID, true},
		{pki.Identity{Name: "hub-0", Role: pki.RoleHub}, true},
		{pki.Identity{Name: "a.b-c", Role: pki.RoleAdmin}, true},
		{pki.Identity{Name: "", Role: pki.RoleAdmin}, false},
		{pki.Identity{Name: "Alice", Role: pki.RoleAdmin}, false},
		{pki.Identity{Name: "a/b", Role: pki.RoleAdmin}, false},
		{pki.Identity{Name: "x", Role: "root"}, false},
		{pki.Identity{Name: "x", Role: pki.RoleMember, Region: "r"}, false},
		{pki.Identity{Name: "x", Role: pki.RoleMember, Region: "r", Datacenter: "d.c"}, false},
		{pki.Identity{Name: "x", Role: pki.RoleHub, Region: "R_1"}, false},
	} {
		err := tc.id.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, pki.ErrInvalidIdentity)) {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

// Identity is a local alias so that the table above reads well.
type Identity = pki.Identity

func TestParseIdentityURI(t *testing.T) {
	u, _ := url.Parse(memberA.URI().String())
	if got, err := pki.ParseIdentityURI(u); err != nil || got != memberA {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	for _, raw := range []string{
		"spiffe://member/dc-a1?region=r&datacenter=d",
		"meridian://member/dc-a1?region=r&datacenter=d&extra=1",
		"meridian://member/dc-a1?region=r&region=s&datacenter=d",
		"meridian://member:8080/dc-a1?region=r&datacenter=d",
		"meridian://u@member/dc-a1?region=r&datacenter=d",
		"meridian://member/dc-a1?region=r&datacenter=d#frag",
		"meridian://member/dc-a1",
		"meridian://root/dc-a1",
		"meridian://admin/a/b",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", raw, err)
		}
		if _, err := pki.ParseIdentityURI(u); !errors.Is(err, pki.ErrInvalidIdentity) {
			t.Errorf("ParseIdentityURI(%q) = %v, want ErrInvalidIdentity", raw, err)
		}
	}
}

func TestIdentityFromCertRejectsTwoIdentities(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "two"},
		NotBefore:    time.Now(), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{memberA.URI(), adminID.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.IdentityFromCert(cert); !errors.Is(err, pki.ErrInvalidIdentity) {
		t.Fatalf("IdentityFromCert = %v, want ErrInvalidIdentity", err)
	}
	if _, err := pki.IdentityFromCert(nil); !errors.Is(err, pki.ErrNoIdentity) {
		t.Fatalf("IdentityFromCert(nil) = %v, want ErrNoIdentity", err)
	}
}

func TestSignCSR(t *testing.T) {
	ca := newCA(t)
	// The requester asks to be an admin; the hub decides it is a member.
	csr, keyPEM, err := pki.NewCSR(adminID)
	if err != nil {
		t.Fatalf("NewCSR: %v", err)
	}
	if !bytes.HasPrefix(pki.EncodeCSRPEM(csr), []byte("-----BEGIN CERTIFICATE REQUEST-----")) {
		t.Errorf("EncodeCSRPEM does not write a CSR block")
	}
	certPEM, err := ca.Sign(csr, memberA, time.Hour)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	kp, err := pki.LoadKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	if got, err := pki.IdentityFromCert(kp.Cert); err != nil || got != memberA {
		t.Fatalf("identity = %v, %v; want %v (the CSR's own is ignored)", got, err, memberA)
	}
	if _, err := kp.TLSCertificate(); err != nil {
		t.Errorf("TLSCertificate: %v", err)
	}
	// The chain carries the CA, for peers that pinned it.
	if pool, err := pki.PoolFromPEM(certPEM); err != nil || pool == nil {
		t.Errorf("PoolFromPEM(chain) = %v", err)
	}
	// Another key does not load with this certificate.
	_, otherKey, err := pki.NewCSR(memberA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadKeyPair(certPEM, otherKey); !errors.Is(err, pki.ErrInvalidCertificate) {
		t.Errorf("LoadKeyPair(other key) = %v, want ErrInvalidCertificate", err)
	}
}

func TestSignRejects(t *testing.T) {
	ca := newCA(t)
	good, _, err := pki.NewCSR(memberA)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 0xff // inside the signature
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "weak"}}, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		csr      []byte
		id       Identity
		validity time.Duration
		want     error
	}{
		{"garbage", []byte("not a csr"), memberA, time.Hour, pki.ErrInvalidCSR},
		{"bad signature", tampered, memberA, time.Hour, pki.ErrInvalidCSR},
		{"RSA 1024", weak, memberA, time.Hour, pki.ErrInvalidCSR},
		{"bad identity", good, pki.Identity{Name: "x", Role: pki.RoleMember}, time.Hour, pki.ErrInvalidIdentity},
		{"no validity", good, memberA, 0, pki.ErrInvalidValidity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.Sign(tc.csr, tc.id, tc.validity); !errors.Is(err, tc.want) {
				t.Fatalf("Sign = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWithClock(t *testing.T) {
	ca := newCA(t)
	past := time.Now().Add(-48 * time.Hour)
	kp, err := ca.WithClock(func() time.Time { return past }).IssueClient(memberA, time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	if !kp.Cert.NotAfter.Before(time.Now()) {
		t.Fatalf("NotAfter = %v, want in the past", kp.Cert.NotAfter)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Errorf("an expired certificate verified")
	}
	future := ca.Certificate().NotAfter.Add(time.Second)
	if _, err := ca.WithClock(func() time.Time { return future }).IssueClient(memberA, time.Hour); !errors.Is(err, pki.ErrCAExpired) {
		t.Errorf("issue after the CA expired = %v, want ErrCAExpired", err)
	}
}

func TestSecretsStayOutOfFormatting(t *testing.T) {
	ca := newCA(t)
	_, caKey := ca.MarshalPEM()
	kp, err := ca.IssueClient(memberA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := pki.NewToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.SplitN(tok.Value(), ".", 2)[1]
	out := fmt.Sprintf("%v %+v %#v %s | %v %+v %#v | %v %+v %#v %s | %v", ca, ca, ca, ca, kp, kp, kp, tok, tok, tok, tok, pki.BearerToken(tok))
	for what, s := range map[string]string{"CA key": keyBody(caKey), "leaf key": keyBody(kp.KeyPEM), "token secret": secret} {
		if strings.Contains(out, s) {
			t.Errorf("formatting leaks the %s: %s", what, out)
		}
	}
	if !strings.Contains(out, tok.ID()) {
		t.Errorf("formatting hides the token ID, which is public: %s", out)
	}
}

// keyBody returns a line of base64 from the middle of a PEM key.
func keyBody(keyPEM []byte) string {
	lines := strings.Split(string(keyPEM), "\n")
	return lines[1]
}

func TestLoadCAAcceptsSEC1Keys(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "openssl-ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	if err != nil {
		t.Fatalf("LoadCA(SEC 1 key): %v", err)
	}
	if _, keyPEM := ca.MarshalPEM(); !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("MarshalPEM does not write PKCS #8")
	}
}
