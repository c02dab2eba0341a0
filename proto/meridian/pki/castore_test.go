package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
)

// testTimeout bounds every test's calls: generous for a loaded CI machine,
// short enough that a hang fails the test rather than the whole run.
const testTimeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestEtcdCAStore(t *testing.T) {
	ctx := testContext(t)
	store := pki.NewEtcdCAStore(etcdnodetest.Client(t, etcdnodetest.Start(t)))
	if _, _, found, err := store.Load(ctx); err != nil || found {
		t.Fatalf("Load on an empty store = found %v, %v", found, err)
	}
	first, second := newCA(t), newCA(t)
	c1, k1 := first.MarshalPEM()
	if won, err := store.CreateIfAbsent(ctx, c1, k1); err != nil || !won {
		t.Fatalf("first CreateIfAbsent = %v, %v; want true", won, err)
	}
	c2, k2 := second.MarshalPEM()
	if won, err := store.CreateIfAbsent(ctx, c2, k2); err != nil || won {
		t.Fatalf("second CreateIfAbsent = %v, %v; want false", won, err)
	}
	c, k, found, err := store.Load(ctx)
	if err != nil || !found || !bytes.Equal(c, c1) || !bytes.Equal(k, k1) {
		t.Fatalf("Load = found %v, %v; want the first CA", found, err)
	}
}

// TestEnsureCAConcurrent starts three "hub nodes" on one etcd at once:
// they must end up with one CA.
func TestEnsureCAConcurrent(t *testing.T) {
	ctx := testContext(t)
	endpoints := etcdnodetest.Start(t)
	const nodes = 3
	cas := make([]*pki.CA, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		// A client per node, as separate hub processes would have.
		store := pki.NewEtcdCAStore(etcdnodetest.Client(t, endpoints))
		wg.Go(func() { cas[i], errs[i] = pki.EnsureCA(ctx, store, "meridian-ca", pki.DefaultCAValidity) })
	}
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: EnsureCA: %v", i, errs[i])
		}
		if !bytes.Equal(cas[i].Certificate().Raw, cas[0].Certificate().Raw) {
			t.Fatalf("node %d has CA %s, node 0 has %s", i, cas[i].Pin(), cas[0].Pin())
		}
	}
	// A restarted node loads the same CA.
	again, err := pki.EnsureCA(ctx, pki.NewEtcdCAStore(etcdnodetest.Client(t, endpoints)), "meridian-ca", pki.DefaultCAValidity)
	if err != nil || again.Pin() != cas[0].Pin() {
		t.Fatalf("EnsureCA after start = %v, %v; want the same CA", again, err)
	}
}

// fakeCAStore is a CAStore in memory that can pretend to lose the race.
type fakeCAStore struct {
	mu        sync.Mutex
	cert, key []byte
	// rival, when set, is stored by "another node" just before our
	// CreateIfAbsent runs.
	rival *pki.CA
}

func (s *fakeCAStore) Load(context.Context) ([]byte, []byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, s.key, s.cert != nil, nil
}

func (s *fakeCAStore) CreateIfAbsent(_ context.Context, cert, key []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rival != nil {
		s.cert, s.key = s.rival.MarshalPEM()
		s.rival = nil
	}
	if s.cert != nil {
		return false, nil
	}
	s.cert, s.key = cert, key
	return true, nil
}

func TestEnsureCALoserLoadsTheWinner(t *testing.T) {
	winner := newCA(t)
	store := &fakeCAStore{rival: winner}
	ca, err := pki.EnsureCA(testContext(t), store, "", time.Hour)
	if err != nil {
		t.Fatalf("EnsureCA: %v", err)
	}
	if ca.Pin() != winner.Pin() {
		t.Fatalf("EnsureCA returned its own CA, not the winner's")
	}
}

func TestEnsureCARefusesAnExpiredCA(t *testing.T) {
	certPEM, keyPEM := expiredCAPEM(t)
	if _, err := pki.LoadCA(certPEM, keyPEM); err != nil {
		t.Fatalf("LoadCA(expired) = %v; an expired CA still loads", err)
	}
	store := &fakeCAStore{cert: certPEM, key: keyPEM}
	if _, err := pki.EnsureCA(testContext(t), store, "", time.Hour); !errors.Is(err, pki.ErrCAExpired) {
		t.Fatalf("EnsureCA = %v, want ErrCAExpired", err)
	}
}

// expiredCAPEM returns a CA certificate that expired an hour ago and its key.
func expiredCAPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "old-ca"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(-time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
