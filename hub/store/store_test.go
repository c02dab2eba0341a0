package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var (
	deployments = resource.MustLookup("Deployment")
	namespaces  = resource.MustLookup("Namespace")
	configMaps  = resource.MustLookup("ConfigMap")
	secrets     = resource.MustLookup("Secret")
	t0          = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// testOptions are a fixed clock and sequential uids ("uid-1", "uid-2", ...).
func testOptions() []store.Option {
	var n atomic.Int64
	return []store.Option{
		store.WithClock(func() time.Time { return t0 }),
		store.WithUIDGenerator(func() string { return fmt.Sprintf("uid-%d", n.Add(1)) }),
	}
}

// newStore starts an etcd node and returns a store over a client of it.
func newStore(t *testing.T) (*store.Store, *clientv3.Client) {
	t.Helper()
	cli := etcdnodetest.Client(t, etcdnodetest.Start(t))
	return store.New(cli, testOptions()...), cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func namespace(name string) *meridianv1.Namespace {
	ns := namespaces.New().(*meridianv1.Namespace)
	resource.Meta(ns).Name = name
	return ns
}

func deployment(ns, name string, replicas int32, lbls map[string]string) *meridianv1.Deployment {
	d := deployments.New().(*meridianv1.Deployment)
	resource.Meta(d).Namespace = ns
	resource.Meta(d).Name = name
	resource.Meta(d).Labels = lbls
	d.Spec = &meridianv1.DeploymentSpec{Replicas: proto.Int32(replicas)}
	return d
}

func configMap(ns, name string, data map[string]string) *meridianv1.ConfigMap {
	c := configMaps.New().(*meridianv1.ConfigMap)
	resource.Meta(c).Namespace = ns
	resource.Meta(c).Name = name
	c.Data = data
	return c
}

// mustApply applies obj and fails the test on error.
func mustApply(t *testing.T, s *store.Store, obj resource.Object) (resource.Object, store.ApplyResult) {
	t.Helper()
	out, res, err := s.Apply(ctxT(t), obj, store.ApplyOptions{})
	if err != nil {
		t.Fatalf("Apply(%s): %v", obj.GetMetadata().GetName(), err)
	}
	return out, res
}

func rv(t *testing.T, obj resource.Object) int64 {
	t.Helper()
	n, err := strconv.ParseInt(obj.GetMetadata().GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", obj.GetMetadata().GetResourceVersion(), err)
	}
	return n
}

func names(objs []resource.Object) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		md := o.GetMetadata()
		if md.GetNamespace() == "" {
			out = append(out, md.GetName())
		} else {
			out = append(out, md.GetNamespace()+"/"+md.GetName())
		}
	}
	return out
}

func TestGetAndList(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	// "a-b" sorts before "a/" in etcd key order; List must still put
	// namespace "a" first.
	for _, ns := range []string{"b", "a-b", "a"} {
		mustApply(t, s, namespace(ns))
	}
	mustApply(t, s, deployment("b", "z", 1, map[string]string{"tier": "web"}))
	mustApply(t, s, deployment("a-b", "x", 1, map[string]string{"tier": "db"}))
	mustApply(t, s, deployment("a", "y", 1, map[string]string{"tier": "web"}))
	last, _ := mustApply(t, s, deployment("a", "x", 1, map[string]string{"tier": "web", "canary": "true"}))

	got, err := s.Get(ctx, deployments, "a", "x")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, last) {
		t.Fatalf("Get = %v, want what Apply returned: %v", got, last)
	}
	if _, err := s.Get(ctx, deployments, "a", "nope"); !errors.Is(err, store.ErrNotFound) ||
		err.Error() != "deployments/a/nope not found" {
		t.Fatalf("Get(missing) = %v, want \"deployments/a/nope not found\"", err)
	}
	// A namespace given for a cluster-scoped kind is ignored.
	if _, err := s.Get(ctx, namespaces, "ignored", "a"); err != nil {
		t.Fatalf("Get(namespace a) = %v", err)
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
				t.Fatal(err)
			}
		}
		objs, listRev, err := s.List(ctx, deployments, tt.ns, sel)
		if err != nil {
			t.Fatalf("List(%q, %q): %v", tt.ns, tt.sel, err)
		}
		if fmt.Sprint(names(objs)) != fmt.Sprint(tt.want) {
			t.Errorf("List(%q, %q) = %v, want %v", tt.ns, tt.sel, names(objs), tt.want)
		}
		if listRev != rv(t, last) {
			t.Errorf("List revision = %d, want %d (the last write)", listRev, rv(t, last))
		}
	}

	nss, _, err := s.List(ctx, namespaces, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names(nss)) != "[a a-b b]" {
		t.Fatalf("namespaces = %v", names(nss))
	}
	if cur, err := s.Revision(ctx); err != nil || cur != rv(t, last) {
		t.Fatalf("Revision = %d, %v; want %d", cur, err, rv(t, last))
	}
}

func TestInvalidRequests(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	noName := deployment("demo", "", 1, nil)
	noNamespace := deployment("", "web", 1, nil)
	slash := deployment("demo", "a/b", 1, nil)
	badRV := deployment("demo", "web", 1, nil)
	badRV.Metadata.ResourceVersion = "twelve"
	for _, obj := range []resource.Object{noName, noNamespace, slash, badRV} {
		if _, _, err := s.Apply(ctx, obj, store.ApplyOptions{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Apply(%v) = %v, want ErrInvalid", obj, err)
		}
	}
	if _, err := s.Get(ctx, deployments, "", "web"); !errors.Is(err, store.ErrInvalid) ||
		err.Error() != "deployments/web: invalid request: metadata.namespace is required for deployments" {
		t.Errorf("Get without namespace = %v", err)
	}
	if _, err := s.Delete(ctx, deployments, "demo", "web", "-3"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Delete with a negative resourceVersion = %v, want ErrInvalid", err)
	}
}

func TestDelete(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	created, _ := mustApply(t, s, deployment("demo", "web", 1, nil))
	updated, _ := mustApply(t, s, deployment("demo", "web", 2, nil))

	_, err := s.Delete(ctx, deployments, "demo", "web", created.GetMetadata().GetResourceVersion())
	var conflict *store.ConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete with a stale resourceVersion = %v, want a ConflictError", err)
	}
	if conflict.Requested != rv(t, created) || conflict.Current != rv(t, updated) {
		t.Fatalf("conflict = %+v", conflict)
	}

	last, err := s.Delete(ctx, deployments, "demo", "web", updated.GetMetadata().GetResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	now, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rv(t, last) != now || last.GetMetadata().GetUid() != updated.GetMetadata().GetUid() ||
		last.(*meridianv1.Deployment).GetSpec().GetReplicas() != 2 {
		t.Fatalf("Delete returned %v, want the last state at revision %d", last, now)
	}
	if _, err := s.Get(ctx, deployments, "demo", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Delete(ctx, deployments, "demo", "web", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	// Unconditional delete.
	mustApply(t, s, deployment("demo", "api", 1, nil))
	if _, err := s.Delete(ctx, deployments, "demo", "api", ""); err != nil {
		t.Fatal(err)
	}
}

func TestNamespaceDeleteCascades(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	for _, ns := range []string{"a", "a-b"} {
		mustApply(t, s, namespace(ns))
		mustApply(t, s, deployment(ns, "web", 1, nil))
		mustApply(t, s, deployment(ns, "api", 1, nil))
		mustApply(t, s, configMap(ns, "settings", map[string]string{"k": "v"}))
	}
	if _, err := s.Delete(ctx, namespaces, "", "a", ""); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, store.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	want := []string{
		"/meridian/objects/configmaps/a-b/settings",
		"/meridian/objects/deployments/a-b/api",
		"/meridian/objects/deployments/a-b/web",
		"/meridian/objects/namespaces/a-b",
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("keys after deleting namespace a:\n%v\nwant\n%v", keys, want)
	}
	// And nothing can be created in it any more.
	_, _, err = s.Apply(ctx, deployment("a", "web", 1, nil), store.ApplyOptions{})
	if !errors.Is(err, store.ErrNotFound) || err.Error() != `cannot create deployments/a/web: namespace "a" not found` {
		t.Fatalf("Apply in a deleted namespace = %v", err)
	}
}

func TestRestartKeepsObjects(t *testing.T) {
	node := etcdnodetest.StartNode(t)
	cli := etcdnodetest.Client(t, node.Endpoints())
	s := store.New(cli)
	ctx := ctxT(t)
	mustApply(t, s, namespace("demo"))
	for i := range 5 {
		mustApply(t, s, deployment("demo", fmt.Sprintf("web-%d", i), int32(i), map[string]string{"app": "web"}))
	}
	before, beforeRev, err := s.List(ctx, deployments, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = cli.Close()
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}

	node2 := etcdnodetest.StartConfig(t, node.Config())
	s2 := store.New(etcdnodetest.Client(t, node2.Endpoints()))
	after, afterRev, err := s2.List(ctx, deployments, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if afterRev != beforeRev || len(after) != len(before) {
		t.Fatalf("after restart: %d objects at revision %d, want %d at %d", len(after), afterRev, len(before), beforeRev)
	}
	for i := range before {
		if !proto.Equal(before[i], after[i]) {
			t.Errorf("after restart %v\nwant %v", after[i], before[i])
		}
	}
	// Writing goes on from where it was.
	d, res := mustApply(t, s2, deployment("demo", "web-0", 7, map[string]string{"app": "web"}))
	if res != store.Configured || d.GetMetadata().GetUid() != before[0].GetMetadata().GetUid() || rv(t, d) <= beforeRev {
		t.Fatalf("apply after restart: %v %v", res, d)
	}
}
