package federation_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/member"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// benchFed is a hub and three sim members, in-process, for benchmarks.
func benchFed(b *testing.B) (*fed, map[string]member.Config, map[string]*member.Member) {
	f := &fed{}
	cfg := hubtest.Config(b, b.TempDir())
	f.cfg = cfg
	f.hub = hubtest.Start(b, cfg)
	conn := hubtest.Conn(b, f.hub)
	f.admin = meridianv1.NewAdminServiceClient(conn)
	f.fed = meridianv1.NewFederationServiceClient(conn)
	cfgs := map[string]member.Config{}
	members := map[string]*member.Member{}
	for i, name := range []string{"dc-a1", "dc-a2", "dc-b1"} {
		mc := member.DefaultConfig()
		mc.Name, mc.Region, mc.Datacenter = name, "region-"+name[3:4], name
		mc.DataDir = b.TempDir()
		mc.Listen, mc.HTTPListen = "127.0.0.1:0", ""
		mc.PodCIDR = fmt.Sprintf("127.%d.0.0/16", 80+i)
		mc.ServiceCIDR = fmt.Sprintf("127.%d.0.0/16", 90+i)
		mc.Runtime, mc.NodeCount, mc.NodePods = "sim", 2, 2000
		mc.Hub = f.hub.Addr()
		mc.LogLevel = "error"
		tok, err := f.fed.CreateJoinToken(context.Background(), &meridianv1.CreateJoinTokenRequest{Cluster: name})
		if err != nil {
			b.Fatal(err)
		}
		mc.JoinToken, mc.HubCAPin = tok.GetToken(), tok.GetCaPin()
		m, err := member.Start(context.Background(), mc, testLog())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		mc.JoinToken = ""
		cfgs[name] = mc
		members[name] = m
	}
	return f, cfgs, members
}

// workRevisions watches the hub's Works and reports the revision at which
// each (cluster, work) was last written.
func workRevisions(ctx context.Context, st storage.Interface, from int64) <-chan storage.Event {
	return st.Watch(ctx, resource.MustLookup("Work"), "", nil, from)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkApplyToAckedByThreeMembers measures, for one workload at a time,
// the time from the Apply call on the hub to the moment all three members
// have acknowledged (stored and persisted) its Work.
//
// Deployment: each workload also makes pods on every member (sim runtime),
// whose status flows back to the hub while the next one is applied.
// ConfigMap: the sync path alone.
//
//	go test ./hub/federation -run '^$' -bench ApplyToAcked -benchtime 1000x
func BenchmarkApplyToAckedByThreeMembers(b *testing.B) {
	b.Run("Deployment", func(b *testing.B) {
		benchApplyToAcked(b, "Deployment", func(name string) resource.Object { return benchDeployment(name) })
	})
	b.Run("ConfigMap", func(b *testing.B) {
		benchApplyToAcked(b, "ConfigMap", func(name string) resource.Object {
			return &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap", Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "bench"}, Data: map[string]string{"k": name}}
		})
	})
}

func benchApplyToAcked(b *testing.B, kind string, newObj func(name string) resource.Object) {
	f, cfgs, _ := benchFed(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clusters := make([]string, 0, len(cfgs))
	for name := range cfgs {
		clusters = append(clusters, name)
	}
	nsApply(b, f, "bench")
	rev, _ := f.hub.Store().Revision(ctx)
	events := workRevisions(ctx, f.hub.Store(), rev)
	var lat, written []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := newObj(fmt.Sprintf("w-%d", i))
		start := time.Now()
		if _, err := f.admin.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(d)}); err != nil {
			b.Fatal(err)
		}
		name := federation.WorkName(resource.MustLookup(kind), "bench", d.GetMetadata().GetName())
		revs := map[string]int64{}
		for len(revs) < len(clusters) {
			select {
			case ev := <-events:
				if ev.Object != nil && ev.Object.GetMetadata().GetName() == name && ev.Type == storage.Added {
					revs[ev.Object.(*meridianv1.Work).GetSpec().GetCluster()] = ev.Revision
				}
			case <-time.After(30 * time.Second):
				b.Fatalf("works of %s not written in 30s", name)
			}
		}
		written = append(written, time.Since(start))
		for c, r := range revs {
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			if err := f.hub.Federation().WaitAcked(wctx, c, r); err != nil {
				b.Fatal(err)
			}
			wcancel()
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(lat, 1).Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(percentile(written, 0.50).Microseconds())/1000, "works-written-p50-ms")
}

// BenchmarkResyncAfter1000Changes stops a member, changes 1,000 objects on
// the hub (500 new ConfigMaps, 500 changed), starts the member again and
// measures the time until it has acknowledged the hub's revision.
//
//	go test ./hub/federation -run '^$' -bench ResyncAfter1000 -benchtime 3x
func BenchmarkResyncAfter1000Changes(b *testing.B) {
	f, cfgs, members := benchFed(b)
	ctx := context.Background()
	nsApply(b, f, "bench")
	for i := 0; i < 500; i++ {
		configMap(b, f, fmt.Sprintf("cm-%d", i), "v0")
	}
	var total time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		// A second member process would do; in-process, the member under
		// test is a fresh Start on the same data dir.
		mc := cfgs["dc-b1"]
		rev, _ := f.hub.Store().Revision(ctx)
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := f.hub.Federation().WaitAcked(wctx, "dc-b1", rev); err != nil {
			b.Fatal(err)
		}
		cancel()
		members["dc-b1"].Close()
		for i := 0; i < 500; i++ {
			configMap(b, f, fmt.Sprintf("cm-%d", i), fmt.Sprintf("v%d", n+1))
			configMap(b, f, fmt.Sprintf("new-%d-%d", n, i), "x")
		}
		// Wait until the hub has written every Work (the leader's works
		// controller runs asynchronously), so that the clock measures the
		// member's catch-up only.
		target := waitWorksSettled(b, f)
		b.StartTimer()
		start := time.Now()
		m2, err := restartMember(b, mc)
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel = context.WithTimeout(ctx, 120*time.Second)
		if err := f.hub.Federation().WaitAcked(wctx, "dc-b1", target); err != nil {
			b.Fatal(err)
		}
		cancel()
		total += time.Since(start)
		b.StopTimer()
		members["dc-b1"] = m2
	}
	members["dc-b1"].Close()
	b.ReportMetric(total.Seconds()/float64(b.N), "resync-s")
	b.ReportMetric(0, "ns/op")
}

func restartMember(b *testing.B, mc member.Config) (*member.Member, error) {
	return member.Start(context.Background(), mc, testLog())
}

// waitWorksSettled waits until the hub's revision stops moving for a
// moment (the works controller is done) and returns it.
func waitWorksSettled(b *testing.B, f *fed) int64 {
	ctx := context.Background()
	last, _ := f.hub.Store().Revision(ctx)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond) // a quiet period to detect, not a synchronisation
		cur, _ := f.hub.Store().Revision(ctx)
		if cur == last {
			return cur
		}
		last = cur
	}
	b.Fatal("the hub never settled")
	return 0
}

func nsApply(b *testing.B, f *fed, name string) {
	ns := &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: name}}
	if _, err := f.admin.Apply(context.Background(), &meridianv1.ApplyRequest{Object: resource.MustWrap(ns)}); err != nil {
		b.Fatal(err)
	}
}

func configMap(b *testing.B, f *fed, name, v string) {
	cm := &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap", Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "bench"}, Data: map[string]string{"v": v}}
	if _, err := f.admin.Apply(context.Background(), &meridianv1.ApplyRequest{Object: resource.MustWrap(cm)}); err != nil {
		b.Fatal(err)
	}
}

func benchDeployment(name string) *meridianv1.Deployment {
	one := int32(1)
	return &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "bench"},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: &one,
			Selector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: &meridianv1.PodTemplateSpec{
				Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:     &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "main", Image: "app:1"}}},
			},
		},
	}
}
