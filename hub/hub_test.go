package hub_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// stripServerFields removes what the server adds, leaving what the user wrote.
func stripServerFields(o resource.Object) resource.Object {
	c := proto.Clone(o).(resource.Object)
	md := resource.Meta(c)
	md.Uid, md.ResourceVersion, md.Generation, md.CreationTimestamp = "", "", 0, nil
	resource.ClearStatus(c)
	return c
}

func getAll(t *testing.T, cli meridianv1.AdminServiceClient, docs []manifest.Document) map[string]resource.Object {
	t.Helper()
	out := map[string]resource.Object{}
	for _, d := range docs {
		md := d.Object.GetMetadata()
		resp, err := cli.Get(ctx(t), &meridianv1.GetRequest{Kind: d.Kind.Kind, Namespace: md.GetNamespace(), Name: md.GetName()})
		if err != nil {
			t.Fatalf("get %s %s: %v", d.Kind.Kind, md.GetName(), err)
		}
		o, _, err := resource.Unwrap(resp.GetObject())
		if err != nil {
			t.Fatal(err)
		}
		key, _ := resource.KeyOf(o)
		out[key.String()] = o
	}
	return out
}

func TestApplyDirectoryGetBackRestartNothingLost(t *testing.T) {
	docs, err := manifest.Load([]string{filepath.Join("..", "test", "testdata", "good")}, nil)
	if err != nil {
		t.Fatalf("the good corpus does not decode: %v", err)
	}
	if len(docs) < 12 {
		t.Fatalf("expected at least 12 manifests in the good corpus, got %d", len(docs))
	}
	cfg := hubtest.Config(t, t.TempDir())
	h := hubtest.Start(t, cfg)
	cli := hubtest.Client(t, h)

	byOrder := append([]manifest.Document(nil), docs...)
	for _, k := range resource.All() { // namespaces first, as the CLI does
		for _, d := range byOrder {
			if d.Kind != k {
				continue
			}
			resp, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d.Object)})
			if err != nil {
				t.Fatalf("apply %s (%s document %d): %v", d.Kind.Kind, d.Source, d.Index, err)
			}
			if resp.GetResult() != meridianv1.ApplyResult_APPLY_RESULT_CREATED {
				t.Errorf("apply %s: result %v, want created", d.Object.GetMetadata().GetName(), resp.GetResult())
			}
		}
	}
	before := getAll(t, cli, docs)
	for _, d := range docs {
		key, _ := resource.KeyOf(d.Object)
		got := before[key.String()]
		want := proto.Clone(d.Object).(resource.Object)
		if d.Kind.Kind == "Secret" { // stringData is merged into data on apply
			s := want.(*meridianv1.Secret)
			for k, v := range s.StringData {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				s.Data[k] = []byte(v)
			}
			s.StringData = nil
		}
		if !proto.Equal(stripServerFields(got), want) {
			a, _ := manifest.MarshalYAML(want)
			b, _ := manifest.MarshalYAML(stripServerFields(got))
			t.Errorf("%s came back different:\nsent:\n%s\ngot:\n%s", key, a, b)
		}
		// The YAML the CLI prints decodes to the same object.
		y, err := manifest.MarshalYAML(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := manifest.Decode(y, "roundtrip.yaml")
		if err != nil || len(again) != 1 || !proto.Equal(again[0].Object, got) {
			t.Errorf("%s: YAML output does not decode back to the same object: %v", key, err)
		}
		if got.GetMetadata().GetUid() == "" || got.GetMetadata().GetResourceVersion() == "" || got.GetMetadata().GetCreationTimestamp() == nil {
			t.Errorf("%s: server fields missing: %v", key, got.GetMetadata())
		}
	}

	// Restart on the same data directory: every object is still there, unchanged.
	if err := h.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	h2 := hubtest.Start(t, cfg)
	after := getAll(t, hubtest.Client(t, h2), docs)
	for k, o := range before {
		a := after[k]
		if a != nil && hubOwnsStatus(o) {
			// The hub's controllers write the status of clusters and
			// workloads; the desired state must not change.
			o, a = proto.Clone(o).(resource.Object), proto.Clone(a).(resource.Object)
			resource.ClearStatus(o)
			resource.ClearStatus(a)
			resource.Meta(o).ResourceVersion, resource.Meta(a).ResourceVersion = "", ""
		}
		if !proto.Equal(o, a) {
			t.Errorf("%s changed across a restart:\nbefore %v\nafter  %v", k, o, after[k])
		}
	}
}

func deployment(name, image string) *meridianv1.Deployment {
	r := int32(2)
	labels := map[string]string{"app": name}
	return &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: &r,
			Selector: &meridianv1.LabelSelector{MatchLabels: labels},
			Template: &meridianv1.PodTemplateSpec{
				Metadata: &meridianv1.ObjectMeta{Labels: labels},
				Spec:     &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "main", Image: image, Command: []string{"sleep", "60"}}}},
			},
		},
	}
}

func TestAdminAPISemantics(t *testing.T) {
	h := hubtest.Start(t, hubtest.Config(t, t.TempDir()))
	cli := hubtest.Client(t, h)

	d := deployment("web", "v1")
	first, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d)})
	if err != nil || first.GetResult() != meridianv1.ApplyResult_APPLY_RESULT_CREATED {
		t.Fatalf("create: %v %v", first.GetResult(), err)
	}
	stored := first.GetObject().GetDeployment()
	if stored.GetMetadata().GetGeneration() != 1 {
		t.Errorf("generation after create = %d, want 1", stored.GetMetadata().GetGeneration())
	}

	same, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d)})
	if err != nil || same.GetResult() != meridianv1.ApplyResult_APPLY_RESULT_UNCHANGED {
		t.Fatalf("re-apply: %v %v", same.GetResult(), err)
	}

	d2 := deployment("web", "v2")
	changed, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(d2)})
	if err != nil || changed.GetResult() != meridianv1.ApplyResult_APPLY_RESULT_CONFIGURED {
		t.Fatalf("update: %v %v", changed.GetResult(), err)
	}
	if g := changed.GetObject().GetDeployment().GetMetadata().GetGeneration(); g != 2 {
		t.Errorf("generation after spec change = %d, want 2", g)
	}
	if changed.GetObject().GetDeployment().GetMetadata().GetUid() != stored.GetMetadata().GetUid() {
		t.Error("uid changed on update")
	}

	// A stale resourceVersion is a conflict: gRPC Aborted with a clear message.
	stale := deployment("web", "v3")
	stale.Metadata.ResourceVersion = stored.GetMetadata().GetResourceVersion()
	_, err = cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(stale)})
	if status.Code(err) != codes.Aborted || !strings.Contains(status.Convert(err).Message(), "modified") {
		t.Errorf("stale apply: got %v, want Aborted saying the object was modified", err)
	}

	// Invalid objects are refused with every problem named, and nothing stored changes.
	bad := deployment("web", "v9")
	neg := int32(-1)
	bad.Spec.Replicas = &neg
	bad.Spec.Template.Spec.Containers[0].Name = "Bad_Name"
	_, err = cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(bad)})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, "spec.replicas") || !strings.Contains(msg, "containers[0].name") {
		t.Errorf("invalid apply: got %v, want InvalidArgument naming spec.replicas and the container name", err)
	}
	got, err := cli.Get(ctx(t), &meridianv1.GetRequest{Kind: "deploy", Namespace: "default", Name: "web"})
	if err != nil || got.GetObject().GetDeployment().GetSpec().GetTemplate().GetSpec().GetContainers()[0].GetImage() != "v2" {
		t.Errorf("stored object changed by a refused apply: %v %v", got, err)
	}

	// A namespace that does not exist.
	orphan := deployment("x", "v1")
	orphan.Metadata.Namespace = "nowhere"
	_, err = cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(orphan)})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), `namespace "nowhere" not found`) {
		t.Errorf("apply into a missing namespace: %v", err)
	}

	// List by label selector; bad selectors and kinds are InvalidArgument.
	if _, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(deployment("api", "v1"))}); err != nil {
		t.Fatal(err)
	}
	lst, err := cli.List(ctx(t), &meridianv1.ListRequest{Kind: "deployments", LabelSelector: "app in (api)"})
	if err != nil || len(lst.GetItems()) != 1 || lst.GetItems()[0].GetDeployment().GetMetadata().GetName() != "api" {
		t.Errorf("list by selector: %v %v", lst, err)
	}
	if _, err := cli.List(ctx(t), &meridianv1.ListRequest{Kind: "deployments", LabelSelector: "app in ("}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad selector: %v", err)
	}
	if _, err := cli.List(ctx(t), &meridianv1.ListRequest{Kind: "deploymnts"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad kind: %v", err)
	}
	if _, err := cli.Get(ctx(t), &meridianv1.GetRequest{Kind: "deploy", Namespace: "default", Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("get missing: %v", err)
	}

	// Watch from a revision sees what happened after it, in order.
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := cli.Watch(wctx, &meridianv1.WatchRequest{Kind: "deploy", Namespace: "default", ResourceVersion: stored.GetMetadata().GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx(t), &meridianv1.DeleteRequest{Kind: "deploy", Namespace: "default", Name: "api"}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	gens := map[string]int64{stored.GetMetadata().GetName(): stored.GetMetadata().GetGeneration()}
	for len(seen) < 3 {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch after %v: %v", seen, err)
		}
		if ev.GetType() == meridianv1.EventType_EVENT_TYPE_BOOKMARK {
			continue
		}
		// The hub's status aggregation writes status (same generation).
		d := ev.GetObject().GetDeployment()
		if ev.GetType() == meridianv1.EventType_EVENT_TYPE_MODIFIED && d.GetMetadata().GetGeneration() == gens[d.GetMetadata().GetName()] {
			continue
		}
		gens[d.GetMetadata().GetName()] = d.GetMetadata().GetGeneration()
		seen = append(seen, ev.GetType().String()+" "+ev.GetObject().GetDeployment().GetMetadata().GetName())
	}
	want := []string{"EVENT_TYPE_MODIFIED web", "EVENT_TYPE_ADDED api", "EVENT_TYPE_DELETED api"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("watch events = %v, want %v", seen, want)
	}
}

func TestConfigValidateNamesEveryBadKey(t *testing.T) {
	cfg := hub.DefaultConfig()
	cfg.Listen = "nonsense"
	cfg.EtcdClientURL = "ftp://x"
	cfg.EtcdInitialClusterState = "maybe"
	cfg.LogLevel = "loud"
	cfg.FailoverRate, cfg.FailoverBurst = 0, -1
	cfg.LeaderLease = 1500 * time.Millisecond
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"listen:", "etcd-client-url:", "etcd-initial-cluster-state:", "log-level:", "failover-rate:", "failover-burst:", "leader-lease:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

// hubOwnsStatus reports whether the hub's controllers write o's status.
func hubOwnsStatus(o resource.Object) bool {
	switch o.GetKind() {
	case "Cluster", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Drill":
		return true
	}
	return false
}
