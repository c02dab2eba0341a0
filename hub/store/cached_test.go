package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// txnCounter counts the etcd transactions (round trips) of a client.
type txnCounter struct {
	clientv3.KV
	n atomic.Int64
}

func (c *txnCounter) Txn(ctx context.Context) clientv3.Txn {
	c.n.Add(1)
	return c.KV.Txn(ctx)
}

// countTxns makes cli count its transactions.
func countTxns(cli *clientv3.Client) *txnCounter {
	c := &txnCounter{KV: cli.KV}
	cli.KV = c
	return c
}

// revisionOf is the etcd revision of the store (to count round trips
// that wrote: each write is one revision).
func revisionOf(t *testing.T, s *store.Store) int64 {
	t.Helper()
	rev, err := s.Revision(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestUpdateCached: an update from the caller's copy writes on that copy
// when it is current; when another writer changed the object since, the
// update is redone on the stored object and keeps that writer's change;
// a copy that needs no change is checked against the stored object; a
// deleted object is ErrNotFound.
func TestUpdateCached(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	cached, _ := storagetest.MustApply(t, s, storagetest.ConfigMap("demo", "a", map[string]string{"k": "0"}))
	set := func(k, v string) func(resource.Object) error {
		return func(o resource.Object) error {
			o.(*meridianv1.ConfigMap).Data[k] = v
			return nil
		}
	}

	txns := countTxns(cli)
	got, err := s.UpdateCached(ctx, cached, set("k", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if n := txns.n.Load(); n != 1 {
		t.Errorf("%d etcd round trips for an update from a current copy, want 1", n)
	}
	if got.GetMetadata().GetResourceVersion() == cached.GetMetadata().GetResourceVersion() {
		t.Errorf("resourceVersion not advanced: %s", got.GetMetadata().GetResourceVersion())
	}
	if cached.(*meridianv1.ConfigMap).GetData()["k"] != "0" {
		t.Errorf("the caller's copy was modified: %v", cached.(*meridianv1.ConfigMap).GetData())
	}

	// cached is stale now: another writer's change must survive.
	if _, err := s.Update(ctx, configMaps, "demo", "a", set("other", "yes")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCached(ctx, cached, set("k", "2")); err != nil {
		t.Fatal(err)
	}
	a, err := s.Get(ctx, configMaps, "demo", "a")
	if err != nil {
		t.Fatal(err)
	}
	if d := a.(*meridianv1.ConfigMap).GetData(); d["k"] != "2" || d["other"] != "yes" {
		t.Errorf("after a stale copy: %v, want k=2 and the other writer's change", d)
	}

	// On the stale copy k=0 would need no change; on the stored object
	// (k=2) it does.
	if _, err := s.UpdateCached(ctx, cached, set("k", "0")); err != nil {
		t.Fatal(err)
	}
	a, _ = s.Get(ctx, configMaps, "demo", "a")
	if d := a.(*meridianv1.ConfigMap).GetData(); d["k"] != "0" {
		t.Errorf("a change the copy did not need was not written: %v", d)
	}

	if _, err := s.Delete(ctx, configMaps, "demo", "a", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCached(ctx, a, set("k", "3")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a deleted object: %v, want ErrNotFound", err)
	}
}

// TestApplyCached: an apply from the caller's copy (or from knowing of
// none) writes at once when the copy is current, and when it is not is
// redone with Apply's semantics on what is stored.
func TestApplyCached(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))

	// Known absent, and absent: a create, in one round trip.
	txns := countTxns(cli)
	out, res, err := s.ApplyCached(ctx, storagetest.ConfigMap("demo", "a", map[string]string{"k": "0"}), nil)
	if err != nil || res != storage.Created {
		t.Fatalf("create: %v %v", res, err)
	}
	if n := txns.n.Load(); n != 1 {
		t.Errorf("%d etcd round trips for a create, want 1", n)
	}
	// Believed absent, but present: configured over the stored object.
	if _, res, err = s.ApplyCached(ctx, storagetest.ConfigMap("demo", "a", map[string]string{"k": "1"}), nil); err != nil || res != storage.Configured {
		t.Fatalf("apply over an object the caller did not know of: %v %v", res, err)
	}
	// A stale copy: redone on the stored object (k=1), which it changes.
	if _, res, err = s.ApplyCached(ctx, storagetest.ConfigMap("demo", "a", map[string]string{"k": "2"}), out); err != nil || res != storage.Configured {
		t.Fatalf("apply from a stale copy: %v %v", res, err)
	}
	cur, err := s.Get(ctx, configMaps, "demo", "a")
	if err != nil {
		t.Fatal(err)
	}
	if d := cur.(*meridianv1.ConfigMap).GetData(); d["k"] != "2" {
		t.Errorf("data %v, want k=2", d)
	}
	// The stale copy says k=0 (no change from it); the store has k=2.
	if _, res, err = s.ApplyCached(ctx, storagetest.ConfigMap("demo", "a", map[string]string{"k": "0"}), out); err != nil || res != storage.Configured {
		t.Fatalf("apply the stale copy's content: %v %v, want Configured", res, err)
	}
	// A current copy with nothing to change: Unchanged, nothing written.
	cur, _ = s.Get(ctx, configMaps, "demo", "a")
	before := revisionOf(t, s)
	if _, res, err = s.ApplyCached(ctx, storagetest.ConfigMap("demo", "a", map[string]string{"k": "0"}), cur); err != nil || res != storage.Unchanged {
		t.Fatalf("apply with no change: %v %v", res, err)
	}
	if rev := revisionOf(t, s); rev != before {
		t.Errorf("an unchanged apply wrote (revision %d → %d)", before, rev)
	}
	// A create in a namespace that does not exist is refused as Apply refuses it.
	if _, _, err = s.ApplyCached(ctx, storagetest.ConfigMap("nowhere", "a", nil), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("create in a missing namespace: %v, want ErrNotFound", err)
	}
}

// TestUpdateManyCached: mutations with a current copy are written
// without a read, each object on its own condition: a stale copy costs
// that object a retry on the stored object (keeping the other writer's
// change) and not the others.
func TestUpdateManyCached(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	var copies []resource.Object
	for i := range 5 {
		o, _ := storagetest.MustApply(t, s, storagetest.ConfigMap("demo", fmt.Sprintf("c-%d", i), map[string]string{"k": "0"}))
		copies = append(copies, o)
	}
	// c-2's copy goes stale.
	if _, err := s.Update(ctx, configMaps, "demo", "c-2", func(o resource.Object) error {
		o.(*meridianv1.ConfigMap).Data["other"] = "yes"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var ms []store.Mutation
	for i, c := range copies {
		m := setData(fmt.Sprintf("c-%d", i), "k", "1")
		m.Cached = c
		ms = append(ms, m)
	}
	ms = append(ms, setData("c-0", "seen", "twice")) // no copy, and a key again
	txns := countTxns(cli)
	for i, err := range s.UpdateMany(ctx, configMaps, ms) {
		if err != nil {
			t.Errorf("mutation %d: %v", i, err)
		}
	}
	// One transaction writes the four current copies (and reads c-2,
	// whose copy is stale); one more writes c-2; c-0's second mutation,
	// on a key the group already has, is an Update (a read, a write).
	if n := txns.n.Load(); n != 4 {
		t.Errorf("%d etcd round trips, want 4", n)
	}
	for i := range 5 {
		o, err := s.Get(ctx, configMaps, "demo", fmt.Sprintf("c-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		d := o.(*meridianv1.ConfigMap).GetData()
		if d["k"] != "1" {
			t.Errorf("c-%d: %v, want k=1", i, d)
		}
		if i == 2 && d["other"] != "yes" {
			t.Errorf("c-2: %v, lost the other writer's change", d)
		}
		if i == 0 && d["seen"] != "twice" {
			t.Errorf("c-0: %v, lost its second mutation", d)
		}
	}
}

// TestCreateMany: objects are created in one transaction, each on its own
// condition: one whose name is taken is ErrAlreadyExists and one whose
// namespace is missing ErrNotFound, without holding up the others.
func TestCreateMany(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	storagetest.MustApply(t, s, storagetest.ConfigMap("demo", "taken", map[string]string{"k": "old"}))
	var objs []resource.Object
	for i := range 70 { // two transactions
		objs = append(objs, storagetest.ConfigMap("demo", fmt.Sprintf("c-%02d", i), map[string]string{"k": "v"}))
	}
	objs = append(objs,
		storagetest.ConfigMap("demo", "taken", map[string]string{"k": "new"}),
		storagetest.ConfigMap("nowhere", "x", nil),
	)
	errs := s.CreateMany(ctx, objs)
	for i := range 70 {
		if errs[i] != nil {
			t.Errorf("%s: %v", objs[i].GetMetadata().GetName(), errs[i])
		}
	}
	if !errors.Is(errs[70], store.ErrAlreadyExists) {
		t.Errorf("taken: %v, want ErrAlreadyExists", errs[70])
	}
	if !errors.Is(errs[71], store.ErrNotFound) {
		t.Errorf("missing namespace: %v, want ErrNotFound", errs[71])
	}
	got, _, err := s.List(ctx, configMaps, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 71 {
		t.Errorf("%d ConfigMaps, want 71", len(got))
	}
	for _, o := range got {
		md := o.GetMetadata()
		if md.GetUid() == "" || md.GetGeneration() != 1 || md.GetCreationTimestamp() == nil {
			t.Errorf("%s: server fields not set: %v", md.GetName(), md)
		}
		if md.GetName() == "taken" && o.(*meridianv1.ConfigMap).GetData()["k"] != "old" {
			t.Errorf("taken was overwritten: %v", o)
		}
	}
	// The 70 creates took two revisions, not 70.
	resp, err := cli.Get(ctx, store.ObjectKey(configMaps, "demo", "c-00"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	resp2, err := cli.Get(ctx, store.ObjectKey(configMaps, "demo", "c-69"), clientv3.WithSerializable())
	if err != nil || len(resp2.Kvs) != 1 {
		t.Fatal(resp2, err)
	}
	if d := resp2.Kvs[0].ModRevision - resp.Kvs[0].ModRevision; d != 1 {
		t.Errorf("c-00 at revision %d, c-69 at %d: want two consecutive transactions", resp.Kvs[0].ModRevision, resp2.Kvs[0].ModRevision)
	}
}
