package fence_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/fence"
	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// fakeLease is a lease the test sets.
type fakeLease struct {
	mu     sync.Mutex
	held   bool
	floors map[string]int64
}

func (l *fakeLease) Held() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.held }
func (l *fakeLease) MinEpoch(w string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.floors[w]
}
func (l *fakeLease) Subscribe(func())         {}
func (l *fakeLease) StopGrace() time.Duration { return 200 * time.Millisecond }

func apply(t *testing.T, st storage.Interface, o resource.Object) resource.Object {
	t.Helper()
	out, _, err := st.Apply(context.Background(), o, storage.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply %s: %v", o.GetMetadata().GetName(), err)
	}
	return out
}

func managed(annotations map[string]string) *meridianv1.ObjectMeta {
	return &meridianv1.ObjectMeta{Namespace: "default", Labels: map[string]string{federation.LabelManagedBy: federation.ManagedByHub}, Annotations: annotations}
}

func podOf(owner resource.Object, epoch string) *meridianv1.Pod {
	c := &meridianv1.Container{Name: "main", Command: []string{"sleep", "1"}}
	if epoch != "" {
		c.Env = []*meridianv1.EnvVar{{Name: federation.EnvFencingEpoch, Value: epoch}}
	}
	return &meridianv1.Pod{ApiVersion: "v1", Kind: "Pod",
		Metadata: &meridianv1.ObjectMeta{Name: owner.GetMetadata().GetName() + "-0", Namespace: "default",
			OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(owner)}},
		Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{c}}}
}

func TestGate(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	apply(t, st, &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: "default"}})
	sel := &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	tmpl := &meridianv1.PodTemplateSpec{Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "main", Command: []string{"sleep", "1"}}}}}
	ssMeta := managed(nil)
	ssMeta.Name = "db"
	ss := apply(t, st, &meridianv1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet", Metadata: ssMeta,
		Spec: &meridianv1.StatefulSetSpec{ServiceName: "db", Selector: sel, Template: tmpl}})
	localMeta := &meridianv1.ObjectMeta{Name: "local", Namespace: "default"}
	local := apply(t, st, &meridianv1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet", Metadata: localMeta,
		Spec: &meridianv1.StatefulSetSpec{ServiceName: "local", Selector: sel, Template: tmpl}})
	depMeta := managed(map[string]string{federation.AnnotationSingleton: "true"})
	depMeta.Name = "single"
	dep := apply(t, st, &meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment", Metadata: depMeta,
		Spec: &meridianv1.DeploymentSpec{Selector: sel, Template: tmpl}})
	rs := apply(t, st, &meridianv1.ReplicaSet{ApiVersion: "apps/v1", Kind: "ReplicaSet",
		Metadata: &meridianv1.ObjectMeta{Name: "single-abc", Namespace: "default", OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(dep)}},
		Spec:     &meridianv1.ReplicaSetSpec{Selector: sel, Template: tmpl}})
	webMeta := managed(nil)
	webMeta.Name = "web"
	web := apply(t, st, &meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment", Metadata: webMeta,
		Spec: &meridianv1.DeploymentSpec{Selector: sel, Template: tmpl}})
	webRS := apply(t, st, &meridianv1.ReplicaSet{ApiVersion: "apps/v1", Kind: "ReplicaSet",
		Metadata: &meridianv1.ObjectMeta{Name: "web-abc", Namespace: "default", OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(web)}},
		Spec:     &meridianv1.ReplicaSetSpec{Selector: sel, Template: tmpl}})

	inf := controller.NewInformerSet(st, nil)
	lease := &fakeLease{}
	g := fence.New(lease, inf)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if !inf.WaitForSync(ctx) {
		t.Fatal("informers did not sync")
	}

	// An orphan of an unknown StatefulSet with a fencing epoch: held back.
	ghost := &meridianv1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet", Metadata: &meridianv1.ObjectMeta{Name: "ghost", Namespace: "default", Uid: "nope"}}
	cases := []struct {
		name  string
		pod   *meridianv1.Pod
		held  bool
		floor int64
		want  bool
	}{
		{"hub singleton without a lease", podOf(ss, "1"), false, 0, false},
		{"hub singleton under the lease", podOf(ss, "1"), true, 0, true},
		{"hub singleton below its floor", podOf(ss, "1"), true, 2, false},
		{"hub singleton at its floor", podOf(ss, "2"), true, 2, true},
		{"hub singleton without an epoch, floor 1", podOf(ss, ""), true, 1, false},
		{"local StatefulSet", podOf(local, ""), false, 0, true},
		{"annotated Deployment via its ReplicaSet", podOf(rs, "3"), false, 0, false},
		{"plain hub Deployment", podOf(webRS, ""), false, 0, true},
		{"owner not in the cache, with an epoch", podOf(ghost, "1"), false, 0, false},
		{"owner not in the cache, no epoch", podOf(ghost, ""), false, 0, true},
		{"bare pod", &meridianv1.Pod{Metadata: &meridianv1.ObjectMeta{Name: "bare", Namespace: "default"}}, false, 0, true},
	}
	for _, c := range cases {
		lease.mu.Lock()
		lease.held = c.held
		lease.floors = map[string]int64{"default/StatefulSet/db": c.floor}
		lease.mu.Unlock()
		ok, reason := g.Allow(c.pod)
		if ok != c.want {
			t.Errorf("%s: Allow = %v (%s), want %v", c.name, ok, reason, c.want)
		}
		if !ok && reason == "" {
			t.Errorf("%s: refused without a reason", c.name)
		}
	}
	if fence.Epoch(podOf(ss, "7")) != 7 || fence.Epoch(podOf(ss, "")) != 0 {
		t.Error("Epoch does not read MERIDIAN_FENCING_EPOCH")
	}
	// Enforced: a floor holds once no agent runs a copy below it.
	running := podOf(ss, "1")
	runs := []func(func(*meridianv1.Pod) bool) bool{func(pred func(*meridianv1.Pod) bool) bool { return pred(running) }}
	got := g.Enforced(map[string]int64{"default/StatefulSet/db": 2, "default/Deployment/single": 1}, runs)
	if _, ok := got["default/StatefulSet/db"]; ok || got["default/Deployment/single"] != 1 {
		t.Errorf("Enforced = %v, want only default/Deployment/single: 1", got)
	}
	if got := g.Enforced(map[string]int64{"default/StatefulSet/db": 1}, runs); got["default/StatefulSet/db"] != 1 {
		t.Errorf("Enforced at the running copy's epoch = %v, want the floor enforced", got)
	}
	if g.StopGrace() != 200*time.Millisecond {
		t.Error("StopGrace is not the lease's")
	}
}
