package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var configMaps = resource.MustLookup("ConfigMap")

// setData is a mutation that sets data k=v on ConfigMap name.
func setData(name, k, v string) store.Mutation {
	return store.Mutation{Namespace: "demo", Name: name, Mutate: func(o resource.Object) error {
		cm := o.(*meridianv1.ConfigMap)
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[k] = v
		return nil
	}}
}

// TestUpdateMany: many updates land in one transaction (one revision),
// each with Update's semantics: a missing object is ErrNotFound, an
// unchanged one writes nothing, a mutate's error is returned; groups
// larger than one transaction's limit are split.
func TestUpdateMany(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	const n = 150 // three transactions of at most 64
	var ms []store.Mutation
	for i := range n {
		storagetest.MustApply(t, s, storagetest.ConfigMap("demo", fmt.Sprintf("c-%03d", i), map[string]string{"k": "0"}))
		ms = append(ms, setData(fmt.Sprintf("c-%03d", i), "k", "1"))
	}
	ms = append(ms,
		setData("missing", "k", "1"),
		setData("c-149", "k", "2"), // the same object twice in one transaction's group: done in order
		store.Mutation{Namespace: "demo", Name: "c-001", Mutate: func(resource.Object) error { return errors.New("refused") }},
		store.Mutation{Namespace: "demo", Name: "c-002", Mutate: func(resource.Object) error { return nil }},
	)
	errs := s.UpdateMany(ctx, configMaps, ms)
	for i := range n {
		if errs[i] != nil {
			t.Errorf("%s: %v", ms[i].Name, errs[i])
		}
	}
	if !errors.Is(errs[n], store.ErrNotFound) {
		t.Errorf("missing: %v, want ErrNotFound", errs[n])
	}
	if errs[n+1] != nil {
		t.Errorf("c-149 again: %v", errs[n+1])
	}
	if errs[n+2] == nil || !strings.Contains(errs[n+2].Error(), "refused") {
		t.Errorf("a mutate's error: %v", errs[n+2])
	}
	if errs[n+3] != nil {
		t.Errorf("no change: %v", errs[n+3])
	}
	objs, _, err := s.List(ctx, configMaps, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	revs := map[string]bool{}
	for _, o := range objs {
		cm := o.(*meridianv1.ConfigMap)
		want := "1"
		if cm.GetMetadata().GetName() == "c-149" {
			want = "2"
		}
		if cm.GetData()["k"] != want {
			t.Errorf("%s: data %v", cm.GetMetadata().GetName(), cm.GetData())
		}
		revs[cm.GetMetadata().GetResourceVersion()] = true
	}
	// The others share 3 revisions (64 + 64 + 22); c-001 (refused) kept
	// its first one, and c-149's second write has its own.
	if len(revs) > 5 {
		t.Errorf("%d revisions for %d updates: not batched", len(revs), n)
	}
}

// TestUpdateManyConflict: when another writer changes an object of a
// batch between its read and its write, the batch's transaction writes
// nothing and each update is redone on the stored object, keeping the
// other writer's change.
func TestUpdateManyConflict(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	for _, name := range []string{"a", "b"} {
		storagetest.MustApply(t, s, storagetest.ConfigMap("demo", name, map[string]string{"k": "0"}))
	}
	var once atomic.Bool
	racing := store.Mutation{Namespace: "demo", Name: "a", Mutate: func(o resource.Object) error {
		if once.CompareAndSwap(false, true) {
			// Another writer, between this batch's read and its write.
			if _, err := s.Update(ctx, configMaps, "demo", "a", func(o resource.Object) error {
				o.(*meridianv1.ConfigMap).Data["other"] = "yes"
				return nil
			}); err != nil {
				return err
			}
		}
		o.(*meridianv1.ConfigMap).Data["k"] = "1"
		return nil
	}}
	errs := s.UpdateMany(ctx, configMaps, []store.Mutation{racing, setData("b", "k", "1")})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errs %v", errs)
	}
	a, err := s.Get(ctx, configMaps, "demo", "a")
	if err != nil {
		t.Fatal(err)
	}
	if d := a.(*meridianv1.ConfigMap).GetData(); d["k"] != "1" || d["other"] != "yes" {
		t.Errorf("a: %v, want both writers' changes", d)
	}
	b, err := s.Get(ctx, configMaps, "demo", "b")
	if err != nil {
		t.Fatal(err)
	}
	if d := b.(*meridianv1.ConfigMap).GetData(); d["k"] != "1" {
		t.Errorf("b: %v", d)
	}
}

// TestUpdateManyLargeObjects: objects that together exceed one
// transaction's size are written in several.
func TestUpdateManyLargeObjects(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	big := strings.Repeat("x", 400<<10)
	var ms []store.Mutation
	for i := range 4 { // 1.6 MiB in all: more than etcd takes in one request
		name := fmt.Sprintf("big-%d", i)
		storagetest.MustApply(t, s, storagetest.ConfigMap("demo", name, nil))
		ms = append(ms, setData(name, "blob", big))
	}
	for i, err := range s.UpdateMany(ctx, configMaps, ms) {
		if err != nil {
			t.Errorf("%s: %v", ms[i].Name, err)
		}
	}
}
