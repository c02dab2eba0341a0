package store_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestApplyCreateUpdateUnchanged(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))

	in := deployment("demo", "web", 1, map[string]string{"app": "web"})
	in.Status = &meridianv1.DeploymentStatus{ReadyReplicas: 9} // server-owned: dropped
	created, res := mustApply(t, s, in)
	if res != store.Created {
		t.Fatalf("first apply = %v, want created", res)
	}
	md := created.GetMetadata()
	if md.GetUid() != "uid-2" || !md.GetCreationTimestamp().AsTime().Equal(t0) || md.GetGeneration() != 1 ||
		created.(*meridianv1.Deployment).GetStatus() != nil {
		t.Fatalf("created = %v", created)
	}
	if in.GetMetadata().GetUid() != "" || in.GetMetadata().GetResourceVersion() != "" {
		t.Fatal("Apply modified its argument")
	}

	tests := []struct {
		name    string
		obj     *meridianv1.Deployment
		want    store.ApplyResult
		wantGen int64
	}{
		{"same again", deployment("demo", "web", 1, map[string]string{"app": "web"}), store.Unchanged, 1},
		{"status in the request is ignored", func() *meridianv1.Deployment {
			d := deployment("demo", "web", 1, map[string]string{"app": "web"})
			d.Status = &meridianv1.DeploymentStatus{ReadyReplicas: 3}
			d.Metadata.Generation = 42
			d.Metadata.CreationTimestamp = timestamppb.Now()
			return d
		}(), store.Unchanged, 1},
		{"labels only", deployment("demo", "web", 1, map[string]string{"app": "web", "tier": "front"}), store.Configured, 1},
		{"annotations only", func() *meridianv1.Deployment {
			d := deployment("demo", "web", 1, map[string]string{"app": "web", "tier": "front"})
			d.Metadata.Annotations = map[string]string{"note": "x"}
			return d
		}(), store.Configured, 1},
		{"spec", deployment("demo", "web", 3, map[string]string{"app": "web", "tier": "front"}), store.Configured, 2},
		{"spec and labels", deployment("demo", "web", 4, nil), store.Configured, 3},
		{"same as stored", deployment("demo", "web", 4, nil), store.Unchanged, 3},
	}
	prev := created
	for _, tt := range tests {
		before, err := s.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, res := mustApply(t, s, tt.obj)
		if res != tt.want || got.GetMetadata().GetGeneration() != tt.wantGen {
			t.Fatalf("%s: %v generation %d, want %v generation %d", tt.name, res, got.GetMetadata().GetGeneration(), tt.want, tt.wantGen)
		}
		if got.GetMetadata().GetUid() != md.GetUid() || !got.GetMetadata().GetCreationTimestamp().AsTime().Equal(t0) {
			t.Fatalf("%s: uid or creationTimestamp changed: %v", tt.name, got.GetMetadata())
		}
		after, err := s.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case res == store.Unchanged && (after != before || rv(t, got) != rv(t, prev)):
			t.Fatalf("%s: unchanged but revision %d -> %d, rv %d -> %d", tt.name, before, after, rv(t, prev), rv(t, got))
		case res == store.Configured && (after != before+1 || rv(t, got) != after):
			t.Fatalf("%s: configured at rv %d, store revision %d -> %d", tt.name, rv(t, got), before, after)
		}
		stored, err := s.Get(ctx, deployments, "demo", "web")
		if err != nil || !proto.Equal(stored, got) {
			t.Fatalf("%s: Get = %v, %v; want %v", tt.name, stored, err, got)
		}
		prev = got
	}
}

func TestApplyKindsWithoutSpec(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))

	cm, _ := mustApply(t, s, configMap("demo", "cfg", map[string]string{"a": "1"}))
	labelled := configMap("demo", "cfg", map[string]string{"a": "1"})
	labelled.Metadata.Labels = map[string]string{"x": "y"}
	if cm, _ = mustApply(t, s, labelled); cm.GetMetadata().GetGeneration() != 1 {
		t.Fatalf("label change bumped a ConfigMap's generation to %d", cm.GetMetadata().GetGeneration())
	}
	changed := configMap("demo", "cfg", map[string]string{"a": "2"})
	if cm, _ = mustApply(t, s, changed); cm.GetMetadata().GetGeneration() != 2 {
		t.Fatalf("data change left a ConfigMap's generation at %d, want 2", cm.GetMetadata().GetGeneration())
	}

	sec := secrets.New().(*meridianv1.Secret)
	resource.Meta(sec).Namespace, resource.Meta(sec).Name = "demo", "creds"
	sec.Data = map[string][]byte{"user": []byte("root"), "password": []byte("old")}
	sec.StringData = map[string]string{"password": "hunter2"}
	got, res := mustApply(t, s, sec)
	gs := got.(*meridianv1.Secret)
	if res != store.Created || len(gs.StringData) != 0 || string(gs.Data["password"]) != "hunter2" || string(gs.Data["user"]) != "root" {
		t.Fatalf("secret = %v %v, want stringData merged into data", res, gs)
	}
	stored, err := s.Get(ctx, secrets, "demo", "creds")
	if err != nil || len(stored.(*meridianv1.Secret).StringData) != 0 {
		t.Fatalf("stored secret = %v, %v", stored, err)
	}
	// The same manifest again is unchanged: stringData merges to the same data.
	if _, res := mustApply(t, s, sec); res != store.Unchanged {
		t.Fatalf("re-applying the secret = %v, want unchanged", res)
	}
}

func TestApplyDryRun(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	dry := store.ApplyOptions{DryRun: true}
	before, _ := s.Revision(ctx)

	got, res, err := s.Apply(ctx, deployment("demo", "web", 1, nil), dry)
	if err != nil || res != store.Created || got.GetMetadata().GetGeneration() != 1 || got.GetMetadata().GetResourceVersion() != "" {
		t.Fatalf("dry-run create = %v, %v, %v", got, res, err)
	}
	if _, err := s.Get(ctx, deployments, "demo", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dry-run create wrote: %v", err)
	}
	if _, _, err := s.Apply(ctx, deployment("nope", "web", 1, nil), dry); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dry-run create in a missing namespace = %v, want ErrNotFound", err)
	}

	real, _ := mustApply(t, s, deployment("demo", "web", 1, nil))
	got, res, err = s.Apply(ctx, deployment("demo", "web", 2, nil), dry)
	if err != nil || res != store.Configured || got.GetMetadata().GetGeneration() != 2 || rv(t, got) != rv(t, real) {
		t.Fatalf("dry-run update = %v, %v, %v", got, res, err)
	}
	stored, _ := s.Get(ctx, deployments, "demo", "web")
	if !proto.Equal(stored, real) {
		t.Fatalf("dry-run update wrote: %v", stored)
	}
	if after, _ := s.Revision(ctx); after != before+1 {
		t.Fatalf("revision moved from %d to %d with one real write", before, after)
	}
}

func TestApplyPreconditions(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))

	missing := deployment("demo", "web", 1, nil)
	missing.Metadata.ResourceVersion = "5"
	_, _, err := s.Apply(ctx, missing, store.ApplyOptions{})
	if !errors.Is(err, store.ErrNotFound) || err.Error() !=
		"deployments/demo/web not found: the object does not exist, cannot apply with resourceVersion 5" {
		t.Fatalf("apply with a resourceVersion to a missing object = %v", err)
	}

	v1, _ := mustApply(t, s, deployment("demo", "web", 1, nil))
	v2, _ := mustApply(t, s, deployment("demo", "web", 2, nil))
	stale := deployment("demo", "web", 3, nil)
	stale.Metadata.ResourceVersion = v1.GetMetadata().GetResourceVersion()
	_, _, err = s.Apply(ctx, stale, store.ApplyOptions{})
	want := fmt.Sprintf("deployments/demo/web: the object has been modified (resourceVersion %d, now %d); re-read it and try again", rv(t, v1), rv(t, v2))
	var conflict *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &conflict) || err.Error() != want {
		t.Fatalf("stale apply = %v\nwant %s", err, want)
	}

	fresh := deployment("demo", "web", 3, nil)
	fresh.Metadata.ResourceVersion = v2.GetMetadata().GetResourceVersion()
	if _, res := mustApply(t, s, fresh); res != store.Configured {
		t.Fatalf("apply at the current resourceVersion = %v", res)
	}

	otherUID := deployment("demo", "web", 3, nil)
	otherUID.Metadata.Uid = "someone-else"
	if _, _, err := s.Apply(ctx, otherUID, store.ApplyOptions{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("apply with another uid = %v, want ErrConflict", err)
	}

	if _, err := s.Create(ctx, deployment("demo", "web", 1, nil)); !errors.Is(err, store.ErrAlreadyExists) ||
		err.Error() != "deployments/demo/web already exists" {
		t.Fatalf("Create of an existing object = %v", err)
	}
	if got, err := s.Create(ctx, deployment("demo", "api", 1, nil)); err != nil || got.GetMetadata().GetGeneration() != 1 {
		t.Fatalf("Create = %v, %v", got, err)
	}
}

// Appliers without a resourceVersion never fail on a race: they re-read and
// retry. Each writer sets its own replica count, so every write that is not
// Unchanged changes the spec, and the final generation counts them all: no
// write was lost.
func TestConcurrentAppliers(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))

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
				_, res, err := s.Apply(ctx, deployment("demo", "web", int32(w), nil), store.ApplyOptions{})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if res != store.Unchanged {
					written++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d applies failed, first: %v", len(errs), errs[0])
	}
	got, err := s.Get(ctx, deployments, "demo", "web")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetMetadata().GetGeneration() != written {
		t.Fatalf("generation %d after %d spec-changing writes", got.GetMetadata().GetGeneration(), written)
	}
}

func TestUpdate(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	created, _ := mustApply(t, s, deployment("demo", "web", 1, nil))

	// A status write: generation stays, resourceVersion moves.
	got, err := s.Update(ctx, deployments, "demo", "web", func(o resource.Object) error {
		d := o.(*meridianv1.Deployment)
		d.Status = &meridianv1.DeploymentStatus{ObservedGeneration: d.Metadata.Generation, ReadyReplicas: 1}
		d.Metadata.Uid = "ignored"
		d.Metadata.Generation = 99
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetMetadata().GetGeneration() != 1 || got.GetMetadata().GetUid() != created.GetMetadata().GetUid() ||
		rv(t, got) <= rv(t, created) || got.(*meridianv1.Deployment).GetStatus().GetReadyReplicas() != 1 {
		t.Fatalf("status update = %v", got)
	}

	// A spec change bumps generation.
	got, err = s.Update(ctx, deployments, "demo", "web", func(o resource.Object) error {
		o.(*meridianv1.Deployment).Spec.Replicas = proto.Int32(5)
		return nil
	})
	if err != nil || got.GetMetadata().GetGeneration() != 2 {
		t.Fatalf("spec update = %v, %v", got, err)
	}

	// No change, no write.
	same, err := s.Update(ctx, deployments, "demo", "web", func(resource.Object) error { return nil })
	if err != nil || rv(t, same) != rv(t, got) {
		t.Fatalf("no-op update = %v, %v", same, err)
	}

	// Apply keeps the status a controller wrote.
	applied, _ := mustApply(t, s, deployment("demo", "web", 6, nil))
	if applied.(*meridianv1.Deployment).GetStatus().GetReadyReplicas() != 1 || applied.GetMetadata().GetGeneration() != 3 {
		t.Fatalf("apply after a status update = %v", applied)
	}

	errStop := errors.New("stop")
	if _, err := s.Update(ctx, deployments, "demo", "web", func(resource.Object) error { return errStop }); !errors.Is(err, errStop) {
		t.Fatalf("Update with a failing mutate = %v", err)
	}
	if _, err := s.Update(ctx, deployments, "demo", "web", func(o resource.Object) error {
		resource.Meta(o).Name = "other"
		return nil
	}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("renaming Update = %v, want ErrInvalid", err)
	}
	if _, err := s.Update(ctx, deployments, "demo", "nope", func(resource.Object) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update of a missing object = %v, want ErrNotFound", err)
	}
}

// Update is a compare-and-swap loop: concurrent increments are all kept.
func TestUpdateConcurrentIncrements(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	mustApply(t, s, configMap("demo", "counter", map[string]string{"n": "0"}))

	const workers, increments = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*increments)
	for range workers {
		wg.Go(func() {
			for range increments {
				_, err := s.Update(ctx, configMaps, "demo", "counter", func(o resource.Object) error {
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
		t.Fatalf("Update: %v", err)
	}
	got, err := s.Get(ctx, configMaps, "demo", "counter")
	if err != nil {
		t.Fatal(err)
	}
	if n := got.(*meridianv1.ConfigMap).Data["n"]; n != strconv.Itoa(workers*increments) {
		t.Fatalf("counter = %s, want %d", n, workers*increments)
	}
	if g := got.GetMetadata().GetGeneration(); g != 1+workers*increments {
		t.Fatalf("generation = %d, want %d", g, 1+workers*increments)
	}
}
