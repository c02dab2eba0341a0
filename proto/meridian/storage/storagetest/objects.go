package storagetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func testGetAndList(f *fixture) {
	// "a-b" sorts before "a/" in key order; List must still put namespace
	// "a" first, and a List of "a" must not include "a-b".
	for _, ns := range []string{"b", "a-b", "a"} {
		f.apply(Namespace(ns))
	}
	f.apply(Deployment("b", "z", 1, map[string]string{"tier": "web"}))
	f.apply(Deployment("a-b", "x", 1, map[string]string{"tier": "db"}))
	f.apply(Deployment("a", "y", 1, map[string]string{"tier": "web"}))
	last, _ := f.apply(Deployment("a", "x", 1, map[string]string{"tier": "web", "canary": "true"}))

	got, err := f.st.Get(f.ctx, deployments, "a", "x")
	if err != nil {
		f.Fatal(err)
	}
	if !proto.Equal(got, last) {
		f.Fatalf("Get = %v, want what Apply returned: %v", got, last)
	}
	if _, err := f.st.Get(f.ctx, deployments, "a", "nope"); !errors.Is(err, storage.ErrNotFound) ||
		err.Error() != "deployments/a/nope not found" {
		f.Fatalf("Get(missing) = %v, want \"deployments/a/nope not found\"", err)
	}
	// A namespace given for a cluster-scoped kind is ignored.
	if _, err := f.st.Get(f.ctx, namespaces, "ignored", "a"); err != nil {
		f.Fatalf("Get(namespace a) = %v", err)
	}

	tests := []struct {
		ns   string
		sel  string
		want []string
	}{
		{"", "", []string{"a/x", "a/y", "a-b/x", "b/z"}},
		{"a", "", []string{"a/x", "a/y"}},
		{"a-b", "", []string{"a-b/x"}},
		{"", "tier=web", []string{"a/x", "a/y", "b/z"}},
		{"", "tier=web,!canary", []string{"a/y", "b/z"}},
		{"a", "tier in (db)", []string{}},
		{"nope", "", []string{}},
	}
	for _, tt := range tests {
		var sel labels.Selector
		if tt.sel != "" {
			if sel, err = labels.Parse(tt.sel); err != nil {
				f.Fatal(err)
			}
		}
		objs, listRev, err := f.st.List(f.ctx, deployments, tt.ns, sel)
		if err != nil {
			f.Fatalf("List(%q, %q): %v", tt.ns, tt.sel, err)
		}
		if fmt.Sprint(names(objs)) != fmt.Sprint(tt.want) {
			f.Errorf("List(%q, %q) = %v, want %v", tt.ns, tt.sel, names(objs), tt.want)
		}
		if listRev != f.rv(last) {
			f.Errorf("List revision = %d, want %d (the last write)", listRev, f.rv(last))
		}
	}

	nss, _, err := f.st.List(f.ctx, namespaces, "", nil)
	if err != nil {
		f.Fatal(err)
	}
	if fmt.Sprint(names(nss)) != "[a a-b b]" {
		f.Fatalf("namespaces = %v", names(nss))
	}
	if cur := f.revision(); cur != f.rv(last) {
		f.Fatalf("Revision = %d, want %d", cur, f.rv(last))
	}
}

func testInvalidRequests(f *fixture) {
	f.apply(Namespace("demo"))
	noName := Deployment("demo", "", 1, nil)
	noNamespace := Deployment("", "web", 1, nil)
	slash := Deployment("demo", "a/b", 1, nil)
	badRV := Deployment("demo", "web", 1, nil)
	badRV.Metadata.ResourceVersion = "twelve"
	for _, obj := range []resource.Object{noName, noNamespace, slash, badRV} {
		if _, _, err := f.st.Apply(f.ctx, obj, storage.ApplyOptions{}); !errors.Is(err, storage.ErrInvalid) {
			f.Errorf("Apply(%v) = %v, want ErrInvalid", obj, err)
		}
	}
	if _, err := f.st.Create(f.ctx, nil); !errors.Is(err, storage.ErrInvalid) {
		f.Errorf("Create(nil) = %v, want ErrInvalid", err)
	}
	if _, err := f.st.Get(f.ctx, deployments, "", "web"); !errors.Is(err, storage.ErrInvalid) ||
		err.Error() != "deployments/web: invalid request: metadata.namespace is required for deployments" {
		f.Errorf("Get without namespace = %v", err)
	}
	if _, err := f.st.Get(f.ctx, nil, "demo", "web"); !errors.Is(err, storage.ErrInvalid) {
		f.Errorf("Get without a kind = %v, want ErrInvalid", err)
	}
	if _, _, err := f.st.List(f.ctx, deployments, "a/b", nil); !errors.Is(err, storage.ErrInvalid) {
		f.Errorf("List in namespace a/b = %v, want ErrInvalid", err)
	}
	if _, err := f.st.Delete(f.ctx, deployments, "demo", "web", "-3"); !errors.Is(err, storage.ErrInvalid) {
		f.Errorf("Delete with a negative resourceVersion = %v, want ErrInvalid", err)
	}
}

// Callers own what the store returns: changing it changes nothing stored.
func testReturnedObjectsAreCopies(f *fixture) {
	f.apply(Namespace("demo"))
	in := Deployment("demo", "web", 1, map[string]string{"app": "web"})
	out, _ := f.apply(in)
	in.Spec.Replicas = proto.Int32(5)
	out.(*meridianv1.Deployment).Spec.Replicas = proto.Int32(6)
	resource.Meta(out).Labels["app"] = "changed"
	got, err := f.st.Get(f.ctx, deployments, "demo", "web")
	if err != nil {
		f.Fatal(err)
	}
	got.(*meridianv1.Deployment).Spec.Replicas = proto.Int32(7)
	again, err := f.st.Get(f.ctx, deployments, "demo", "web")
	if err != nil {
		f.Fatal(err)
	}
	if r := again.(*meridianv1.Deployment).GetSpec().GetReplicas(); r != 1 || again.GetMetadata().GetLabels()["app"] != "web" {
		f.Fatalf("stored object changed through a returned one: %v", again)
	}
}

func testApplyCreateUpdateUnchanged(f *fixture) {
	f.apply(Namespace("demo"))

	in := Deployment("demo", "web", 1, map[string]string{"app": "web"})
	in.Status = &meridianv1.DeploymentStatus{ReadyReplicas: 9} // server-owned: dropped
	created, res := f.apply(in)
	if res != storage.Created {
		f.Fatalf("first apply = %v, want created", res)
	}
	md := created.GetMetadata()
	if md.GetUid() == "" || md.GetCreationTimestamp() == nil || md.GetGeneration() != 1 ||
		created.(*meridianv1.Deployment).GetStatus() != nil || created.GetKind() != "Deployment" {
		f.Fatalf("created = %v", created)
	}
	if in.GetMetadata().GetUid() != "" || in.GetMetadata().GetResourceVersion() != "" {
		f.Fatal("Apply modified its argument")
	}

	tests := []struct {
		name    string
		obj     *meridianv1.Deployment
		want    storage.ApplyResult
		wantGen int64
	}{
		{"same again", Deployment("demo", "web", 1, map[string]string{"app": "web"}), storage.Unchanged, 1},
		{"status in the request is ignored", func() *meridianv1.Deployment {
			d := Deployment("demo", "web", 1, map[string]string{"app": "web"})
			d.Status = &meridianv1.DeploymentStatus{ReadyReplicas: 3}
			d.Metadata.Generation = 42
			d.Metadata.CreationTimestamp = timestamppb.New(md.GetCreationTimestamp().AsTime().Add(time.Hour))
			return d
		}(), storage.Unchanged, 1},
		{"labels only", Deployment("demo", "web", 1, map[string]string{"app": "web", "tier": "front"}), storage.Configured, 1},
		{"annotations only", func() *meridianv1.Deployment {
			d := Deployment("demo", "web", 1, map[string]string{"app": "web", "tier": "front"})
			d.Metadata.Annotations = map[string]string{"note": "x"}
			return d
		}(), storage.Configured, 1},
		{"spec", Deployment("demo", "web", 3, map[string]string{"app": "web", "tier": "front"}), storage.Configured, 2},
		{"spec and labels", Deployment("demo", "web", 4, nil), storage.Configured, 3},
		{"same as stored", Deployment("demo", "web", 4, nil), storage.Unchanged, 3},
	}
	prev := created
	for _, tt := range tests {
		before := f.revision()
		got, res := f.apply(tt.obj)
		if res != tt.want || got.GetMetadata().GetGeneration() != tt.wantGen {
			f.Fatalf("%s: %v generation %d, want %v generation %d", tt.name, res, got.GetMetadata().GetGeneration(), tt.want, tt.wantGen)
		}
		if got.GetMetadata().GetUid() != md.GetUid() || !proto.Equal(got.GetMetadata().GetCreationTimestamp(), md.GetCreationTimestamp()) {
			f.Fatalf("%s: uid or creationTimestamp changed: %v", tt.name, got.GetMetadata())
		}
		after := f.revision()
		switch {
		case res == storage.Unchanged && (after != before || f.rv(got) != f.rv(prev)):
			f.Fatalf("%s: unchanged but revision %d -> %d, rv %d -> %d", tt.name, before, after, f.rv(prev), f.rv(got))
		case res == storage.Configured && (after != before+1 || f.rv(got) != after):
			f.Fatalf("%s: configured at rv %d, store revision %d -> %d", tt.name, f.rv(got), before, after)
		}
		stored, err := f.st.Get(f.ctx, deployments, "demo", "web")
		if err != nil || !proto.Equal(stored, got) {
			f.Fatalf("%s: Get = %v, %v; want %v", tt.name, stored, err, got)
		}
		prev = got
	}
}

// ConfigMap and Secret have no spec: their data is their desired state. A
// Secret's stringData is merged into data, by Apply and by Update.
func testApplyKindsWithoutSpec(f *fixture) {
	f.apply(Namespace("demo"))

	cm, _ := f.apply(ConfigMap("demo", "cfg", map[string]string{"a": "1"}))
	labelled := ConfigMap("demo", "cfg", map[string]string{"a": "1"})
	labelled.Metadata.Labels = map[string]string{"x": "y"}
	if cm, _ = f.apply(labelled); cm.GetMetadata().GetGeneration() != 1 {
		f.Fatalf("label change bumped a ConfigMap's generation to %d", cm.GetMetadata().GetGeneration())
	}
	changed := ConfigMap("demo", "cfg", map[string]string{"a": "2"})
	if cm, _ = f.apply(changed); cm.GetMetadata().GetGeneration() != 2 {
		f.Fatalf("data change left a ConfigMap's generation at %d, want 2", cm.GetMetadata().GetGeneration())
	}

	sec := secrets.New().(*meridianv1.Secret)
	resource.Meta(sec).Namespace, resource.Meta(sec).Name = "demo", "creds"
	sec.Data = map[string][]byte{"user": []byte("root"), "password": []byte("old")}
	sec.StringData = map[string]string{"password": "hunter2"}
	got, res := f.apply(sec)
	gs := got.(*meridianv1.Secret)
	if res != storage.Created || len(gs.StringData) != 0 || string(gs.Data["password"]) != "hunter2" || string(gs.Data["user"]) != "root" {
		f.Fatalf("secret = %v %v, want stringData merged into data", res, gs)
	}
	if len(sec.Data) != 2 || string(sec.Data["password"]) != "old" || len(sec.StringData) != 1 {
		f.Fatal("Apply modified the Secret it was given")
	}
	stored, err := f.st.Get(f.ctx, secrets, "demo", "creds")
	if err != nil || len(stored.(*meridianv1.Secret).StringData) != 0 {
		f.Fatalf("stored secret = %v, %v", stored, err)
	}
	// The same manifest again is unchanged: stringData merges to the same data.
	if _, res := f.apply(sec); res != storage.Unchanged {
		f.Fatalf("re-applying the secret = %v, want unchanged", res)
	}

	got, err = f.st.Update(f.ctx, secrets, "demo", "creds", func(o resource.Object) error {
		o.(*meridianv1.Secret).StringData = map[string]string{"token": "t0"}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	gs = got.(*meridianv1.Secret)
	if len(gs.StringData) != 0 || string(gs.Data["token"]) != "t0" || string(gs.Data["user"]) != "root" || gs.GetMetadata().GetGeneration() != 2 {
		f.Fatalf("Update with stringData = %v, want it merged into data at generation 2", gs)
	}
}

func testApplyDryRun(f *fixture) {
	f.apply(Namespace("demo"))
	dry := storage.ApplyOptions{DryRun: true}
	before := f.revision()

	got, res, err := f.st.Apply(f.ctx, Deployment("demo", "web", 1, nil), dry)
	if err != nil || res != storage.Created || got.GetMetadata().GetGeneration() != 1 || got.GetMetadata().GetResourceVersion() != "" {
		f.Fatalf("dry-run create = %v, %v, %v", got, res, err)
	}
	if _, err := f.st.Get(f.ctx, deployments, "demo", "web"); !errors.Is(err, storage.ErrNotFound) {
		f.Fatalf("dry-run create wrote: %v", err)
	}
	if _, _, err := f.st.Apply(f.ctx, Deployment("nope", "web", 1, nil), dry); !errors.Is(err, storage.ErrNotFound) {
		f.Fatalf("dry-run create in a missing namespace = %v, want ErrNotFound", err)
	}

	real, _ := f.apply(Deployment("demo", "web", 1, nil))
	got, res, err = f.st.Apply(f.ctx, Deployment("demo", "web", 2, nil), dry)
	if err != nil || res != storage.Configured || got.GetMetadata().GetGeneration() != 2 || f.rv(got) != f.rv(real) {
		f.Fatalf("dry-run update = %v, %v, %v", got, res, err)
	}
	stale := Deployment("demo", "web", 2, nil)
	stale.Metadata.ResourceVersion = strconv.FormatInt(f.rv(real)-1, 10)
	if _, _, err := f.st.Apply(f.ctx, stale, dry); !errors.Is(err, storage.ErrConflict) {
		f.Fatalf("dry-run update with a stale resourceVersion = %v, want ErrConflict", err)
	}
	stored, _ := f.st.Get(f.ctx, deployments, "demo", "web")
	if !proto.Equal(stored, real) {
		f.Fatalf("dry-run update wrote: %v", stored)
	}
	if after := f.revision(); after != before+1 {
		f.Fatalf("revision moved from %d to %d with one real write", before, after)
	}
}

func testApplyPreconditions(f *fixture) {
	f.apply(Namespace("demo"))

	missing := Deployment("demo", "web", 1, nil)
	missing.Metadata.ResourceVersion = "5"
	_, _, err := f.st.Apply(f.ctx, missing, storage.ApplyOptions{})
	if !errors.Is(err, storage.ErrNotFound) || err.Error() !=
		"deployments/demo/web not found: the object does not exist, cannot apply with resourceVersion 5" {
		f.Fatalf("apply with a resourceVersion to a missing object = %v", err)
	}

	v1, _ := f.apply(Deployment("demo", "web", 1, nil))
	v2, _ := f.apply(Deployment("demo", "web", 2, nil))
	stale := Deployment("demo", "web", 3, nil)
	stale.Metadata.ResourceVersion = v1.GetMetadata().GetResourceVersion()
	_, _, err = f.st.Apply(f.ctx, stale, storage.ApplyOptions{})
	want := fmt.Sprintf("deployments/demo/web: the object has been modified (resourceVersion %d, now %d); re-read it and try again", f.rv(v1), f.rv(v2))
	var conflict *storage.ConflictError
	if !errors.Is(err, storage.ErrConflict) || !errors.As(err, &conflict) || err.Error() != want {
		f.Fatalf("stale apply = %v\nwant %s", err, want)
	}

	fresh := Deployment("demo", "web", 3, nil)
	fresh.Metadata.ResourceVersion = v2.GetMetadata().GetResourceVersion()
	if _, res := f.apply(fresh); res != storage.Configured {
		f.Fatalf("apply at the current resourceVersion = %v", res)
	}

	otherUID := Deployment("demo", "web", 3, nil)
	otherUID.Metadata.Uid = "someone-else"
	if _, _, err := f.st.Apply(f.ctx, otherUID, storage.ApplyOptions{}); !errors.Is(err, storage.ErrConflict) {
		f.Fatalf("apply with another uid = %v, want ErrConflict", err)
	}
	sameUID := Deployment("demo", "web", 3, nil)
	sameUID.Metadata.Uid = v1.GetMetadata().GetUid()
	if _, res := f.apply(sameUID); res != storage.Unchanged {
		f.Fatalf("apply with the stored uid = %v, want unchanged", res)
	}

	if _, err := f.st.Create(f.ctx, Deployment("demo", "web", 1, nil)); !errors.Is(err, storage.ErrAlreadyExists) ||
		err.Error() != "deployments/demo/web already exists" {
		f.Fatalf("Create of an existing object = %v", err)
	}
	got, err := f.st.Create(f.ctx, Deployment("demo", "api", 1, nil))
	if err != nil || got.GetMetadata().GetGeneration() != 1 || got.GetMetadata().GetUid() == "" ||
		got.GetMetadata().GetUid() == v1.GetMetadata().GetUid() || f.rv(got) != f.revision() {
		f.Fatalf("Create = %v, %v", got, err)
	}
}

// A namespaced object can only be created in an existing Namespace.
func testNamespaceMustExist(f *fixture) {
	want := `cannot create deployments/nope/web: namespace "nope" not found`
	if _, _, err := f.st.Apply(f.ctx, Deployment("nope", "web", 1, nil), storage.ApplyOptions{}); !errors.Is(err, storage.ErrNotFound) || err.Error() != want {
		f.Fatalf("Apply in a missing namespace = %v\nwant %s", err, want)
	}
	if _, err := f.st.Create(f.ctx, Deployment("nope", "web", 1, nil)); !errors.Is(err, storage.ErrNotFound) || err.Error() != want {
		f.Fatalf("Create in a missing namespace = %v\nwant %s", err, want)
	}
	// Cluster-scoped kinds need no namespace, and ignore one given.
	ns := Namespace("nope")
	ns.Metadata.Namespace = "ignored"
	got, _ := f.apply(ns)
	if got.GetMetadata().GetNamespace() != "" {
		f.Fatalf("namespace stored with a namespace: %v", got)
	}
	if _, res := f.apply(Deployment("nope", "web", 1, nil)); res != storage.Created {
		f.Fatalf("Apply in the new namespace = %v", res)
	}
}

// Appliers without a resourceVersion never fail on a race. Each writer sets
// its own replica count, so every write that is not Unchanged changes the
// spec, and the final generation counts them all: no write was lost.
func testConcurrentAppliers(f *fixture) {
	f.apply(Namespace("demo"))

	const writers, rounds = 4, 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written int64
		errs    []error
	)
	for w := range writers {
		wg.Go(func() {
			for range rounds {
				_, res, err := f.st.Apply(f.ctx, Deployment("demo", "web", int32(w), nil), storage.ApplyOptions{})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if res != storage.Unchanged {
					written++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		f.Fatalf("%d applies failed, first: %v", len(errs), errs[0])
	}
	got, err := f.st.Get(f.ctx, deployments, "demo", "web")
	if err != nil {
		f.Fatal(err)
	}
	if got.GetMetadata().GetGeneration() != written {
		f.Fatalf("generation %d after %d spec-changing writes", got.GetMetadata().GetGeneration(), written)
	}
}
