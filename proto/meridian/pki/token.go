package pki

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A token is "<id>.<secret>", like a kubeadm bootstrap token: the ID is
// public (it names the token in listings, logs and errors), the secret is
// known only to whoever holds the token. The store keeps the SHA-256 of the
// secret, never the secret. A 32-character secret in [a-z0-9] carries 165
// random bits, so the hash cannot be reversed by trying secrets.
const (
	tokenIDLen     = 6
	tokenSecretLen = 32
	tokenAlphabet  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// verifyAttempts bounds Verify's read → mark used loop for a single-use
// token: a lost compare-and-set is re-read once and then reports ErrTokenUsed.
const verifyAttempts = 3

// Usage is what a join token may be traded for.
type Usage string

// Usages. A token allows only the usages it was made with.
const (
	// UsageJoinMember: a member certificate (the default).
	UsageJoinMember Usage = "join-member"
	// UsageJoinHub: a hub node certificate.
	UsageJoinHub Usage = "join-hub"
	// UsageJoinAdmin: an admin client certificate.
	UsageJoinAdmin Usage = "join-admin"
)

// JoinUsage returns the usage a token needs to obtain a certificate for
// role.
func JoinUsage(role Role) Usage { return Usage("join-" + string(role)) }

func (u Usage) valid() bool {
	switch u {
	case UsageJoinMember, UsageJoinHub, UsageJoinAdmin:
		return true
	}
	return false
}

// Token is a bearer token as its holder has it: ID and secret. It formats
// as "<id>.<redacted>" so that logging one by mistake leaks nothing; Value
// returns the whole token.
type Token struct {
	id     string
	secret string
}

// ParseToken parses "<id>.<secret>": ErrTokenMalformed if it is not of that
// form. The error never repeats the input.
func ParseToken(s string) (Token, error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok || len(id) != tokenIDLen || len(secret) != tokenSecretLen || !inAlphabet(id) || !inAlphabet(secret) {
		return Token{}, fmt.Errorf("%w: want %d and %d characters of [a-z0-9] joined by '.'", ErrTokenMalformed, tokenIDLen, tokenSecretLen)
	}
	return Token{id: id, secret: secret}, nil
}

// ID returns the token's public ID.
func (t Token) ID() string { return t.id }

// Value returns the whole token, "<id>.<secret>": the secret to hand to
// its user once, and never to log.
func (t Token) Value() string { return t.id + "." + t.secret }

// String returns "<id>.<redacted>".
func (t Token) String() string { return t.id + ".<redacted>" }

// GoString is String, so that %#v never prints the secret.
func (t Token) GoString() string { return "pki.Token(" + t.String() + ")" }

// hash is what a store keeps of the token.
func (t Token) hash() []byte { return hashSecret(t.secret) }

// matches compares the token's secret with a stored hash in constant time.
func (t Token) matches(stored []byte) bool {
	return subtle.ConstantTimeCompare(t.hash(), stored) == 1
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// newRandomToken draws an ID and a secret.
func newRandomToken() (Token, error) {
	id, err := randomString(tokenIDLen)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(tokenSecretLen)
	if err != nil {
		return Token{}, err
	}
	return Token{id: id, secret: secret}, nil
}

// randomString returns n characters drawn uniformly from tokenAlphabet,
// rejecting the bytes that would bias the draw (252 = 7·36).
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(tokenAlphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("failed to read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, tokenAlphabet[int(b)%len(tokenAlphabet)])
			}
		}
	}
	return string(out), nil
}

func inAlphabet(s string) bool {
	for _, c := range []byte(s) {
		if !strings.ContainsRune(tokenAlphabet, rune(c)) {
			return false
		}
	}
	return true
}

// TokenRecord is what the hub stores of a join token: no secret, its hash.
// Set the optional fields (Cluster, SingleUse, Description) between
// NewToken and Tokens.Add.
type TokenRecord struct {
	// ID is the token's public ID.
	ID string `json:"id"`
	// SecretHash is the SHA-256 of the token's secret.
	SecretHash []byte `json:"secretHash"`
	// Usages are what the token may be traded for.
	Usages []Usage `json:"usages"`
	// Created and Expires bound the token's life.
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Cluster, if set, binds the token to one name: only a join as that
	// cluster (or hub node, or admin) is accepted.
	Cluster string `json:"cluster,omitempty"`
	// SingleUse makes the first successful Verify the last.
	SingleUse bool `json:"singleUse,omitempty"`
	// Description is free text for `meridian token list`.
	Description string `json:"description,omitempty"`
	// UsedAt and UsedBy record the use of a single-use token.
	UsedAt time.Time `json:"usedAt,omitzero"`
	UsedBy string    `json:"usedBy,omitempty"`
}

// Allows reports whether the token may be used for u.
func (r TokenRecord) Allows(u Usage) bool {
	for _, have := range r.Usages {
		if have == u {
			return true
		}
	}
	return false
}

// NewToken makes a random join token valid for ttl from now, for usages
// (UsageJoinMember if none), and the record to store for it with
// Tokens.Add. Hand token.Value() to its user once; only the record is kept.
func NewToken(ttl time.Duration, usages ...Usage) (Token, TokenRecord, error) {
	if ttl <= 0 {
		return Token{}, TokenRecord{}, fmt.Errorf("token TTL: %w", ErrInvalidValidity)
	}
	if len(usages) == 0 {
		usages = []Usage{UsageJoinMember}
	}
	for _, u := range usages {
		if !u.valid() {
			return Token{}, TokenRecord{}, fmt.Errorf("unknown token usage %q: want %s, %s or %s", u, UsageJoinMember, UsageJoinHub, UsageJoinAdmin)
		}
	}
	tok, err := newRandomToken()
	if err != nil {
		return Token{}, TokenRecord{}, fmt.Errorf("failed to generate a token: %w", err)
	}
	now := time.Now().UTC()
	return tok, TokenRecord{
		ID:         tok.id,
		SecretHash: tok.hash(),
		Usages:     append([]Usage(nil), usages...),
		Created:    now,
		Expires:    now.Add(ttl),
	}, nil
}

// TokenStore keeps token records. Implementations must be safe for
// concurrent use; every hub node verifies tokens against the same store.
type TokenStore interface {
	// Create stores rec under rec.ID: ErrTokenExists if the ID is taken.
	// A store may forget a record some time after it expires.
	Create(ctx context.Context, rec TokenRecord) error
	// Get returns the record with this ID and an opaque version for
	// Update, or found false.
	Get(ctx context.Context, id string) (rec TokenRecord, version int64, found bool, err error)
	// Update replaces the record if it is still at version (a
	// compare-and-set) and reports whether it did.
	Update(ctx context.Context, rec TokenRecord, version int64) (won bool, err error)
	// Delete removes the record and reports whether there was one.
	Delete(ctx context.Context, id string) (found bool, err error)
	// List returns every record, ordered by ID.
	List(ctx context.Context) ([]TokenRecord, error)
}

// TokenUse is what a token is presented for.
type TokenUse struct {
	// Usage the token must allow; required.
	Usage Usage
	// Cluster is the name being joined as: checked against a bound
	// token's Cluster, recorded as UsedBy.
	Cluster string
}

// Tokens issues, verifies and revokes join tokens kept in a TokenStore.
// It is safe for concurrent use if the store is.
type Tokens struct {
	store TokenStore
}

// NewTokens returns Tokens over store.
func NewTokens(store TokenStore) *Tokens { return &Tokens{store: store} }

// Add stores a record made by NewToken: ErrTokenExists if its ID is taken
// (draw another token).
func (t *Tokens) Add(ctx context.Context, rec TokenRecord) error {
	if len(rec.SecretHash) != sha256.Size || rec.ID == "" {
		return errors.New("failed to add the token: the record has no ID or secret hash; make it with NewToken")
	}
	if err := t.store.Create(ctx, rec); err != nil {
		return fmt.Errorf("failed to add token %s: %w", rec.ID, err)
	}
	return nil
}

// Verify checks a presented token for use at now and returns its record.
// The errors, tested with errors.Is: ErrTokenMalformed, ErrTokenUnknown
// (no such ID, or a wrong secret), ErrTokenExpired, ErrTokenUsage (wrong
// usage or cluster name), ErrTokenUsed (a single-use token already used);
// anything else is the store failing. A single-use token is marked used by
// a compare-and-set, so of several concurrent callers exactly one succeeds.
func (t *Tokens) Verify(ctx context.Context, token string, use TokenUse, now time.Time) (TokenRecord, error) {
	if use.Usage == "" {
		return TokenRecord{}, errors.New("failed to verify a token: the caller named no usage to check it for")
	}
	tok, err := ParseToken(token)
	if err != nil {
		return TokenRecord{}, err
	}
	for range verifyAttempts {
		rec, version, found, err := t.store.Get(ctx, tok.id)
		if err != nil {
			return TokenRecord{}, fmt.Errorf("failed to read token %s: %w", tok.id, err)
		}
		if !found || !tok.matches(rec.SecretHash) {
			return TokenRecord{}, fmt.Errorf("token %s: %w", tok.id, ErrTokenUnknown)
		}
		if !now.Before(rec.Expires) {
			return TokenRecord{}, fmt.Errorf("token %s: %w at %s", tok.id, ErrTokenExpired, rec.Expires.UTC().Format(time.RFC3339))
		}
		if !rec.Allows(use.Usage) {
			return TokenRecord{}, fmt.Errorf("token %s: %w: it allows %v, not %s", tok.id, ErrTokenUsage, rec.Usages, use.Usage)
		}
		if rec.Cluster != "" && rec.Cluster != use.Cluster {
			return TokenRecord{}, fmt.Errorf("token %s: %w: it is bound to %q, not %q", tok.id, ErrTokenUsage, rec.Cluster, use.Cluster)
		}
		if !rec.SingleUse {
			return rec, nil
		}
		if !rec.UsedAt.IsZero() {
			return TokenRecord{}, fmt.Errorf("token %s: %w by %q at %s", tok.id, ErrTokenUsed, rec.UsedBy, rec.UsedAt.UTC().Format(time.RFC3339))
		}
		rec.UsedAt, rec.UsedBy = now.UTC(), use.Cluster
		won, err := t.store.Update(ctx, rec, version)
		if err != nil {
			return TokenRecord{}, fmt.Errorf("failed to mark token %s used: %w", tok.id, err)
		}
		if won {
			return rec, nil
		}
		// Someone changed the record since we read it (most likely another
		// caller used it): read it again, which reports ErrTokenUsed.
	}
	return TokenRecord{}, fmt.Errorf("token %s: %w (it kept changing while being used)", tok.id, ErrTokenUsed)
}

// Revoke deletes a token by ID: ErrTokenUnknown if there is none.
func (t *Tokens) Revoke(ctx context.Context, id string) error {
	found, err := t.store.Delete(ctx, id)
	if err != nil {
		return fmt.Errorf("failed to revoke token %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("failed to revoke token %s: %w", id, ErrTokenUnknown)
	}
	return nil
}

// List returns every stored token record, ordered by ID.
func (t *Tokens) List(ctx context.Context) ([]TokenRecord, error) {
	recs, err := t.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to list tokens: %w", err)
	}
	return recs, nil
}
