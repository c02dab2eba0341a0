package storage_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The rules are tested through the stores by the conformance suite
// (storagetest); these tests cover the cases the suite does not reach.

var (
	deployments = resource.MustLookup("Deployment")
	namespaces  = resource.MustLookup("Namespace")
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		kind            *resource.Kind
		namespace, name string
		want            string // the key, or the error
	}{
		{deployments, "demo", "web", "deployments/demo/web"},
		{namespaces, "ignored", "demo", "namespaces/demo"},
		{nil, "demo", "web", "invalid request: kind is required"},
		{deployments, "demo", "", "deployments/demo/: invalid request: metadata.name is required"},
		{deployments, "demo", "a/b", "deployments/demo/a/b: invalid request: metadata.name must not contain '/'"},
		{deployments, "", "web", "deployments/web: invalid request: metadata.namespace is required for deployments"},
		{deployments, "a/b", "web", "deployments/a/b/web: invalid request: metadata.namespace must not contain '/'"},
	}
	for _, tt := range tests {
		key, err := storage.CheckKey(tt.kind, tt.namespace, tt.name)
		got := key.String
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) || key != (resource.Key{}) {
				t.Errorf("CheckKey(%q, %q) = %v, %v; want an empty key and ErrInvalid", tt.namespace, tt.name, key, err)
			}
			got = err.Error
		}
		if got() != tt.want {
			t.Errorf("CheckKey(%q, %q) = %q, want %q", tt.namespace, tt.name, got(), tt.want)
		}
	}
}

func TestCheckObjectKey(t *testing.T) {
	d := deployments.New()
	resource.Meta(d).Namespace, resource.Meta(d).Name = "demo", "web"
	if key, err := storage.CheckObjectKey(d); err != nil || key.String() != "deployments/demo/web" {
		t.Fatalf("CheckObjectKey = %v, %v", key, err)
	}
	if _, err := storage.CheckObjectKey(nil); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("CheckObjectKey(nil) = %v, want ErrInvalid", err)
	}
}

func TestParseResourceVersion(t *testing.T) {
	key := resource.Key{Kind: deployments, Namespace: "demo", Name: "web"}
	for rv, want := range map[string]int64{"": 0, "1": 1, "42": 42} {
		if got, err := storage.ParseResourceVersion(key, rv); err != nil || got != want {
			t.Errorf("ParseResourceVersion(%q) = %d, %v; want %d", rv, got, err, want)
		}
	}
	for _, rv := range []string{"0", "-3", "twelve"} {
		if _, err := storage.ParseResourceVersion(key, rv); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("ParseResourceVersion(%q) = %v, want ErrInvalid", rv, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	// No apiVersion and kind: filled in. A namespace on a cluster-scoped
	// kind: dropped.
	ns := &meridianv1.Namespace{Metadata: &meridianv1.ObjectMeta{Name: "demo", Namespace: "ignored"}}
	got := storage.Normalize(namespaces, ns)
	if got.GetApiVersion() != "v1" || got.GetKind() != "Namespace" || got.GetMetadata().GetNamespace() != "" {
		t.Fatalf("Normalize = %v", got)
	}
	if ns.GetKind() != "" || ns.GetMetadata().GetNamespace() != "ignored" {
		t.Fatal("Normalize modified its argument")
	}

	// A Secret without data: stringData becomes its data.
	sec := &meridianv1.Secret{StringData: map[string]string{"token": "t0"}}
	got = storage.Normalize(resource.MustLookup("Secret"), sec)
	if gs := got.(*meridianv1.Secret); len(gs.StringData) != 0 || string(gs.Data["token"]) != "t0" {
		t.Fatalf("Normalize(secret) = %v", gs)
	}
}

// Update of a cluster-scoped object: a namespace set by mutate is dropped
// as Apply drops it.
func TestPrepareMutateClusterScoped(t *testing.T) {
	old := storage.PrepareCreate(&meridianv1.Namespace{Metadata: &meridianv1.ObjectMeta{Name: "demo"}}, "uid-1", time.Now())
	key := resource.Key{Kind: namespaces, Name: "demo"}
	got, changed, err := storage.PrepareMutate(key, old, func(o resource.Object) error {
		resource.Meta(o).Namespace = "ignored"
		return nil
	})
	if err != nil || changed || got.GetMetadata().GetNamespace() != "" {
		t.Fatalf("PrepareMutate = %v, %v, %v; want no change", got, changed, err)
	}
	if _, _, err := storage.PrepareMutate(key, old, func(o resource.Object) error {
		resource.Meta(o).Name = "other"
		return nil
	}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("renaming PrepareMutate = %v, want ErrInvalid", err)
	}
}

func TestEncodeDecode(t *testing.T) {
	d := storage.PrepareCreate(deployments.New(), "uid-1", time.Now())
	resource.Meta(d).ResourceVersion = "5"
	b, err := storage.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	if d.GetMetadata().GetResourceVersion() != "5" {
		t.Fatal("Encode modified its argument")
	}
	got, err := storage.Decode(deployments, b, 9)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetMetadata().GetResourceVersion() != "9" {
		t.Fatalf("decoded resourceVersion %q, want 9", got.GetMetadata().GetResourceVersion())
	}
	resource.Meta(got).ResourceVersion = "5"
	if !proto.Equal(got, d) {
		t.Fatalf("Decode(Encode(%v)) = %v", d, got)
	}
	if _, err := storage.Decode(deployments, []byte{0xff}, 1); err == nil {
		t.Fatal("Decode of garbage succeeded")
	}
}

// TestEncodeFullObject: Encode of an object with maps, lists and nested
// messages is the deterministic encoding of a copy without its
// resourceVersion, and leaves the object as it was.
func TestEncodeFullObject(t *testing.T) {
	two := int32(2)
	d := &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{
			Name: "web", Namespace: "demo", Uid: "uid-1", ResourceVersion: "42", Generation: 3,
			Labels:          map[string]string{"app": "web", "tier": "front"},
			Annotations:     map[string]string{"a": "b"},
			OwnerReferences: []*meridianv1.OwnerReference{{Kind: "X", Name: "x", Uid: "u"}},
		},
		Spec: &meridianv1.DeploymentSpec{Replicas: &two},
		Status: &meridianv1.DeploymentStatus{
			Replicas:   2,
			Conditions: []*meridianv1.Condition{{Type: "Available", Status: "True"}, {Type: "Progressing", Status: "True"}},
		},
	}
	before := proto.Clone(d)
	b, err := storage.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(d, before) {
		t.Fatalf("Encode modified its argument: %v", d)
	}
	ref := proto.Clone(d).(*meridianv1.Deployment)
	ref.Metadata.ResourceVersion = ""
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatal("Encode differs from the encoding of a copy without resourceVersion")
	}
	got, err := storage.Decode(deployments, b, 42)
	if err != nil || !proto.Equal(got, d) {
		t.Fatalf("Decode(Encode(d)) = %v, %v; want %v", got, err, d)
	}
}
