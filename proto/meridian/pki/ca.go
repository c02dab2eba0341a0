package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"
)

// PEM block types written and read by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY" // PKCS #8
	pemECKey       = "EC PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
)

// minRSABits is the smallest RSA key Sign accepts in a CSR.
const minRSABits = 2048

// CA is the federation's certificate authority: a self-signed ECDSA P-256
// certificate and its key. P-256 because every TLS stack and gRPC
// implementation handles it, and its signatures are small and fast.
//
// A CA is immutable and safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
	// now is the clock certificates are dated by (time.Now unless
	// WithClock replaced it).
	now func() time.Time
}

// NewCA creates a CA valid for validity from now (less ClockSkew), named
// commonName ("meridian-ca" if empty). It cannot sign further CAs.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, ErrInvalidValidity
	}
	if commonName == "" {
		commonName = "meridian-ca"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"meridian"}},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Path length 0: this CA signs leaves only, so a leaf key that
		// leaks can never mint certificates.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("failed to self-sign the CA certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	return LoadCA(pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM)
}

// LoadCA loads a CA from the PEM that MarshalPEM wrote: ErrInvalidCA if the
// certificate is not a CA or the key is not its key. An expired CA loads
// (so that it can be inspected); EnsureCA refuses it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: certificate %q is not a CA certificate", ErrInvalidCA, cert.Subject.CommonName)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w: the private key does not belong to certificate %q", ErrInvalidCA, cert.Subject.CommonName)
	}
	// Re-encoded, so that MarshalPEM always writes PKCS #8 whatever the
	// input's form.
	normalized, err := marshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: cert.Raw}),
		keyPEM:  normalized,
		now:     time.Now,
	}, nil
}

// MarshalPEM returns the CA certificate and its PKCS #8 private key in PEM.
// keyPEM is the federation's root secret: store it where only hub nodes
// can read it, never log it.
func (ca *CA) MarshalPEM() (certPEM, keyPEM []byte) {
	return bytes.Clone(ca.certPEM), bytes.Clone(ca.keyPEM)
}

// WithClock returns a CA that shares ca's key but dates the certificates it
// issues by now: for tests that need a certificate already expired or not
// yet valid.
func (ca *CA) WithClock(now func() time.Time) *CA {
	c := *ca
	c.now = now
	return &c
}

// Certificate returns the CA certificate. Do not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM: what a member trusts.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Pool returns a certificate pool holding the CA, for ServerTLS and
// ClientTLS.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Pin returns the CA's public key pin for JoinClientTLS (see CAPin).
func (ca *CA) Pin() string { return CAPin(ca.cert) }

// String names the CA without its key.
func (ca *CA) String() string {
	return fmt.Sprintf("CA(%s, expires %s)", ca.cert.Subject.CommonName, ca.cert.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v never prints the key.
func (ca *CA) GoString() string { return ca.String() }

// KeyPair is a certificate the CA issued together with its private key.
type KeyPair struct {
	// Cert is the parsed leaf certificate.
	Cert *x509.Certificate
	// CertPEM is the leaf followed by the CA certificate, so that a peer
	// that pinned the CA finds it in the chain (see JoinClientTLS).
	CertPEM []byte
	// KeyPEM is the PKCS #8 private key: a secret.
	KeyPEM []byte
}

// TLSCertificate returns the pair for a tls.Config.
func (kp *KeyPair) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to load the key pair: %w: %w", ErrInvalidCertificate, err)
	}
	c.Leaf = kp.Cert
	return c, nil
}

// String names the certificate without its key.
func (kp *KeyPair) String() string {
	return fmt.Sprintf("KeyPair(%s, expires %s)", kp.Cert.Subject.CommonName, kp.Cert.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v never prints the key.
func (kp *KeyPair) GoString() string { return kp.String() }

// LoadKeyPair loads a key pair from PEM (as a member reads its certificate,
// signed by Sign, and the key NewCSR made): ErrInvalidCertificate if the
// key does not belong to the first certificate.
func LoadKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w: the private key does not belong to certificate %q", ErrInvalidCertificate, cert.Subject.CommonName)
	}
	return &KeyPair{Cert: cert, CertPEM: bytes.Clone(certPEM), KeyPEM: bytes.Clone(keyPEM)}, nil
}

// IssueServer issues a TLS server certificate for names: DNS names and IP
// addresses (at least one). Only ServerTLS uses it: it carries no Identity
// and cannot authenticate a client. Only the hub issues server
// certificates, so a peer that verifies one knows it speaks to a node the
// hub vouched for.
func (ca *CA) IssueServer(names []string, validity time.Duration) (*KeyPair, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: at least one DNS name or IP address is required", ErrInvalidServerName)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: truncate(names[0], 64)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if n == "" || strings.ContainsAny(n, " /:") {
			return nil, fmt.Errorf("%w: %q is neither an IP address nor a DNS name", ErrInvalidServerName, n)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	return ca.issueWithNewKey(tmpl, validity)
}

// IssueClient issues a TLS client certificate carrying id, with a new key.
// The hub uses it for its own nodes and for admin certificates; members
// keep their key local and go through Sign instead.
func (ca *CA) IssueClient(id Identity, validity time.Duration) (*KeyPair, error) {
	tmpl, err := clientTemplate(id)
	if err != nil {
		return nil, err
	}
	return ca.issueWithNewKey(tmpl, validity)
}

// Sign issues a client certificate carrying id for the key in a DER
// certificate signing request and returns it in PEM, followed by the CA
// certificate. Only the CSR's public key and self-signature are used: the
// subject and names the requester asked for are ignored, the identity is
// the one the caller established (from a join token, see Enroll).
func (ca *CA) Sign(csrDER []byte, id Identity, validity time.Duration) (certPEM []byte, err error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the request is not signed by its key: %w", ErrInvalidCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	tmpl, err := clientTemplate(id)
	if err != nil {
		return nil, err
	}
	cert, err := ca.sign(tmpl, csr.PublicKey, validity)
	if err != nil {
		return nil, err
	}
	return ca.chainPEM(cert), nil
}

// NewCSR makes what a member sends to join: a new ECDSA P-256 key (keyPEM,
// which never leaves the member) and a DER certificate signing request for
// id signed by it.
func NewCSR(id Identity) (csrDER, keyPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	csrDER, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: id.subject(),
		URIs:    []*url.URL{id.URI()},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create the certificate request: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return csrDER, keyPEM, nil
}

// EncodeCSRPEM wraps a DER certificate signing request in PEM, for files
// and for openssl.
func EncodeCSRPEM(csrDER []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: csrDER})
}

// clientTemplate is the certificate template of a client carrying id.
func clientTemplate(id Identity) (*x509.Certificate, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	return &x509.Certificate{
		Subject:     id.subject(),
		URIs:        []*url.URL{id.URI()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, nil
}

func (ca *CA) issueWithNewKey(tmpl *x509.Certificate, validity time.Duration) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	cert, err := ca.sign(tmpl, key.Public(), validity)
	if err != nil {
		return nil, err
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, CertPEM: ca.chainPEM(cert), KeyPEM: keyPEM}, nil
}

// sign dates tmpl by the CA's clock, gives it a serial number, and signs
// pub into it. A certificate never outlives the CA: its NotAfter is capped
// at the CA's, since no peer would verify it past that.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	if validity <= 0 {
		return nil, ErrInvalidValidity
	}
	now := ca.now()
	if !now.Before(ca.cert.NotAfter) {
		return nil, fmt.Errorf("failed to issue a certificate: %w (at %s)", ErrCAExpired, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-ClockSkew)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("failed to sign the certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the signed certificate: %w", err)
	}
	return cert, nil
}

func (ca *CA) chainPEM(leaf *x509.Certificate) []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: leaf.Raw})
	return append(out, ca.certPEM...)
}

// ParseCertificatePEM returns the first certificate in PEM data
// (ErrInvalidCertificate if there is none). Blocks of other types before it
// are skipped.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM %s block", ErrInvalidCertificate, pemCertificate)
		}
		if block.Type != pemCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
		}
		return cert, nil
	}
}

// PoolFromPEM returns a pool of every certificate in PEM data: the CA
// bundle a member stores after joining (two CAs during a rotation).
func PoolFromPEM(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: no certificate in the CA bundle", ErrInvalidCertificate)
	}
	return pool, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM private key block")
	}
	var key any
	var err error
	switch block.Type {
	case pemPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemECKey:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		// The parse error describes the structure, never the key bytes.
		return nil, fmt.Errorf("failed to parse the private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// checkPublicKey refuses keys too weak to trust for a federation link.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: unsupported elliptic curve %s", ErrInvalidCSR, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("%w: RSA key of %d bits is shorter than %d", ErrInvalidCSR, k.N.BitLen(), minRSABits)
		}
		return nil
	}
	return fmt.Errorf("%w: unsupported public key type %T", ErrInvalidCSR, pub)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// newSerial returns a random 128-bit serial number, as RFC 5280 and the
// CA/Browser Forum ask (at least 64 random bits).
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("failed to generate a serial number: %w", err)
	}
	return serial, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
