package podutil_test

import (
	"testing"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/member/controller/podutil/podtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func replicaSet(env *podtest.Env, name string) *meridianv1.ReplicaSet {
	rs := &meridianv1.ReplicaSet{
		ApiVersion: "apps/v1", Kind: "ReplicaSet",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: podtest.Namespace},
		Spec:     &meridianv1.ReplicaSetSpec{Selector: podtest.Selector("web"), Template: podtest.Template("web", "img")},
	}
	return env.Apply(rs).(*meridianv1.ReplicaSet)
}

func orphan(env *podtest.Env, name, app string) *meridianv1.Pod {
	p := podutil.NewPod(podtest.Template(app, "img"), &meridianv1.ReplicaSet{Metadata: &meridianv1.ObjectMeta{Namespace: podtest.Namespace}}, name)
	p.Metadata.OwnerReferences = nil
	return env.Apply(p).(*meridianv1.Pod)
}

func TestClaim(t *testing.T) {
	env := podtest.NewEnv(t)
	rs := replicaSet(env, "web")
	other := replicaSet(env, "other")
	sel, err := podutil.Selector(rs.GetSpec().GetSelector())
	if err != nil {
		t.Fatal(err)
	}
	match := orphan(env, "match", "web")
	nomatch := orphan(env, "nomatch", "db")
	stray := env.Apply(podutil.NewPod(podtest.Template("db", "img"), rs, "stray")).(*meridianv1.Pod)       // ours, no longer matching
	kept := env.Apply(podutil.NewPod(podtest.Template("web", "img"), rs, "kept")).(*meridianv1.Pod)        // ours, matching
	theirs := env.Apply(podutil.NewPod(podtest.Template("web", "img"), other, "theirs")).(*meridianv1.Pod) // someone else's

	owned, err := podutil.Claim(env.Ctx(), env.Store, podtest.Pods, rs, sel, []resource.Object{match, nomatch, stray, kept, theirs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range owned {
		names = append(names, o.GetMetadata().GetName())
	}
	if len(names) != 2 || names[0] != "match" || names[1] != "kept" {
		t.Fatalf("owned %v, want [match kept]", names)
	}
	if !controller.IsControlledBy(env.Get(podtest.Pods, "match"), rs) {
		t.Error("matching orphan not adopted in the store")
	}
	if controller.ControllerOf(env.Get(podtest.Pods, "stray")) != nil {
		t.Error("non-matching pod not released in the store")
	}
	if !controller.IsControlledBy(env.Get(podtest.Pods, "theirs"), other) || controller.ControllerOf(env.Get(podtest.Pods, "nomatch")) != nil {
		t.Error("pods that are not ours were touched")
	}

	// A stale cache offering a pod adopted meanwhile by another owner: no
	// double adoption.
	late := orphan(env, "late", "web")
	env.Update(podtest.Pods, "late", func(o resource.Object) error {
		resource.Meta(o).OwnerReferences = []*meridianv1.OwnerReference{controller.OwnerRef(other)}
		return nil
	})
	owned, err = podutil.Claim(env.Ctx(), env.Store, podtest.Pods, rs, sel, []resource.Object{late}, nil)
	if err != nil || len(owned) != 0 || !controller.IsControlledBy(env.Get(podtest.Pods, "late"), other) {
		t.Fatalf("stale orphan: owned %d, err %v", len(owned), err)
	}

	// A deleted owner adopts nothing.
	if _, err := env.Store.Delete(env.Ctx(), podtest.ReplicaSets, podtest.Namespace, "web", ""); err != nil {
		t.Fatal(err)
	}
	late2 := orphan(env, "late2", "web")
	if owned, err := podutil.Claim(env.Ctx(), env.Store, podtest.Pods, rs, sel, []resource.Object{late2}, nil); err != nil || len(owned) != 0 {
		t.Fatalf("deleted owner adopted: %d, %v", len(owned), err)
	}
}

func TestDeletePod(t *testing.T) {
	env := podtest.NewEnv(t)
	rs := replicaSet(env, "web")

	// Unbound: deleted at once.
	p := env.Apply(podutil.NewPod(podtest.Template("web", "img"), rs, "unbound")).(*meridianv1.Pod)
	if ok, err := podutil.DeletePod(env.Ctx(), env.Store, p); !ok || err != nil || env.Get(podtest.Pods, "unbound") != nil {
		t.Fatalf("unbound pod: %v %v", ok, err)
	}
	// Bound and running: marked terminating, left for the node agent.
	b := podutil.NewPod(podtest.Template("web", "img"), rs, "bound")
	b.Spec.NodeName = "n1"
	bound := env.Apply(b).(*meridianv1.Pod)
	if ok, err := podutil.DeletePod(env.Ctx(), env.Store, bound); !ok || err != nil {
		t.Fatalf("bound pod: %v %v", ok, err)
	}
	got := env.Get(podtest.Pods, "bound")
	if got == nil || !controller.IsTerminating(got.(*meridianv1.Pod)) {
		t.Fatal("bound pod not marked terminating")
	}
	if ok, err := podutil.DeletePod(env.Ctx(), env.Store, got.(*meridianv1.Pod)); ok || err != nil {
		t.Fatalf("terminating pod deleted again: %v %v", ok, err)
	}
	// A successor under the same name is never deleted for its predecessor.
	env.DeletePod("bound")
	env.Apply(podutil.NewPod(podtest.Template("web", "img"), rs, "bound"))
	if ok, err := podutil.DeletePod(env.Ctx(), env.Store, bound); ok || err != nil || env.Get(podtest.Pods, "bound") == nil {
		t.Fatalf("successor touched: %v %v", ok, err)
	}
}

func TestDeleteOrphaned(t *testing.T) {
	env := podtest.NewEnv(t)
	rs := replicaSet(env, "web")
	mine := env.Apply(podutil.NewPod(podtest.Template("web", "img"), rs, "mine"))
	left := podutil.NewPod(podtest.Template("web", "img"), rs, "left")
	left.Metadata.OwnerReferences[0].Uid = "an-earlier-web"
	leftObj := env.Apply(left)
	n, err := podutil.DeleteOrphaned(env.Ctx(), env.Store, podtest.Pods, podtest.ReplicaSets, podtest.Namespace, "web", "", []resource.Object{mine, leftObj})
	if err != nil || n != 1 || env.Get(podtest.Pods, "left") != nil || env.Get(podtest.Pods, "mine") == nil {
		t.Fatalf("deleted %d (%v); left %v, mine %v", n, err, env.Get(podtest.Pods, "left") != nil, env.Get(podtest.Pods, "mine") != nil)
	}
}
