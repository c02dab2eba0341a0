package pki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CAStore keeps the federation CA where every hub node finds it. It is
// called at hub start, from several nodes at once; implementations must be
// safe for concurrent use.
type CAStore interface {
	// Load returns the stored CA certificate and key in PEM, or found
	// false if there is none yet.
	Load(ctx context.Context) (certPEM, keyPEM []byte, found bool, err error)
	// CreateIfAbsent stores the CA if, and only if, none is stored yet —
	// atomically, as a compare-and-set — and reports whether it did. A
	// caller that did not win must Load the winner's CA.
	CreateIfAbsent(ctx context.Context, certPEM, keyPEM []byte) (won bool, err error)
}

// ensureAttempts bounds EnsureCA's load → create → reload loop. Two rounds
// suffice (a loser reloads what the winner stored); a third absorbs a store
// that deleted the CA in between.
const ensureAttempts = 3

// EnsureCA returns the federation CA from store, creating it (named
// commonName, valid for validity) if there is none. Hub nodes that race on
// first start end up with one CA: one wins CreateIfAbsent, the others load
// its CA. A stored CA that has expired is ErrCAExpired: the hub must not
// start with it (see README.md, rotation).
func EnsureCA(ctx context.Context, store CAStore, commonName string, validity time.Duration) (*CA, error) {
	for range ensureAttempts {
		certPEM, keyPEM, found, err := store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("failed to load the CA: %w", err)
		}
		if found {
			ca, err := LoadCA(certPEM, keyPEM)
			if err != nil {
				return nil, fmt.Errorf("failed to load the stored CA: %w", err)
			}
			if now := time.Now(); !now.Before(ca.cert.NotAfter) {
				return nil, fmt.Errorf("failed to load the stored CA: %w at %s", ErrCAExpired, ca.cert.NotAfter.UTC().Format(time.RFC3339))
			}
			return ca, nil
		}
		ca, err := NewCA(commonName, validity)
		if err != nil {
			return nil, fmt.Errorf("failed to create the CA: %w", err)
		}
		certPEM, keyPEM = ca.MarshalPEM()
		won, err := store.CreateIfAbsent(ctx, certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("failed to store the new CA: %w", err)
		}
		if won {
			return ca, nil
		}
		// Another hub node stored its CA between our Load and our
		// CreateIfAbsent: ours is thrown away, theirs is loaded next round.
	}
	return nil, errors.New("failed to ensure the CA: the store keeps reporting it both absent and present")
}

// EtcdCAKey is the etcd key of the federation CA.
const EtcdCAKey = "/meridian/pki/ca"

// EtcdCAStore is a CAStore in etcd: the certificate and key in one JSON
// value under EtcdCAKey, created by a transaction that succeeds only while
// the key does not exist. Anyone who can read that key holds the
// federation's root secret: protect etcd (client TLS, no shared access).
type EtcdCAStore struct {
	cli *clientv3.Client
	key string
}

var _ CAStore = (*EtcdCAStore)(nil)

// NewEtcdCAStore returns a CAStore over cli at EtcdCAKey.
func NewEtcdCAStore(cli *clientv3.Client) *EtcdCAStore {
	return &EtcdCAStore{cli: cli, key: EtcdCAKey}
}

// storedCA is the value under EtcdCAKey. PEM strings, not bytes, so that
// `etcdctl get` shows readable PEM.
type storedCA struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Load implements CAStore.
func (s *EtcdCAStore) Load(ctx context.Context) (certPEM, keyPEM []byte, found bool, err error) {
	resp, err := s.cli.Get(ctx, s.key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("failed to read %s: %w", s.key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil, false, nil
	}
	var v storedCA
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		// json errors name offsets and types, never the value.
		return nil, nil, false, fmt.Errorf("failed to decode %s: %w", s.key, err)
	}
	return []byte(v.Cert), []byte(v.Key), true, nil
}

// CreateIfAbsent implements CAStore.
func (s *EtcdCAStore) CreateIfAbsent(ctx context.Context, certPEM, keyPEM []byte) (bool, error) {
	val, err := json.Marshal(storedCA{Cert: string(certPEM), Key: string(keyPEM)})
	if err != nil {
		return false, fmt.Errorf("failed to encode the CA: %w", err)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.key), "=", 0)).
		Then(clientv3.OpPut(s.key, string(val))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("failed to create %s: %w", s.key, err)
	}
	return resp.Succeeded, nil
}
