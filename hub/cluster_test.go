package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestThreeNodeEmbeddedHub starts one hub node per datacenter, forming one
// embedded etcd cluster, and checks that what one node stores every node serves.
func TestThreeNodeEmbeddedHub(t *testing.T) {
	dir := t.TempDir()
	names := []string{"dc-a1", "dc-a2", "dc-b1"}
	cfgs := make([]hub.Config, len(names))
	var initial []string
	for i, n := range names {
		cfgs[i] = hubtest.Config(t, filepath.Join(dir, n))
		cfgs[i].EtcdName = n
		initial = append(initial, fmt.Sprintf("%s=%s", n, cfgs[i].EtcdPeerURL))
	}
	for i := range cfgs {
		cfgs[i].EtcdInitialCluster = strings.Join(initial, ",")
	}
	// The nodes wait for each other to form a quorum, so start them together.
	hubs := make([]*hub.Hub, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			hubs[i], errs[i] = hub.Start(c, cfgs[i], nil)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("hub %s: %v", names[i], err)
		}
		t.Cleanup(func() { hubs[i].Close() })
	}

	ns := resource.MustLookup("Namespace").New()
	resource.Meta(ns).Name = "shared"
	if _, err := hubtest.Client(t, hubs[0]).Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(ns)}); err != nil {
		t.Fatalf("apply through %s: %v", names[0], err)
	}
	for i, h := range hubs {
		resp, err := hubtest.Client(t, h).Get(ctx(t), &meridianv1.GetRequest{Kind: "ns", Name: "shared"})
		if err != nil || resp.GetObject().GetNamespace().GetMetadata().GetName() != "shared" {
			t.Errorf("get through %s: %v %v", names[i], resp, err)
		}
	}
}

// TestExternalEtcd runs a hub against an etcd it did not start.
func TestExternalEtcd(t *testing.T) {
	endpoints := etcdnodetest.Start(t)
	cfg := hubtest.Config(t, t.TempDir())
	cfg.EtcdEndpoints = endpoints
	h := hubtest.Start(t, cfg)
	cli := hubtest.Client(t, h)
	if _, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(deployment("ext", "v1"))}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	// A second hub node on the same external etcd sees it.
	cfg2 := hubtest.Config(t, t.TempDir())
	cfg2.EtcdEndpoints = endpoints
	h2 := hubtest.Start(t, cfg2)
	if _, err := hubtest.Client(t, h2).Get(ctx(t), &meridianv1.GetRequest{Kind: "deploy", Namespace: "default", Name: "ext"}); err != nil {
		t.Fatalf("get through the second node: %v", err)
	}
}
