// Package store keeps the hub's typed objects in etcd.
//
// It talks to etcd only through a *clientv3.Client, so the embedded single
// node, an embedded 3- or 5-node cluster and an external etcd are the same
// code. Every object lives under one key:
//
//	/meridian/objects/<plural>/<namespace>/<name>   namespaced kinds
//	/meridian/objects/<plural>/<name>               cluster-scoped kinds
//
// The value is the object's protobuf encoding with metadata.resourceVersion
// cleared; on every read resourceVersion is set to the key's etcd mod
// revision, so it is the optimistic-concurrency token of the object and the
// position of the change in the store's history at once.
//
// Writes are etcd transactions guarded by the revision they read
// (compare-and-swap); Apply and Update retry a lost race a bounded number of
// times unless the caller pinned a resourceVersion, in which case the loss is
// an ErrConflict. The server owns uid, creationTimestamp, generation and (on
// Apply) status, by the object rules of package storage (rules.go), which the
// member's bbolt store applies too.
//
// Generation: 1 on creation, then +1 on every write that changes anything
// outside metadata and status — the spec of kinds that have one, the data of
// those that do not (ConfigMap, Secret: their data is their desired state).
// Label, annotation and status changes alone leave it as it is.
//
// Namespaces: a namespaced object can only be created in an existing
// Namespace (checked in the creating transaction), and deleting a Namespace
// deletes every namespaced object in it in the same transaction.
package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Prefix is the etcd key prefix of every object.
const Prefix = "/meridian/objects/"

// maxAttempts bounds the read-modify-write loop of Apply (without a
// resourceVersion) and Update. Each lost attempt means another writer won,
// so the store as a whole makes progress; the bound only stops a single
// call from spinning under heavy contention on one object.
const maxAttempts = 10

// Store reads and writes typed objects in etcd. It is safe for concurrent
// use; it holds no state but its client, options and the writes waiting to
// be sent together (batch.go).
type Store struct {
	cli    *clientv3.Client
	now    func() time.Time
	newUID func() string
	batch  *batcher // concurrent writes of single objects, sent together
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that stamps creationTimestamp (tests).
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithUIDGenerator sets the generator of metadata.uid (tests). The default
// is a random UUID (v4).
func WithUIDGenerator(newUID func() string) Option {
	return func(s *Store) { s.newUID = newUID }
}

// New returns a Store over cli. The caller owns cli and closes it.
func New(cli *clientv3.Client, opts ...Option) *Store {
	s := &Store{cli: cli, now: time.Now, newUID: func() string { return uuid.NewString() }, batch: &batcher{cli: cli}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// KindPrefix is the key prefix of every object of a kind.
func KindPrefix(kind *resource.Kind) string { return Prefix + kind.Plural + "/" }

// ObjectKey is the etcd key of one object. The namespace of a cluster-scoped
// kind is ignored.
func ObjectKey(kind *resource.Kind, namespace, name string) string {
	if !kind.Namespaced || namespace == "" {
		return KindPrefix(kind) + name
	}
	return KindPrefix(kind) + namespace + "/" + name
}

// rangePrefix is the prefix of a List or Watch: a kind, or a kind in one
// namespace.
func rangePrefix(kind *resource.Kind, namespace string) string {
	if !kind.Namespaced || namespace == "" {
		return KindPrefix(kind)
	}
	return KindPrefix(kind) + namespace + "/"
}

// objectRef is one object's identity, checked: its key for messages and its
// etcd key.
type objectRef struct {
	kind *resource.Kind
	key  resource.Key
	etcd string
}

// ref returns the keys of an object from the key storage.CheckKey or
// storage.CheckObjectKey returned, or their error:
//
//	r, err := ref(storage.CheckKey(kind, namespace, name))
func ref(key resource.Key, err error) (objectRef, error) {
	if err != nil {
		return objectRef{}, err
	}
	return objectRef{kind: key.Kind, key: key, etcd: ObjectKey(key.Kind, key.Namespace, key.Name)}, nil
}

// namespaceKey is the etcd key of the Namespace an object lives in, or ""
// for cluster-scoped kinds.
func (r objectRef) namespaceKey() string {
	if !r.kind.Namespaced {
		return ""
	}
	return ObjectKey(namespaceKind, "", r.key.Namespace)
}

var namespaceKind = resource.MustLookup("Namespace")

// decodeKV decodes a key-value read from etcd.
func decodeKV(kind *resource.Kind, kv *mvccpb.KeyValue) (resource.Object, error) {
	obj, err := storage.Decode(kind, kv.Value, kv.ModRevision)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kv.Key, err)
	}
	return obj, nil
}

// Get returns one object. Reads are linearizable: a Get sees every write
// that completed before it began, whichever etcd member serves it.
func (s *Store) Get(ctx context.Context, kind *resource.Kind, namespace, name string) (resource.Object, error) {
	r, err := ref(storage.CheckKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	kv, err := s.read(ctx, r)
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, fmt.Errorf("%s %w", r.key, ErrNotFound)
	}
	return decodeKV(kind, kv)
}

// read returns the stored key-value of an object, or nil if there is none.
func (s *Store) read(ctx context.Context, r objectRef) (*mvccpb.KeyValue, error) {
	resp, err := s.cli.Get(ctx, r.etcd)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", r.key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0], nil
}

// List returns the objects of a kind in a namespace ("" for every namespace,
// and always for cluster-scoped kinds) whose labels match sel (nil matches
// everything), sorted by namespace and name, and the revision they were read
// at: Watch from that revision to follow the list without a gap.
func (s *Store) List(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector) ([]resource.Object, int64, error) {
	if kind == nil {
		return nil, 0, fmt.Errorf("%w: kind is required", ErrInvalid)
	}
	if strings.Contains(namespace, "/") {
		return nil, 0, fmt.Errorf("%w: namespace %q must not contain '/'", ErrInvalid, namespace)
	}
	prefix := rangePrefix(kind, namespace)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("failed to list %s: %w", kind.Plural, err)
	}
	out := make([]resource.Object, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		obj, err := decodeKV(kind, kv)
		if err != nil {
			return nil, 0, fmt.Errorf("failed to list %s: %w", kind.Plural, err)
		}
		if matches(sel, obj) {
			out = append(out, obj)
		}
	}
	// Key order is not (namespace, name) order: '-' and '.' sort before '/'.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].GetMetadata(), out[j].GetMetadata()
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
	return out, resp.Header.Revision, nil
}

// matches reports whether obj's labels match sel; a nil selector matches
// everything.
func matches(sel labels.Selector, obj resource.Object) bool {
	return sel == nil || sel.Matches(labels.Set(obj.GetMetadata().GetLabels()))
}

// Revision returns etcd's current revision: the resourceVersion of the most
// recent write to anything in the store's etcd.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, Prefix)
	if err != nil {
		return 0, fmt.Errorf("failed to read the current revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// Compact discards the history before rev (for tests and operations; the
// etcd node compacts on its own, see hub/etcdnode). Watches from an older
// revision then fail with ErrCompacted. Compacting to a revision at or below
// the last compaction returns an error that Is ErrCompacted.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if _, err := s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return fmt.Errorf("failed to compact to revision %d: %w", rev, ErrCompacted)
		}
		return fmt.Errorf("failed to compact to revision %d: %w", rev, err)
	}
	return nil
}
