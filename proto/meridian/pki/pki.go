// Package pki holds the federation's identities: the hub's certificate
// authority, the certificates it issues to hub nodes, members and
// administrators, the join tokens a member trades for its certificate, the
// admin bearer tokens of the CLI, and the TLS and gRPC pieces that check
// them on every link.
//
// It lives under proto/meridian because hub and member share it: the hub
// issues and verifies, the member requests and presents.
//
//	hub (first start)   EnsureCA(etcd) ─▶ CA ─▶ IssueServer(hub names) ─▶ ServerTLS
//	operator            Tokens.Add(NewToken(ttl, UsageJoinMember))  ─▶ "abc123.s3cr3t…"
//	member (join)       NewCSR(identity) ─▶ JoinClientTLS(CA pin) ─▶ hub: Enroll(token, csr)
//	member (after)      ClientTLS(CA pool, its cert) ─▶ every call: Authenticator ─▶ Policy / Require
//	CLI                 admin client cert, or BearerToken(admin token) over TLS
//
// Every credential carries an Identity (name, role, region, datacenter);
// see identity.go for how it is written into a certificate. README.md has
// the threat model: what each credential proves, lifetimes and rotation.
//
// A hub's gRPC server, put together:
//
//	ca, err := pki.EnsureCA(ctx, pki.NewEtcdCAStore(cli), "", pki.DefaultCAValidity)
//	kp, err := ca.IssueServer([]string{"hub-0.example", "10.0.0.5"}, pki.DefaultCertValidity)
//	cert, err := kp.TLSCertificate()
//	// Optional client certificate: joining members and bearer-token CLIs
//	// have none; the Policy decides per method.
//	tlsCfg, err := pki.ServerTLSClientCertOptional(ca.Pool(), cert)
//	auth := &pki.Authenticator{AdminTokens: adminTokenSet}
//	policy, err := pki.NewPolicy(map[string][]pki.Role{
//		"/meridian.v1.AdminService/":           {pki.RoleAdmin},
//		"/meridian.v1.FederationService/Sync":  {pki.RoleMember},
//	}, "/grpc.health.v1.Health/", "/meridian.v1.FederationService/Join")
//	srv := grpc.NewServer(
//		grpc.Creds(credentials.NewTLS(tlsCfg)),
//		grpc.ChainUnaryInterceptor(auth.Unary(), policy.Unary()),
//		grpc.ChainStreamInterceptor(auth.Stream(), policy.Stream()),
//	)
//
// The authenticator runs first (it puts the Identity in the context), the
// policy second (it reads it); a handler reads it too, with IdentityFrom,
// or checks a finer rule with Require.
package pki

import (
	"errors"
	"time"
)

// Defaults for callers that have no better value. Each is a trade between
// the damage a stolen credential can do and the work of renewing it.
const (
	// DefaultCAValidity is the life of a new federation CA: ten years,
	// because replacing a CA means re-issuing every certificate in the
	// federation, which is an operation, not a routine.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultCertValidity is the life of a hub, member or admin
	// certificate: one year, like a kubelet client certificate. Shorter is
	// better once members renew automatically (see README.md).
	DefaultCertValidity = 365 * 24 * time.Hour
	// DefaultTokenTTL is the life of a join token: one day, like a kubeadm
	// bootstrap token. A join token only needs to live until the member it
	// was made for has joined.
	DefaultTokenTTL = 24 * time.Hour
	// ClockSkew is how far back NotBefore is set on every certificate, so
	// that a machine whose clock is a little behind the hub's accepts a
	// certificate issued a moment ago. Five minutes is what most CAs use.
	ClockSkew = 5 * time.Minute
)

// Sentinel errors. Callers test them with errors.Is; they are wrapped with
// what failed, never with a secret.
var (
	// ErrInvalidCA: the PEM given to LoadCA is not a CA certificate with
	// its matching private key.
	ErrInvalidCA = errors.New("invalid CA")
	// ErrCAExpired: the stored CA is past its NotAfter; no certificate it
	// signs would verify. The CA must be rotated (see README.md).
	ErrCAExpired = errors.New("CA has expired")
	// ErrInvalidIdentity: an Identity is incomplete or has a malformed
	// field (Identity.Validate says which).
	ErrInvalidIdentity = errors.New("invalid identity")
	// ErrNoIdentity: a certificate carries no Meridian identity (a server
	// certificate, or one from another issuer).
	ErrNoIdentity = errors.New("certificate carries no meridian identity")
	// ErrInvalidCSR: a certificate signing request is malformed, is not
	// signed by its own key, or uses a key type or size the CA refuses.
	ErrInvalidCSR = errors.New("invalid certificate signing request")
	// ErrInvalidServerName: IssueServer was given no name, or an empty one.
	ErrInvalidServerName = errors.New("invalid server name")
	// ErrInvalidValidity: a validity is not positive.
	ErrInvalidValidity = errors.New("validity must be positive")
	// ErrInvalidCertificate: PEM that should hold a certificate (or a
	// certificate and its key) does not.
	ErrInvalidCertificate = errors.New("invalid certificate")
	// ErrInvalidPin: a CA pin is not "sha256:" and 64 hex digits.
	ErrInvalidPin = errors.New("invalid CA pin")
	// ErrPinMismatch: the server's certificate chain does not contain the
	// CA whose public key a joining member pinned.
	ErrPinMismatch = errors.New("server is not signed by the pinned CA")

	// ErrTokenMalformed: the string is not "<id>.<secret>" in the token
	// alphabet. The message never repeats the string.
	ErrTokenMalformed = errors.New("token is malformed")
	// ErrTokenUnknown: no token has this ID, or its secret does not match
	// (the two are not told apart, so that an attacker learns nothing).
	ErrTokenUnknown = errors.New("token is unknown")
	// ErrTokenExpired: the token was valid but is past its expiry.
	ErrTokenExpired = errors.New("token has expired")
	// ErrTokenUsed: a single-use token has already been used.
	ErrTokenUsed = errors.New("token has already been used")
	// ErrTokenUsage: the token is valid but not for this use (a member
	// join token presented to join a hub, or a token bound to another
	// cluster name).
	ErrTokenUsage = errors.New("token is not valid for this use")
	// ErrTokenExists: a token store already holds a token with this ID.
	ErrTokenExists = errors.New("token ID already exists")
)
