package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Every link in the federation speaks TLS 1.3 only: all parties are
// Meridian binaries, so there is no old client to accommodate, and 1.3
// leaves no cipher suite or renegotiation to get wrong.
const minTLSVersion = tls.VersionTLS13

// pinPrefix starts every CA pin; the format is kubeadm's
// --discovery-token-ca-cert-hash.
const pinPrefix = "sha256:"

// ServerTLS returns the TLS configuration of a server that only talks to
// callers holding a client certificate signed by one of roots: the
// hub↔member links. A caller without a certificate, or with one from
// another CA or expired, fails the handshake (the client sees
// codes.Unavailable) and never reaches a handler.
func ServerTLS(roots *x509.CertPool, cert tls.Certificate) (*tls.Config, error) {
	return serverTLS(roots, cert, tls.RequireAndVerifyClientCert)
}

// ServerTLSClientCertOptional is ServerTLS for a port that also serves
// callers without a certificate: a member that has not joined yet (it
// authenticates with its join token) and a CLI with an admin bearer token.
// A certificate that is presented must still verify against roots, or the
// handshake fails. Handlers then get no Identity from the certificate, so
// put an Authenticator and a Policy (or Require) in front of every method.
func ServerTLSClientCertOptional(roots *x509.CertPool, cert tls.Certificate) (*tls.Config, error) {
	return serverTLS(roots, cert, tls.VerifyClientCertIfGiven)
}

func serverTLS(roots *x509.CertPool, cert tls.Certificate, auth tls.ClientAuthType) (*tls.Config, error) {
	if roots == nil {
		return nil, errors.New("failed to configure server TLS: no CA pool to verify clients with")
	}
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, errors.New("failed to configure server TLS: no server certificate")
	}
	return &tls.Config{
		MinVersion:   minTLSVersion,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   auth,
		ClientCAs:    roots,
	}, nil
}

// ClientTLS returns the TLS configuration of a client that trusts only
// roots (never the system's CAs) and presents cert; a nil cert presents
// none, for a CLI that authenticates with a bearer token. serverName is
// the DNS name or IP address the server's certificate must carry; empty
// takes the host of the address dialed.
func ClientTLS(roots *x509.CertPool, cert *tls.Certificate, serverName string) (*tls.Config, error) {
	if roots == nil {
		return nil, errors.New("failed to configure client TLS: no CA pool to verify the server with")
	}
	cfg := &tls.Config{
		MinVersion: minTLSVersion,
		RootCAs:    roots,
		ServerName: serverName,
	}
	if cert != nil {
		if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			return nil, errors.New("failed to configure client TLS: empty client certificate")
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}

// JoinClientTLS returns the TLS configuration of a member that is joining:
// it has no certificate and no CA yet, only its join token and the CA pin
// the operator gave it with the token. The server must present a chain
// that contains the pinned CA and a leaf signed by it for serverName;
// anything else fails the handshake with ErrPinMismatch, so the join token
// is never sent to an impostor.
func JoinClientTLS(pin, serverName string) (*tls.Config, error) {
	want, err := parsePin(pin)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: minTLSVersion,
		ServerName: serverName,
		// The default verification needs the CA in RootCAs, which the
		// joining member does not have; VerifyConnection does the same
		// checks with the CA found in the chain by its pin.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := verifyPinned(cs.PeerCertificates, want, cs.ServerName)
			return err
		},
	}, nil
}

// CAPin returns the pin of a CA certificate: "sha256:" and the hex SHA-256
// of its SubjectPublicKeyInfo, as kubeadm prints it. It names the CA's key,
// so it survives re-issuing the CA certificate with the same key.
func CAPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return pinPrefix + hex.EncodeToString(sum[:])
}

// CheckPin returns nil if cert is the CA that pin names (ErrPinMismatch
// otherwise): a joined member checks the CA certificate the hub sent it
// before it trusts it.
func CheckPin(cert *x509.Certificate, pin string) error {
	want, err := parsePin(pin)
	if err != nil {
		return err
	}
	if CAPin(cert) != want {
		return fmt.Errorf("%w: CA %q has pin %s", ErrPinMismatch, cert.Subject.CommonName, CAPin(cert))
	}
	return nil
}

// parsePin checks the pin's form and returns it lower-cased.
func parsePin(pin string) (string, error) {
	pin = strings.ToLower(strings.TrimSpace(pin))
	digits, ok := strings.CutPrefix(pin, pinPrefix)
	if !ok || len(digits) != 2*sha256.Size {
		return "", fmt.Errorf("%w: want %s followed by %d hex digits", ErrInvalidPin, pinPrefix, 2*sha256.Size)
	}
	if _, err := hex.DecodeString(digits); err != nil {
		return "", fmt.Errorf("%w: want %s followed by %d hex digits", ErrInvalidPin, pinPrefix, 2*sha256.Size)
	}
	return pin, nil
}

// verifyPinned verifies a server's chain against the CA in it whose pin is
// want, and returns that CA.
func verifyPinned(chain []*x509.Certificate, want, serverName string) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: the server sent no certificate", ErrPinMismatch)
	}
	var ca *x509.Certificate
	for _, c := range chain[1:] {
		if c.IsCA && CAPin(c) == want {
			ca = c
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("%w: no certificate in the server's chain has pin %s", ErrPinMismatch, want)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:     roots,
		DNSName:   serverName,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPinMismatch, err)
	}
	return ca, nil
}
