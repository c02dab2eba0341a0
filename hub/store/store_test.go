package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
)

// The behaviour the hub's store shares with the member's is tested by the
// conformance suite (conformance_test.go); this file and watch_test.go test
// what is the etcd store's own: its options, its etcd keys, its history in
// etcd.

var (
	deployments = resource.MustLookup("Deployment")
	namespaces  = resource.MustLookup("Namespace")
)

// testOptions are a fixed clock (storagetest.T0) and sequential uids
// ("uid-1", "uid-2", ...).
func testOptions() []store.Option {
	return []store.Option{store.WithClock(storagetest.Clock), store.WithUIDGenerator(storagetest.SequentialUIDs())}
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

// uid and creationTimestamp come from WithUIDGenerator and WithClock, and
// stay what they were on create (the suite checks that they are set once,
// not their values).
func TestCreatedFields(t *testing.T) {
	s, _ := newStore(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	created, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 1, nil))
	updated, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 2, nil))
	for _, obj := range []resource.Object{created, updated} {
		if md := obj.GetMetadata(); md.GetUid() != "uid-2" || !md.GetCreationTimestamp().AsTime().Equal(storagetest.T0) {
			t.Fatalf("%v, want uid-2 created at %v", md, storagetest.T0)
		}
	}
}

// Objects live under Prefix, one key each, and deleting a Namespace deletes
// the keys of the objects in it (and no other: "a-b" is not in "a").
func TestKeyLayout(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	for _, ns := range []string{"a", "a-b"} {
		storagetest.MustApply(t, s, storagetest.Namespace(ns))
		storagetest.MustApply(t, s, storagetest.Deployment(ns, "web", 1, nil))
		storagetest.MustApply(t, s, storagetest.Deployment(ns, "api", 1, nil))
		storagetest.MustApply(t, s, storagetest.ConfigMap(ns, "settings", map[string]string{"k": "v"}))
	}
	// The keys below Prefix, in etcd's key order ("a-b/" before "a/").
	keys := func() string {
		resp, err := cli.Get(ctx, store.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, strings.TrimPrefix(string(kv.Key), store.Prefix))
		}
		return strings.Join(keys, " ")
	}
	if got, want := keys(), "configmaps/a-b/settings configmaps/a/settings deployments/a-b/api deployments/a-b/web "+
		"deployments/a/api deployments/a/web namespaces/a namespaces/a-b"; got != want {
		t.Fatalf("keys:\n%s\nwant\n%s", got, want)
	}
	if k := store.ObjectKey(deployments, "a", "web"); k != "/meridian/objects/deployments/a/web" {
		t.Fatalf("ObjectKey = %s", k)
	}
	if k := store.ObjectKey(namespaces, "ignored", "a"); k != "/meridian/objects/namespaces/a" {
		t.Fatalf("ObjectKey of a cluster-scoped kind = %s", k)
	}

	if _, err := s.Delete(ctx, namespaces, "", "a", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(), "configmaps/a-b/settings deployments/a-b/api deployments/a-b/web namespaces/a-b"; got != want {
		t.Fatalf("keys after deleting namespace a:\n%s\nwant\n%s", got, want)
	}
}

func TestRestartKeepsObjects(t *testing.T) {
	node := etcdnodetest.StartNode(t)
	cli := etcdnodetest.Client(t, node.Endpoints())
	s := store.New(cli)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	for i := range 5 {
		storagetest.MustApply(t, s, storagetest.Deployment("demo", fmt.Sprintf("web-%d", i), int32(i), map[string]string{"app": "web"}))
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
	d, res := storagetest.MustApply(t, s2, storagetest.Deployment("demo", "web-0", 7, map[string]string{"app": "web"}))
	if res != store.Configured || d.GetMetadata().GetUid() != before[0].GetMetadata().GetUid() || storagetest.ResourceVersion(t, d) <= beforeRev {
		t.Fatalf("apply after restart: %v %v", res, d)
	}
}
