package failover_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The controller tests run the failover controller alone over a local
// store: the test plays the other controllers — it writes the Clusters'
// health, the bindings the placement controller would write, and the
// Works' statuses the members would report — so that every step is
// decided by the test, not by timing.

const waitTimeout = 20 * time.Second

type fixture struct {
	t   *testing.T
	ctx context.Context
	st  storage.Interface
	reg *prometheus.Registry // the controller's metrics
}

// start opens a store with the demo namespace and three clusters (dc-a1
// and dc-a2 in region-a, dc-b1 in region-b, all Ready for a minute), and
// runs a failover controller over it with the built-in plugins and extra.
func start(t *testing.T, fence failover.Fence, extra ...framework.Plugin) *fixture {
	t.Helper()
	return startWith(t, nil, fence, extra...)
}

// startWith is start with the controller's config changed by mutate. The
// purge of an Unreachable cluster's copy waits 100 ms unless mutate says
// otherwise (the default 5 s would only slow the tests down).
func startWith(t *testing.T, mutate func(*failover.Config), fence failover.Fence, extra ...framework.Plugin) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, st: st, reg: prometheus.NewRegistry()}
	metrics, err := failover.NewMetrics(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	f.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n")
	for _, c := range [][3]string{{"dc-a1", "region-a", "dc-a1"}, {"dc-a2", "region-a", "dc-a2"}, {"dc-b1", "region-b", "dc-b1"}} {
		f.apply(fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", federation.ClusterNamespace(c[0])))
		f.apply(fmt.Sprintf("apiVersion: meridian.io/v1\nkind: Cluster\nmetadata: {name: %s}\nspec: {region: %s, datacenter: %s}\n", c[0], c[1], c[2]))
		f.setHealth(c[0], "Ready", time.Minute)
	}
	engine, err := placement.New(placement.DefaultConfig(), append(placement.Builtins(), extra...))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	inf := controller.NewInformerSet(st, log)
	cfg := failover.Config{Engine: engine, Store: st, Informers: inf, Fence: fence,
		Recorder: controller.NewRecorder(st, "hub", log), Log: log, Metrics: metrics, UnreachablePurgeDelay: 100 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := failover.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { inf.Run(runCtx); done <- struct{}{} }()
	go func() { c.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })
	return f
}

// counter is the value of the controller's counter name for the label
// values labels (name=value), 0 if it has none yet.
func (f *fixture) counter(name string, labels map[string]string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func (f *fixture) apply(yaml string) resource.Object {
	f.t.Helper()
	docs, err := manifest.Decode([]byte(yaml), "test.yaml")
	if err != nil {
		f.t.Fatal(err)
	}
	var last resource.Object
	for _, d := range docs {
		if last, _, err = f.st.Apply(f.ctx, d.Object, storage.ApplyOptions{}); err != nil {
			f.t.Fatalf("apply %s: %v", d.Object.GetMetadata().GetName(), err)
		}
	}
	return last
}

// setHealth gives cluster a Ready condition of reason health that changed
// ago.
func (f *fixture) setHealth(cluster, health string, ago time.Duration) {
	f.t.Helper()
	status := map[string]string{"Ready": "True", "Suspect": "Unknown", "Unreachable": "False"}[health]
	_, err := f.st.Update(f.ctx, resource.MustLookup("Cluster"), "", cluster, func(o resource.Object) error {
		c := o.(*meridianv1.Cluster)
		c.Status = &meridianv1.ClusterStatus{Conditions: []*meridianv1.Condition{{
			Type: "Ready", Status: status, Reason: health, LastTransitionTime: timestamppb.New(time.Now().Add(-ago)),
		}}}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// place writes the deployment name with replicas, the binding the
// placement controller would write for it (targets "dc-a1=3,dc-a2=3"),
// and ready Works for the targets.
func (f *fixture) place(name string, replicas int, policy string, targets string) {
	f.t.Helper()
	f.placeWith(name, replicas, policy, targets, "")
}

// placeWith is place with more metadata for the deployment (YAML flow
// mapping entries: "labels: {...}, annotations: {...}").
func (f *fixture) placeWith(name string, replicas int, policy string, targets, meta string) {
	f.t.Helper()
	if meta != "" {
		meta = ", " + meta
	}
	obj := f.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: demo%s}
spec:
  replicas: %d
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: main, image: app:1}]}
`, name, meta, replicas, name, name))
	b := &meridianv1.ResourceBinding{
		ApiVersion: resource.MeridianAPIVersion, Kind: "ResourceBinding",
		Metadata: &meridianv1.ObjectMeta{Name: placement.BindingName("Deployment", name), Namespace: "demo"},
		Spec: &meridianv1.ResourceBindingSpec{
			Resource: &meridianv1.ObjectReference{ApiVersion: "apps/v1", Kind: "Deployment", Namespace: "demo", Name: name, Uid: obj.GetMetadata().GetUid()},
			Replicas: int32(replicas), Clusters: parseTargets(targets),
		},
	}
	if policy != "" {
		p := f.get("PropagationPolicy", "demo", policy)
		b.Spec.Policy = &meridianv1.ObjectReference{Kind: "PropagationPolicy", Namespace: "demo", Name: policy, Uid: p.GetMetadata().GetUid()}
		b.Metadata.Annotations = map[string]string{placement.AnnotationPolicyGeneration: fmt.Sprint(p.GetMetadata().GetGeneration())}
	}
	if _, err := f.st.Create(f.ctx, b); err != nil {
		f.t.Fatal(err)
	}
	f.serve(name)
}

func parseTargets(s string) []*meridianv1.TargetCluster {
	var out []*meridianv1.TargetCluster
	for _, p := range strings.Split(s, ",") {
		var n int32
		name, count, _ := strings.Cut(p, "=")
		fmt.Sscan(count, &n)
		out = append(out, &meridianv1.TargetCluster{Name: name, Replicas: n})
	}
	return out
}

// serve plays the works controller and the members: every target of the
// binding of name gets a Work that reports its replicas ready.
func (f *fixture) serve(name string) {
	f.t.Helper()
	b := f.binding(name)
	k := resource.MustLookup("Deployment")
	for _, t := range b.GetSpec().GetClusters() {
		ns, wn := federation.ClusterNamespace(t.GetName()), federation.WorkName(k, "demo", name)
		w := &meridianv1.Work{ApiVersion: resource.MeridianAPIVersion, Kind: "Work",
			Metadata: &meridianv1.ObjectMeta{Name: wn, Namespace: ns},
			Spec: &meridianv1.WorkSpec{Cluster: t.GetName(), Source: b.GetSpec().GetResource(),
				Workload: resource.MustWrap(&meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap",
					Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "demo", Annotations: map[string]string{"replicas": fmt.Sprint(t.GetReplicas())}}})}}
		if _, _, err := f.st.Apply(f.ctx, w, storage.ApplyOptions{}); err != nil {
			f.t.Fatal(err)
		}
		replicas := t.GetReplicas()
		if _, err := f.st.Update(f.ctx, resource.MustLookup("Work"), ns, wn, func(o resource.Object) error {
			w := o.(*meridianv1.Work)
			w.Status = &meridianv1.WorkStatus{Workload: &meridianv1.ClusterWorkloadStatus{
				Cluster: t.GetName(), Replicas: replicas, ReadyReplicas: replicas, Applied: true, ObservedGeneration: w.GetMetadata().GetGeneration()}}
			return nil
		}); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) get(kind, ns, name string) resource.Object {
	f.t.Helper()
	o, err := f.st.Get(f.ctx, resource.MustLookup(kind), ns, name)
	if err != nil {
		f.t.Fatalf("get %s %s/%s: %v", kind, ns, name, err)
	}
	return o
}

func (f *fixture) binding(name string) *meridianv1.ResourceBinding {
	f.t.Helper()
	return f.get("ResourceBinding", "demo", placement.BindingName("Deployment", name)).(*meridianv1.ResourceBinding)
}

// targets renders a binding's targets as "dc-a2=6,dc-b1=3".
func targets(ts []*meridianv1.TargetCluster) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s=%d", t.GetName(), t.GetReplicas()))
	}
	return strings.Join(parts, ",")
}

// eventually polls cond until it holds or the deadline passes.
func (f *fixture) eventually(what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s: %s", what, detail)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTargets waits for the binding of name to have targets want.
func (f *fixture) waitTargets(name, want string) *meridianv1.ResourceBinding {
	f.t.Helper()
	var b *meridianv1.ResourceBinding
	f.eventually(name+" on "+want, func() (bool, string) {
		b = f.binding(name)
		return targets(b.GetSpec().GetClusters()) == want, targets(b.GetSpec().GetClusters())
	})
	return b
}

// waitEvent waits for an event of reason on the deployment name and
// returns its message.
func (f *fixture) waitEvent(name, reason string) string {
	f.t.Helper()
	var msg string
	f.eventually("event "+reason+" on "+name, func() (bool, string) {
		objs, _, err := f.st.List(f.ctx, resource.MustLookup("Event"), "demo", nil)
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, o := range objs {
			e := o.(*meridianv1.Event)
			seen = append(seen, e.GetReason())
			if e.GetReason() == reason && e.GetInvolvedObject().GetName() == name {
				msg = e.GetMessage()
				return true, ""
			}
		}
		return false, strings.Join(seen, ",")
	})
	return msg
}

// fakeFence releases after a number of calls with a fixed epoch.
type fakeFence struct {
	calls chan string
	epoch int64
}

func (f *fakeFence) Release(_ context.Context, workload, cluster string) (int64, time.Duration, error) {
	select {
	case f.calls <- workload + "@" + cluster:
		return f.epoch, 0, nil
	default:
		return 0, 0, errors.New("unexpected call")
	}
}
