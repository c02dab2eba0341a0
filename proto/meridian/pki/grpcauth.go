package pki

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Authentication says who is calling (Authenticator); authorization says
// whether they may (Policy for whole methods, Require inside a handler).
// The package documentation shows them chained on a server.

// Authenticator is a pair of gRPC server interceptors that put the
// caller's Identity in the context of every call. It never rejects a call
// for having no credential — a Policy or Require does, so that public
// methods (health, join) stay reachable — but it rejects, with
// codes.Unauthenticated, a credential that is presented and bad.
//
// The identity comes from, in order:
//  1. the verified client certificate of the TLS connection (its
//     meridian:// URI SAN), if there is one; then
//  2. an "authorization: Bearer <token>" metadata entry, checked by
//     AdminTokens, which yields an admin identity.
//
// A call with both is the certificate's: like Kubernetes' union
// authenticator, the first credential that authenticates wins.
type Authenticator struct {
	// AdminTokens verifies admin bearer tokens; nil refuses every bearer
	// token (client certificates only).
	AdminTokens AdminTokenVerifier
}

// Unary returns the unary server interceptor.
func (a *Authenticator) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream returns the stream server interceptor.
func (a *Authenticator) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authenticate(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

// contextStream is a ServerStream whose Context carries the identity.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context implements grpc.ServerStream.
func (s *contextStream) Context() context.Context { return s.ctx }

func (a *Authenticator) authenticate(ctx context.Context) (context.Context, error) {
	tlsInfo, isTLS := peerTLS(ctx)
	if isTLS && len(tlsInfo.State.VerifiedChains) > 0 && len(tlsInfo.State.VerifiedChains[0]) > 0 {
		id, err := IdentityFromCert(tlsInfo.State.VerifiedChains[0][0])
		if err != nil {
			return ctx, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
		}
		return WithIdentity(ctx, id), nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(authorizationKey)
	if len(values) == 0 {
		return ctx, nil
	}
	token, err := bearerToken(values)
	if err != nil {
		return ctx, status.Error(codes.Unauthenticated, err.Error())
	}
	if !isTLS {
		return ctx, status.Error(codes.Unauthenticated, "bearer tokens are accepted over TLS only")
	}
	if a.AdminTokens == nil {
		return ctx, status.Error(codes.Unauthenticated, "bearer tokens are not accepted here; present a client certificate")
	}
	id, err := a.AdminTokens.VerifyAdminToken(ctx, token)
	if err != nil {
		return ctx, StatusError(err)
	}
	if id.Role != RoleAdmin {
		return ctx, status.Errorf(codes.Unauthenticated, "bearer token does not carry an admin identity")
	}
	return WithIdentity(ctx, id), nil
}

// bearerToken returns the token of the one authorization value "Bearer
// <token>". Errors never contain the value.
func bearerToken(values []string) (string, error) {
	if len(values) != 1 {
		return "", errors.New("more than one authorization header")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, bearerScheme) || strings.TrimSpace(token) == "" {
		return "", errors.New(`authorization header is not "Bearer <token>"`)
	}
	return strings.TrimSpace(token), nil
}

func peerTLS(ctx context.Context) (credentials.TLSInfo, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return credentials.TLSInfo{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return info, ok
}

// Require returns the caller's identity if its role is one of roles:
// codes.Unauthenticated if the call carries no identity (see
// Authenticator), codes.PermissionDenied if the role is not allowed. Call
// it first in a handler whose rule is not a whole method's (a member may
// only sync its own cluster, say); a Policy covers whole methods.
func Require(ctx context.Context, roles ...Role) (Identity, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated,
			"no credentials: call with a client certificate signed by the federation CA, or an admin bearer token")
	}
	if !slices.Contains(roles, id.Role) {
		method, _ := grpc.Method(ctx)
		return id, status.Errorf(codes.PermissionDenied, "%s may not call %s: it needs role %s",
			id, methodOrCall(method), joinRoles(roles))
	}
	return id, nil
}

func methodOrCall(method string) string {
	if method == "" {
		return "this"
	}
	return method
}

func joinRoles(roles []Role) string {
	if len(roles) == 0 {
		return "(none allowed)"
	}
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

// Policy says which roles may call which gRPC methods, and denies every
// method it does not name: a service added without a rule is closed until
// someone decides who may call it. It runs after the Authenticator.
type Policy struct {
	rules  map[string][]Role
	public map[string]bool
}

// NewPolicy returns a policy. Keys of rules, and public entries, are full
// method names ("/meridian.v1.AdminService/Apply") or services
// ("/meridian.v1.AdminService/"); a method's own entry wins over its
// service's. rules gives the roles allowed; public lists what anyone may
// call without a credential (the health service, the join method, which
// checks a join token itself).
func NewPolicy(rules map[string][]Role, public ...string) (*Policy, error) {
	p := &Policy{rules: make(map[string][]Role, len(rules)), public: make(map[string]bool, len(public))}
	for name, roles := range rules {
		if err := checkPolicyName(name); err != nil {
			return nil, err
		}
		if len(roles) == 0 {
			return nil, fmt.Errorf("policy for %s: no role given (list it as public to open it)", name)
		}
		for _, r := range roles {
			if !r.Valid() {
				return nil, fmt.Errorf("policy for %s: role %q is not one of hub, member, admin", name, r)
			}
		}
		p.rules[name] = slices.Clone(roles)
	}
	for _, name := range public {
		if err := checkPolicyName(name); err != nil {
			return nil, err
		}
		if _, dup := p.rules[name]; dup {
			return nil, fmt.Errorf("policy for %s: both public and restricted", name)
		}
		p.public[name] = true
	}
	return p, nil
}

// checkPolicyName accepts "/service/" and "/service/Method".
func checkPolicyName(name string) error {
	service, method, ok := strings.Cut(strings.TrimPrefix(name, "/"), "/")
	if !strings.HasPrefix(name, "/") || !ok || service == "" || strings.Contains(method, "/") {
		return fmt.Errorf("policy entry %q is neither /service/ nor /service/Method", name)
	}
	return nil
}

// Authorize checks a call of fullMethod: nil if it is public or the
// caller's role is allowed, a status error otherwise (see Require).
func (p *Policy) Authorize(ctx context.Context, fullMethod string) error {
	service := fullMethod
	if i := strings.LastIndex(fullMethod, "/"); i >= 0 {
		service = fullMethod[:i+1]
	}
	for _, name := range []string{fullMethod, service} {
		if p.public[name] {
			return nil
		}
		if roles, ok := p.rules[name]; ok {
			_, err := Require(ctx, roles...)
			return err
		}
	}
	if _, ok := IdentityFrom(ctx); !ok {
		return status.Errorf(codes.Unauthenticated, "no credentials for %s", fullMethod)
	}
	return status.Errorf(codes.PermissionDenied, "no policy allows %s", fullMethod)
}

// Unary returns the unary server interceptor.
func (p *Policy) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := p.Authorize(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream returns the stream server interceptor.
func (p *Policy) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := p.Authorize(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
