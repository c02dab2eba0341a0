package storagetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func testUpdate(f *fixture) {
	f.apply(Namespace("demo"))
	created, _ := f.apply(Deployment("demo", "web", 1, nil))

	// A status write: generation stays, resourceVersion moves.
	got, err := f.st.Update(f.ctx, deployments, "demo", "web", func(o resource.Object) error {
		d := o.(*meridianv1.Deployment)
		d.Status = &meridianv1.DeploymentStatus{ObservedGeneration: d.Metadata.Generation, ReadyReplicas: 1}
		d.Metadata.Uid = "ignored"
		d.Metadata.Generation = 99
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if got.GetMetadata().GetGeneration() != 1 || got.GetMetadata().GetUid() != created.GetMetadata().GetUid() ||
		f.rv(got) <= f.rv(created) || f.rv(got) != f.revision() || got.(*meridianv1.Deployment).GetStatus().GetReadyReplicas() != 1 {
		f.Fatalf("status update = %v", got)
	}
	if stored, err := f.st.Get(f.ctx, deployments, "demo", "web"); err != nil || !proto.Equal(stored, got) {
		f.Fatalf("Get after Update = %v, %v; want %v", stored, err, got)
	}

	// A spec change bumps generation.
	got, err = f.st.Update(f.ctx, deployments, "demo", "web", func(o resource.Object) error {
		o.(*meridianv1.Deployment).Spec.Replicas = proto.Int32(5)
		return nil
	})
	if err != nil || got.GetMetadata().GetGeneration() != 2 {
		f.Fatalf("spec update = %v, %v", got, err)
	}

	// No change, no write.
	before := f.revision()
	same, err := f.st.Update(f.ctx, deployments, "demo", "web", func(resource.Object) error { return nil })
	if err != nil || f.rv(same) != f.rv(got) || f.revision() != before {
		f.Fatalf("no-op update = %v, %v", same, err)
	}

	// Apply keeps the status a controller wrote.
	applied, _ := f.apply(Deployment("demo", "web", 6, nil))
	if applied.(*meridianv1.Deployment).GetStatus().GetReadyReplicas() != 1 || applied.GetMetadata().GetGeneration() != 3 {
		f.Fatalf("apply after a status update = %v", applied)
	}

	errStop := errors.New("stop")
	if _, err := f.st.Update(f.ctx, deployments, "demo", "web", func(resource.Object) error { return errStop }); !errors.Is(err, errStop) {
		f.Fatalf("Update with a failing mutate = %v", err)
	}
	if _, err := f.st.Update(f.ctx, deployments, "demo", "web", func(o resource.Object) error {
		resource.Meta(o).Name = "other"
		return nil
	}); !errors.Is(err, storage.ErrInvalid) {
		f.Fatalf("renaming Update = %v, want ErrInvalid", err)
	}
	if _, err := f.st.Update(f.ctx, deployments, "demo", "nope", func(resource.Object) error { return nil }); !errors.Is(err, storage.ErrNotFound) {
		f.Fatalf("Update of a missing object = %v, want ErrNotFound", err)
	}
	if _, err := f.st.Update(f.ctx, deployments, "", "web", func(resource.Object) error { return nil }); !errors.Is(err, storage.ErrInvalid) {
		f.Fatalf("Update without a namespace = %v, want ErrInvalid", err)
	}
}

// Update is a compare-and-swap loop: concurrent increments are all kept.
func testUpdateConcurrentIncrements(f *fixture) {
	f.apply(Namespace("demo"))
	f.apply(ConfigMap("demo", "counter", map[string]string{"n": "0"}))

	const workers, increments = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*increments)
	for range workers {
		wg.Go(func() {
			for range increments {
				_, err := f.st.Update(f.ctx, configMaps, "demo", "counter", func(o resource.Object) error {
					cm := o.(*meridianv1.ConfigMap)
					n, err := strconv.Atoi(cm.Data["n"])
					if err != nil {
						return err
					}
					cm.Data["n"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.Fatalf("Update: %v", err)
	}
	got, err := f.st.Get(f.ctx, configMaps, "demo", "counter")
	if err != nil {
		f.Fatal(err)
	}
	if n := got.(*meridianv1.ConfigMap).Data["n"]; n != strconv.Itoa(workers*increments) {
		f.Fatalf("counter = %s, want %d", n, workers*increments)
	}
	if g := got.GetMetadata().GetGeneration(); g != 1+workers*increments {
		f.Fatalf("generation = %d, want %d", g, 1+workers*increments)
	}
}

func testDelete(f *fixture) {
	f.apply(Namespace("demo"))
	created, _ := f.apply(Deployment("demo", "web", 1, nil))
	updated, _ := f.apply(Deployment("demo", "web", 2, nil))

	_, err := f.st.Delete(f.ctx, deployments, "demo", "web", created.GetMetadata().GetResourceVersion())
	var conflict *storage.ConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, storage.ErrConflict) {
		f.Fatalf("Delete with a stale resourceVersion = %v, want a ConflictError", err)
	}
	if conflict.Requested != f.rv(created) || conflict.Current != f.rv(updated) || conflict.Key != "deployments/demo/web" {
		f.Fatalf("conflict = %+v", conflict)
	}

	last, err := f.st.Delete(f.ctx, deployments, "demo", "web", updated.GetMetadata().GetResourceVersion())
	if err != nil {
		f.Fatal(err)
	}
	now := f.revision()
	if f.rv(last) != now || now != f.rv(updated)+1 || last.GetMetadata().GetUid() != updated.GetMetadata().GetUid() ||
		last.(*meridianv1.Deployment).GetSpec().GetReplicas() != 2 {
		f.Fatalf("Delete returned %v, want the last state at revision %d", last, now)
	}
	if _, err := f.st.Get(f.ctx, deployments, "demo", "web"); !errors.Is(err, storage.ErrNotFound) {
		f.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if _, err := f.st.Delete(f.ctx, deployments, "demo", "web", ""); !errors.Is(err, storage.ErrNotFound) ||
		err.Error() != "deployments/demo/web not found" {
		f.Fatalf("second Delete = %v, want \"deployments/demo/web not found\"", err)
	}
	// Unconditional delete.
	f.apply(Deployment("demo", "api", 1, nil))
	if _, err := f.st.Delete(f.ctx, deployments, "demo", "api", ""); err != nil {
		f.Fatal(err)
	}
	// Created again, it is a new object.
	again, res := f.apply(Deployment("demo", "web", 1, nil))
	if res != storage.Created || again.GetMetadata().GetUid() == updated.GetMetadata().GetUid() || again.GetMetadata().GetGeneration() != 1 {
		f.Fatalf("re-created = %v %v", res, again)
	}
}

func testNamespaceDeleteCascades(f *fixture) {
	for _, ns := range []string{"a", "a-b"} {
		f.apply(Namespace(ns))
		f.apply(Deployment(ns, "web", 1, nil))
		f.apply(Deployment(ns, "api", 1, nil))
		f.apply(ConfigMap(ns, "settings", map[string]string{"k": "v"}))
	}
	nsObj, err := f.st.Delete(f.ctx, namespaces, "", "a", "")
	if err != nil {
		f.Fatal(err)
	}
	if nsObj.GetMetadata().GetName() != "a" || f.rv(nsObj) != f.revision() {
		f.Fatalf("Delete(namespace a) = %v, want its last state at the current revision", nsObj)
	}
	var left []string
	for _, k := range []*resource.Kind{namespaces, deployments, configMaps} {
		objs, _, err := f.st.List(f.ctx, k, "", nil)
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range names(objs) {
			left = append(left, k.Plural+"/"+n)
		}
	}
	want := []string{"namespaces/a-b", "deployments/a-b/api", "deployments/a-b/web", "configmaps/a-b/settings"}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		f.Fatalf("objects after deleting namespace a:\n%v\nwant\n%v", left, want)
	}
	// And nothing can be created in it any more.
	_, _, err = f.st.Apply(f.ctx, Deployment("a", "web", 1, nil), storage.ApplyOptions{})
	if !errors.Is(err, storage.ErrNotFound) || err.Error() != `cannot create deployments/a/web: namespace "a" not found` {
		f.Fatalf("Apply in a deleted namespace = %v", err)
	}
}

// Every write takes a new revision, reads and failed or empty writes take
// none, and a deleted object's revision is not reused.
func testRevisionOnlyGrows(f *fixture) {
	start := f.revision()
	ns, _ := f.apply(Namespace("demo"))
	if f.rv(ns) <= start || f.revision() != f.rv(ns) {
		f.Fatalf("namespace at %d, store from %d to %d", f.rv(ns), start, f.revision())
	}
	seen := map[int64]bool{f.rv(ns): true}
	last := f.rv(ns)
	step := func(what string, rev int64) {
		f.Helper()
		if rev <= last || seen[rev] {
			f.Fatalf("%s at revision %d after %d", what, rev, last)
		}
		seen[rev], last = true, rev
	}
	for i := range 3 {
		d, _ := f.apply(Deployment("demo", "web", int32(i), nil))
		step("apply", f.rv(d))
	}
	gone, err := f.st.Delete(f.ctx, deployments, "demo", "web", "")
	if err != nil {
		f.Fatal(err)
	}
	step("delete", f.rv(gone))
	if _, _, err := f.st.Apply(f.ctx, Deployment("nope", "web", 1, nil), storage.ApplyOptions{}); err == nil {
		f.Fatal("apply in a missing namespace succeeded")
	}
	if _, err := f.st.Delete(f.ctx, deployments, "demo", "web", ""); err == nil {
		f.Fatal("second delete succeeded")
	}
	if _, _, err := f.st.List(f.ctx, deployments, "", nil); err != nil {
		f.Fatal(err)
	}
	if now := f.revision(); now != last {
		f.Fatalf("revision moved from %d to %d without a write", last, now)
	}
	d, res := f.apply(Deployment("demo", "web", 1, nil))
	if res != storage.Created {
		f.Fatalf("re-create = %v", res)
	}
	step("re-create", f.rv(d))
}
