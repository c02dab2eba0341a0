package hubsync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/proto/meridian/pki"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// rpcError is an error of a call to the hub with a readable message that
// keeps the call's gRPC code: status.Code(err) is the hub's code.
type rpcError struct {
	msg string
	st  *status.Status
}

func (e *rpcError) Error() string              { return e.msg }
func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// wrapRPC prefixes the message of a gRPC error and keeps its code.
func wrapRPC(prefix string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	msg := prefix + ": " + st.Message()
	return &rpcError{msg: msg, st: status.New(st.Code(), msg)}
}

// Join makes the member a member of the hub's federation: it trades the
// join token and a certificate request for a member certificate, and keeps
// the certificate, its key and the hub's CA in the state directory. It does
// nothing if a certificate is stored already (its name must be the
// member's). The hub's errors keep their gRPC code: Unauthenticated for a
// bad, unknown, expired or used token, PermissionDenied for a token not
// valid for this name.
func (c *Client) Join(ctx context.Context) error {
	dir := c.cfg.StateDir
	if certStored(dir) {
		return c.checkStoredCert()
	}
	prefix := fmt.Sprintf("join hub %s as %s", c.cfg.Hub, c.cfg.Cluster)
	if c.cfg.JoinToken == "" {
		return fmt.Errorf("%s: join-token: required: no member certificate in %s yet", prefix, dir)
	}
	id := pki.Identity{Name: c.cfg.Cluster, Role: pki.RoleMember, Region: c.cfg.Region, Datacenter: c.cfg.Datacenter}
	csr, keyPEM, err := pki.NewCSR(id)
	if err != nil {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	var roots *x509.CertPool
	if c.cfg.CAFile != "" {
		if roots, err = readPool(c.cfg.CAFile); err != nil {
			return fmt.Errorf("%s: hub-ca-file: %w", prefix, err)
		}
	}
	req := &meridianv1.JoinRequest{
		Token:       c.cfg.JoinToken,
		Csr:         csr,
		Name:        c.cfg.Cluster,
		Region:      c.cfg.Region,
		Datacenter:  c.cfg.Datacenter,
		Labels:      c.cfg.Labels,
		ApiEndpoint: c.cfg.APIEndpoint,
		Version:     c.cfg.Version,
	}
	// Each hub node in turn, until one answers: a refusal (a bad token, a
	// taken name) is final; a node that cannot be reached is not.
	var resp *meridianv1.JoinResponse
	for range c.addrs {
		addr := c.hubAddr()
		if resp, err = c.joinAt(ctx, addr, roots, req); err == nil || len(c.addrs) == 1 {
			break
		}
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			break
		}
		c.nextHub()
	}
	if err != nil {
		return wrapRPC(prefix, err)
	}

	// Trust nothing in the answer before checking it: the CA against the
	// pin (or the configured roots), the certificate against the CA, our
	// key and our name.
	ca, err := pki.ParseCertificatePEM(resp.GetCa())
	if err != nil {
		return fmt.Errorf("%s: the hub sent no valid CA certificate: %w", prefix, err)
	}
	if c.cfg.CAPin != "" {
		if err := pki.CheckPin(ca, c.cfg.CAPin); err != nil {
			return fmt.Errorf("%s: the CA the hub sent is not the pinned one: %w", prefix, err)
		}
	} else if _, err := ca.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%s: the CA the hub sent is not trusted by hub-ca-file: %w", prefix, err)
	}
	kp, err := pki.LoadKeyPair(resp.GetCertificate(), keyPEM)
	if err != nil {
		return fmt.Errorf("%s: the hub sent an unusable certificate: %w", prefix, err)
	}
	caPool := x509.NewCertPool()
	caPool.AddCert(ca)
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: caPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("%s: the hub's certificate does not verify against its CA: %w", prefix, err)
	}
	got, err := pki.IdentityFromCert(kp.Cert)
	if err != nil {
		return fmt.Errorf("%s: the hub sent a certificate without identity: %w", prefix, err)
	}
	if got.Name != c.cfg.Cluster || got.Role != pki.RoleMember {
		return fmt.Errorf("%s: the hub sent a certificate for %s", prefix, got)
	}

	// The key first, the certificate last: a member with a certificate on
	// disk has joined.
	if err := writeFileAtomic(dir, KeyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("%s: failed to store the key: %w", prefix, err)
	}
	if err := writeFileAtomic(dir, CAFile, resp.GetCa(), 0o644); err != nil {
		return fmt.Errorf("%s: failed to store the CA: %w", prefix, err)
	}
	if err := writeFileAtomic(dir, CertFile, resp.GetCertificate(), 0o644); err != nil {
		return fmt.Errorf("%s: failed to store the certificate: %w", prefix, err)
	}
	c.log.Info("joined the hub", "cluster", c.cfg.Cluster, "hub_id", resp.GetHubId(), "expires", kp.Cert.NotAfter)
	return nil
}

// checkStoredCert checks that the stored certificate loads and names this
// member.
func (c *Client) checkStoredCert() error {
	kp, err := c.loadKeyPair()
	if err != nil {
		return err
	}
	id, err := pki.IdentityFromCert(kp.Cert)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(c.cfg.StateDir, CertFile), err)
	}
	if id.Name != c.cfg.Cluster {
		return fmt.Errorf("name: %q, but the certificate in %s is for %q; remove %s, %s and %s to join again under the new name",
			c.cfg.Cluster, c.cfg.StateDir, id.Name, CertFile, KeyFile, StateFile)
	}
	return nil
}

func (c *Client) loadKeyPair() (*pki.KeyPair, error) {
	certPEM, err := os.ReadFile(filepath.Join(c.cfg.StateDir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("failed to read the member certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(c.cfg.StateDir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("failed to read the member key: %w", err)
	}
	kp, err := pki.LoadKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load the member certificate in %s: %w", c.cfg.StateDir, err)
	}
	return kp, nil
}

// joinAt sends req to the hub node at addr, over TLS that trusts the
// configured roots, or only a hub whose CA matches the pin.
func (c *Client) joinAt(ctx context.Context, addr string, roots *x509.CertPool, req *meridianv1.JoinRequest) (*meridianv1.JoinResponse, error) {
	var (
		tlsCfg *tls.Config
		err    error
	)
	if roots != nil {
		tlsCfg, err = pki.ClientTLS(roots, nil, c.serverName(addr))
	} else {
		tlsCfg, err = pki.JoinClientTLS(c.cfg.CAPin, c.serverName(addr))
	}
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return meridianv1.NewFederationServiceClient(conn).Join(ctx, req)
}

// syncTLS is the mutual TLS configuration of the Sync stream: the stored
// CA as the only root, the stored certificate as the client's. It is read
// again for every connection.
func (c *Client) syncTLS(serverName string) (*tls.Config, error) {
	if !certStored(c.cfg.StateDir) {
		return nil, fmt.Errorf("no member certificate in %s: the member has not joined the hub (Join)", c.cfg.StateDir)
	}
	caPEM, err := os.ReadFile(filepath.Join(c.cfg.StateDir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("failed to read the hub CA: %w", err)
	}
	roots, err := pki.PoolFromPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to read the hub CA %s: %w", filepath.Join(c.cfg.StateDir, CAFile), err)
	}
	kp, err := c.loadKeyPair()
	if err != nil {
		return nil, err
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		return nil, err
	}
	return pki.ClientTLS(roots, &cert, serverName)
}
