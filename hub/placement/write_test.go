package placement

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func bindingFor(uid string, epoch int64, clusters ...string) *meridianv1.ResourceBinding {
	b := &meridianv1.ResourceBinding{
		ApiVersion: resource.MeridianAPIVersion, Kind: "ResourceBinding",
		Metadata: &meridianv1.ObjectMeta{Name: BindingName("Deployment", "db"), Namespace: "demo"},
		Spec: &meridianv1.ResourceBindingSpec{
			Resource:     &meridianv1.ObjectReference{ApiVersion: "apps/v1", Kind: "Deployment", Namespace: "demo", Name: "db", Uid: uid},
			Replicas:     1,
			FencingEpoch: epoch,
		},
		Status: &meridianv1.ResourceBindingStatus{Conditions: []*meridianv1.Condition{{Type: "Scheduled", Status: "True"}}},
	}
	for _, c := range clusters {
		b.Spec.Clusters = append(b.Spec.Clusters, &meridianv1.TargetCluster{Name: c, Replicas: 1})
	}
	return b
}

// TestWriteKeepsABindingTheCacheHasNotSeen: a sync that finds no binding
// in its cache creates one; if the store already has one for the same
// object (the cache lags behind an earlier write), it is kept — with its
// targets and fencing epoch — and the sync is retried. Only a binding of
// an earlier object of that name is replaced.
func TestWriteKeepsABindingTheCacheHasNotSeen(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &Controller{cfg: ControllerConfig{Store: st}}
	kind := resource.MustLookup("ResourceBinding")
	ns := resource.MustLookup("Namespace").New()
	resource.Meta(ns).Name = "demo"
	if _, err := st.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, bindingFor("uid-1", 3, "dc-a1")); err != nil {
		t.Fatal(err)
	}

	// The same object: kept, and the sync fails so that it is retried.
	_, err = c.write(ctx, nil, bindingFor("uid-1", 0, "dc-a2"))
	if err == nil || !strings.Contains(err.Error(), "not in the cache yet") {
		t.Fatalf("write over a binding of the same object: %v", err)
	}
	o, err := st.Get(ctx, kind, "demo", BindingName("Deployment", "db"))
	if err != nil {
		t.Fatalf("the binding was deleted: %v", err)
	}
	if b := o.(*meridianv1.ResourceBinding); b.GetSpec().GetFencingEpoch() != 3 || b.GetSpec().GetClusters()[0].GetName() != "dc-a1" {
		t.Fatalf("the binding changed: %v", b.GetSpec())
	}

	// An earlier object of that name: replaced (deleted now, created by the
	// retried sync).
	_, err = c.write(ctx, nil, bindingFor("uid-2", 0, "dc-a2"))
	if err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("write over a stale binding: %v", err)
	}
	if _, err := st.Get(ctx, kind, "demo", BindingName("Deployment", "db")); err == nil {
		t.Fatal("the stale binding is still there")
	}
	if ok, err := c.write(ctx, nil, bindingFor("uid-2", 0, "dc-a2")); err != nil || !ok {
		t.Fatalf("the retried write: %v %v", ok, err)
	}
}
