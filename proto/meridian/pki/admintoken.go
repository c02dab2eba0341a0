package pki

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// Admin bearer tokens are the CLI's alternative to an admin client
// certificate: a token of the same "<id>.<secret>" form as a join token,
// sent on every call as "authorization: Bearer <token>" over TLS, and
// checked by the Authenticator against an AdminTokenVerifier. They are
// kept apart from join tokens (a join token is never an admin token): the
// hub holds their records in its configuration, and `meridian dev` writes
// one into the client context.

// AdminTokenRecord is what the hub keeps of an admin token.
type AdminTokenRecord struct {
	// ID is the token's public ID.
	ID string `json:"id"`
	// Name is the administrator it authenticates: the Identity.Name of
	// calls made with it.
	Name string `json:"name"`
	// SecretHash is the SHA-256 of the token's secret.
	SecretHash []byte `json:"secretHash"`
	// Expires ends the token; zero never does (rotate such tokens by
	// replacing the record).
	Expires time.Time `json:"expires,omitzero"`
}

// NewAdminToken makes a random admin token for the administrator name,
// valid for ttl (0: until its record is removed), and the record to keep.
func NewAdminToken(name string, ttl time.Duration) (Token, AdminTokenRecord, error) {
	if ttl < 0 {
		return Token{}, AdminTokenRecord{}, fmt.Errorf("admin token TTL: %w", ErrInvalidValidity)
	}
	if err := (Identity{Name: name, Role: RoleAdmin}).Validate(); err != nil {
		return Token{}, AdminTokenRecord{}, err
	}
	tok, err := newRandomToken()
	if err != nil {
		return Token{}, AdminTokenRecord{}, fmt.Errorf("failed to generate an admin token: %w", err)
	}
	rec := AdminTokenRecord{ID: tok.id, Name: name, SecretHash: tok.hash()}
	if ttl > 0 {
		rec.Expires = time.Now().UTC().Add(ttl)
	}
	return tok, rec, nil
}

// AdminTokenVerifier checks an admin bearer token. Implementations must be
// safe for concurrent use and fast: the Authenticator calls it on every
// call that carries a token.
type AdminTokenVerifier interface {
	// VerifyAdminToken returns the admin identity of token, or
	// ErrTokenMalformed, ErrTokenUnknown or ErrTokenExpired; any other
	// error is a failure to check it.
	VerifyAdminToken(ctx context.Context, token string) (Identity, error)
}

// AdminTokenSet is an AdminTokenVerifier over records held in memory
// (loaded from the hub's configuration). Safe for concurrent use; Add and
// Remove take effect on the next call.
type AdminTokenSet struct {
	mu   sync.RWMutex
	byID map[string]AdminTokenRecord // guarded by mu
}

var _ AdminTokenVerifier = (*AdminTokenSet)(nil)

// NewAdminTokenSet returns a set holding records.
func NewAdminTokenSet(records ...AdminTokenRecord) (*AdminTokenSet, error) {
	s := &AdminTokenSet{byID: make(map[string]AdminTokenRecord, len(records))}
	for _, r := range records {
		if err := s.Add(r); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add adds (or replaces) a record.
func (s *AdminTokenSet) Add(rec AdminTokenRecord) error {
	if len(rec.ID) != tokenIDLen || !inAlphabet(rec.ID) {
		return fmt.Errorf("admin token record %q: %w: bad ID", rec.ID, ErrTokenMalformed)
	}
	if len(rec.SecretHash) != sha256.Size {
		return fmt.Errorf("admin token record %s: %w: the secret hash is not SHA-256", rec.ID, ErrTokenMalformed)
	}
	if err := (Identity{Name: rec.Name, Role: RoleAdmin}).Validate(); err != nil {
		return fmt.Errorf("admin token record %s: %w", rec.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[rec.ID] = rec
	return nil
}

// Remove removes the record with this ID and reports whether there was one.
func (s *AdminTokenSet) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byID[id]
	delete(s.byID, id)
	return ok
}

// Records returns the records, ordered by ID.
func (s *AdminTokenSet) Records() []AdminTokenRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]AdminTokenRecord, 0, len(s.byID))
	for _, r := range s.byID {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// VerifyAdminToken implements AdminTokenVerifier.
func (s *AdminTokenSet) VerifyAdminToken(_ context.Context, token string) (Identity, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return Identity{}, err
	}
	s.mu.RLock()
	rec, found := s.byID[tok.id]
	s.mu.RUnlock()
	if !found || !tok.matches(rec.SecretHash) {
		return Identity{}, fmt.Errorf("admin token %s: %w", tok.id, ErrTokenUnknown)
	}
	if !rec.Expires.IsZero() && !time.Now().Before(rec.Expires) {
		return Identity{}, fmt.Errorf("admin token %s: %w at %s", tok.id, ErrTokenExpired, rec.Expires.UTC().Format(time.RFC3339))
	}
	return Identity{Name: rec.Name, Role: RoleAdmin}, nil
}

// bearerScheme is the authorization scheme of admin tokens (RFC 6750).
const bearerScheme = "Bearer"

// authorizationKey is the gRPC metadata key of bearer tokens.
const authorizationKey = "authorization"

// BearerToken returns per-RPC credentials that send tok on every call as
// "authorization: Bearer <token>" (grpc.WithPerRPCCredentials). They refuse
// to travel over a connection without transport security.
func BearerToken(tok Token) credentials.PerRPCCredentials {
	return bearerCredentials{value: tok.Value()}
}

type bearerCredentials struct{ value string }

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearerCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{authorizationKey: bearerScheme + " " + b.value}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// bearer token over plain text is a token given away.
func (bearerCredentials) RequireTransportSecurity() bool { return true }

// String keeps the token out of logs.
func (bearerCredentials) String() string { return "BearerToken(<redacted>)" }

// GoString is String.
func (b bearerCredentials) GoString() string { return b.String() }
