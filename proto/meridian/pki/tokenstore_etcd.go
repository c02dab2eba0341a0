package pki

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdTokenPrefix is the etcd key prefix of join token records:
// <prefix><id>.
const EtcdTokenPrefix = "/meridian/pki/tokens/"

// TokenRetention is how long the etcd store keeps a record after its
// token expired: long enough that a late join is told "expired" rather
// than "unknown", and that `meridian token list` shows what was used
// recently; then the record's lease ends and etcd deletes it, so expired
// tokens never pile up.
const TokenRetention = 24 * time.Hour

// revokeTimeout bounds the clean-up of a lease whose record was not
// created.
const revokeTimeout = 5 * time.Second

// EtcdTokenStore is a TokenStore in etcd: one JSON record per key under
// EtcdTokenPrefix, attached to a lease that ends TokenRetention after the
// token expires. Create and Update are transactions on the key's create
// and mod revisions; the mod revision is the record's version.
type EtcdTokenStore struct {
	cli    *clientv3.Client
	prefix string
}

var _ TokenStore = (*EtcdTokenStore)(nil)

// NewEtcdTokenStore returns a TokenStore over cli at EtcdTokenPrefix.
func NewEtcdTokenStore(cli *clientv3.Client) *EtcdTokenStore {
	return &EtcdTokenStore{cli: cli, prefix: EtcdTokenPrefix}
}

func (s *EtcdTokenStore) key(id string) string { return s.prefix + id }

// validID keeps IDs that could address another key (empty, or with a '/')
// out of etcd requests.
func validID(id string) bool { return id != "" && !strings.Contains(id, "/") }

// Create implements TokenStore.
func (s *EtcdTokenStore) Create(ctx context.Context, rec TokenRecord) (err error) {
	if !validID(rec.ID) {
		return fmt.Errorf("token ID %q: %w", rec.ID, ErrTokenMalformed)
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("failed to encode the token record: %w", err)
	}
	ttl := time.Until(rec.Expires)
	if ttl < 0 {
		ttl = 0
	}
	ttl += TokenRetention
	lease, err := s.cli.Grant(ctx, int64(ttl/time.Second)+1)
	if err != nil {
		return fmt.Errorf("failed to grant the token's lease: %w", err)
	}
	defer func() {
		if err != nil {
			// Best effort, even if ctx has ended: an orphaned lease ends by
			// itself, this only spares etcd the wait.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
			defer cancel()
			_, _ = s.cli.Revoke(rctx, lease.ID)
		}
	}()
	key := s.key(rec.ID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease.ID))).
		Commit()
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", key, err)
	}
	if !resp.Succeeded {
		return ErrTokenExists
	}
	return nil
}

// Get implements TokenStore.
func (s *EtcdTokenStore) Get(ctx context.Context, id string) (TokenRecord, int64, bool, error) {
	if !validID(id) {
		return TokenRecord{}, 0, false, nil
	}
	resp, err := s.cli.Get(ctx, s.key(id))
	if err != nil {
		return TokenRecord{}, 0, false, fmt.Errorf("failed to read %s: %w", s.key(id), err)
	}
	if len(resp.Kvs) == 0 {
		return TokenRecord{}, 0, false, nil
	}
	kv := resp.Kvs[0]
	var rec TokenRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return TokenRecord{}, 0, false, fmt.Errorf("failed to decode %s: %w", kv.Key, err)
	}
	return rec, kv.ModRevision, true, nil
}

// Update implements TokenStore. The record keeps its lease.
func (s *EtcdTokenStore) Update(ctx context.Context, rec TokenRecord, version int64) (bool, error) {
	if !validID(rec.ID) {
		return false, nil
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("failed to encode the token record: %w", err)
	}
	key := s.key(rec.ID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithIgnoreLease())).
		Commit()
	if err != nil {
		return false, fmt.Errorf("failed to update %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// Delete implements TokenStore.
func (s *EtcdTokenStore) Delete(ctx context.Context, id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	resp, err := s.cli.Delete(ctx, s.key(id))
	if err != nil {
		return false, fmt.Errorf("failed to delete %s: %w", s.key(id), err)
	}
	return resp.Deleted > 0, nil
}

// List implements TokenStore. etcd returns a range sorted by key, which
// here is by ID.
func (s *EtcdTokenStore) List(ctx context.Context) ([]TokenRecord, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("failed to list %s: %w", s.prefix, err)
	}
	recs := make([]TokenRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec TokenRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("failed to decode %s: %w", kv.Key, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
