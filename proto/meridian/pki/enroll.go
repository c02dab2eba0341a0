package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EnrollRequest is what a joining member (or hub node, or admin) sends the
// hub: its join token, a CSR for the key it keeps, and who it says it is.
type EnrollRequest struct {
	// Token is the join token, "<id>.<secret>".
	Token string
	// CSR is a DER certificate signing request (NewCSR).
	CSR []byte
	// Identity is who the certificate will name. The token decides
	// whether the caller may be it: its usages must allow the role, and
	// a token bound to a name allows that name only.
	Identity Identity
	// Validity of the certificate; DefaultCertValidity if zero.
	Validity time.Duration
}

// Enroll is the hub side of a join: it checks the request, spends the
// token (at now) and signs the CSR. It returns the certificate in PEM,
// followed by the CA certificate; send the caller ca.CertPEM() too, which
// it checks against its pin (CheckPin) and keeps as its trust root.
//
// The request is checked before the token is spent, so that a malformed
// CSR does not burn a single-use token. Map the error to gRPC with
// StatusError.
func Enroll(ctx context.Context, tokens *Tokens, ca *CA, req EnrollRequest, now time.Time) (certPEM []byte, err error) {
	if err := req.Identity.Validate(); err != nil {
		return nil, err
	}
	if req.Validity == 0 {
		req.Validity = DefaultCertValidity
	}
	if req.Validity < 0 {
		return nil, ErrInvalidValidity
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the request is not signed by its key: %w", ErrInvalidCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	use := TokenUse{Usage: JoinUsage(req.Identity.Role), Cluster: req.Identity.Name}
	if _, err := tokens.Verify(ctx, req.Token, use, now); err != nil {
		return nil, err
	}
	certPEM, err = ca.Sign(req.CSR, req.Identity, req.Validity)
	if err != nil {
		return nil, fmt.Errorf("failed to sign the certificate of %s: %w", req.Identity, err)
	}
	return certPEM, nil
}

// StatusError maps an error of this package to a gRPC status error, so that
// the caller sees a code rather than a string to match:
//
//	Unauthenticated     malformed, unknown, expired or used token
//	PermissionDenied    token not valid for this use (role or name)
//	InvalidArgument     bad identity, CSR, validity, pin or certificate
//	FailedPrecondition  the CA has expired
//	Canceled, DeadlineExceeded  the context's
//	Unavailable         anything else: the store failed; retry
//
// Messages never contain a secret: this package's errors do not carry one.
func StatusError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unavailable
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, ErrTokenMalformed), errors.Is(err, ErrTokenUnknown),
		errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenUsed):
		code = codes.Unauthenticated
	case errors.Is(err, ErrTokenUsage):
		code = codes.PermissionDenied
	case errors.Is(err, ErrInvalidIdentity), errors.Is(err, ErrInvalidCSR), errors.Is(err, ErrInvalidValidity),
		errors.Is(err, ErrInvalidPin), errors.Is(err, ErrInvalidCertificate), errors.Is(err, ErrInvalidServerName):
		code = codes.InvalidArgument
	case errors.Is(err, ErrCAExpired):
		code = codes.FailedPrecondition
	}
	return status.Error(code, err.Error())
}
