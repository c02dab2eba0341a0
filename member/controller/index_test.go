package controller_test

import (
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// owner is a controller (or, with controller false, a plain) owner
// reference to a ReplicaSet.
func owner(name, uid string, controller bool) *meridianv1.OwnerReference {
	return &meridianv1.OwnerReference{ApiVersion: "apps/v1", Kind: "ReplicaSet", Name: name, Uid: uid, Controller: &controller}
}

// putOwned applies the ConfigMap ns/name with value and owner references.
func (e env) putOwned(t *testing.T, ns, name, value string, refs ...*meridianv1.OwnerReference) {
	t.Helper()
	cm := configMaps.New().(*meridianv1.ConfigMap)
	resource.Meta(cm).Namespace = ns
	resource.Meta(cm).Name = name
	resource.Meta(cm).OwnerReferences = refs
	cm.Data = map[string]string{"v": value}
	if _, _, err := e.st.Apply(e.ctx, cm, storage.ApplyOptions{}); err != nil {
		t.Fatalf("failed to apply %s: %v", name, err)
	}
}

// names is the sorted "name=value" list of objs.
func names(objs []resource.Object) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.GetMetadata().GetName()+"="+o.(*meridianv1.ConfigMap).GetData()["v"])
	}
	sort.Strings(out)
	return out
}

// indexView is what the controller indexes hold for the test's owners.
type indexView struct {
	claimRS1, claimRS2, claimOther []string // ClaimCandidates
	namedRS1, namedRS2             []string // ControlledByName
}

func viewIndexes(t *testing.T, inf *controller.Informer) indexView {
	t.Helper()
	claim := func(ns, uid string) []string {
		objs, err := controller.ClaimCandidates(inf, ns, uid)
		if err != nil {
			t.Fatalf("ClaimCandidates(%s, %s): %v", ns, uid, err)
		}
		return names(objs)
	}
	named := func(ns, name string) []string {
		objs, err := controller.ControlledByName(inf, ns, "ReplicaSet", name)
		if err != nil {
			t.Fatalf("ControlledByName(%s, %s): %v", ns, name, err)
		}
		return names(objs)
	}
	return indexView{
		claimRS1: claim("demo", "u1"), claimRS2: claim("demo", "u2"), claimOther: claim("other", "u1"),
		namedRS1: named("demo", "rs1"), namedRS2: named("demo", "rs2"),
	}
}

func (v indexView) equal(w indexView) bool {
	return slices.Equal(v.claimRS1, w.claimRS1) && slices.Equal(v.claimRS2, w.claimRS2) && slices.Equal(v.claimOther, w.claimOther) &&
		slices.Equal(v.namedRS1, w.namedRS1) && slices.Equal(v.namedRS2, w.namedRS2)
}

// checkAgainstList checks that every value of the controller indexes holds
// exactly what a scan of the cache finds: the index never drifts from it.
func checkAgainstList(t *testing.T, inf *controller.Informer) {
	t.Helper()
	for _, ns := range []string{"demo", "other"} {
		for _, uid := range []string{"", "u1", "u2", "u3"} {
			var want []resource.Object
			for _, o := range inf.List(ns, nil) {
				if controller.ControllerOf(o).GetUid() == uid {
					want = append(want, o)
				}
			}
			got, err := inf.ByIndex(controller.IndexController, controller.ControllerValue(ns, uid))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), names(want)) {
				t.Errorf("index %s/%s = %v, a scan finds %v", ns, uid, names(got), names(want))
			}
		}
	}
}

func TestInformerControllerIndexes(t *testing.T) {
	e := newEnv(t)
	e.createNamespace(t, "other")
	e.putOwned(t, "demo", "a", "1", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "b", "1", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "orphan", "1")
	e.putOwned(t, "demo", "loose", "1", owner("rs1", "u1", false)) // owned, not controlled: an orphan
	e.putOwned(t, "demo", "c", "1", owner("rs2", "u2", true))
	e.putOwned(t, "demo", "stale", "1", owner("rs1", "u0", true)) // an earlier rs1's
	e.putOwned(t, "other", "d", "1", owner("rs1", "u1", true))
	e.putOwned(t, "other", "orphan", "1")

	inf := controller.NewInformer(e.st, configMaps, nil)
	controller.IndexControllers(inf)
	controller.IndexControllers(inf) // a second time is a no-op
	run(t, inf)

	want := indexView{
		claimRS1:   []string{"a=1", "b=1", "loose=1", "orphan=1"},
		claimRS2:   []string{"c=1", "loose=1", "orphan=1"},
		claimOther: []string{"d=1", "orphan=1"},
		namedRS1:   []string{"a=1", "b=1", "stale=1"},
		namedRS2:   []string{"c=1"},
	}
	if got := viewIndexes(t, inf); !got.equal(want) {
		t.Fatalf("after the list:\n got %+v\nwant %+v", got, want)
	}
	checkAgainstList(t, inf)

	// Watch events: a changes controller, the orphan is adopted, b is
	// updated in place (the index holds the new object), stale is
	// released, c is deleted, a new pod comes.
	e.putOwned(t, "demo", "a", "2", owner("rs2", "u2", true))
	e.putOwned(t, "demo", "orphan", "2", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "b", "2", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "stale", "2")
	e.del(t, "demo", "c")
	e.putOwned(t, "demo", "new", "1", owner("rs2", "u2", true))
	want = indexView{
		claimRS1:   []string{"b=2", "loose=1", "orphan=2", "stale=2"},
		claimRS2:   []string{"a=2", "loose=1", "new=1", "stale=2"},
		claimOther: []string{"d=1", "orphan=1"},
		namedRS1:   []string{"b=2", "orphan=2"},
		namedRS2:   []string{"a=2", "new=1"},
	}
	waitFor(t, "the index to follow the watch", func() bool { return viewIndexes(t, inf).equal(want) })
	checkAgainstList(t, inf)

	// An index added after the informer synced starts from its cache.
	inf.AddIndex("value", func(o resource.Object) []string {
		v := o.(*meridianv1.ConfigMap).GetData()["v"]
		return []string{v, "any"}
	})
	got, err := inf.ByIndex("value", "2")
	if err != nil {
		t.Fatal(err)
	}
	if n := names(got); !slices.Equal(n, []string{"a=2", "b=2", "orphan=2", "stale=2"}) {
		t.Fatalf("ByIndex(value, 2) = %v", n)
	}
	// Several values: each object once.
	got, _ = inf.ByIndex("value", "2", "any", "1")
	if len(got) != len(inf.List("", nil)) {
		t.Fatalf("ByIndex(value, 2, any, 1) = %v, want every object once", names(got))
	}
	if _, err := inf.ByIndex("nope", "x"); !errors.Is(err, controller.ErrNoIndex) {
		t.Fatalf("ByIndex of an unknown index: err = %v, want ErrNoIndex", err)
	}
}

func TestInformerIndexFollowsRelist(t *testing.T) {
	e := newEnv(t)
	e.putOwned(t, "demo", "a", "1", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "b", "1", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "orphan", "1")
	fs := newFaultyStore(e.st)
	inf := controller.NewInformer(fs, configMaps, nil)
	controller.IndexControllers(inf)
	run(t, inf)

	// Cut the informer off, change owners, delete and add, and compact the
	// history away: only a relist (replace) can catch up.
	fs.hold()
	waitFor(t, "the informer to retry its watch", func() bool { _, f := fs.counts(); return len(f) >= 2 })
	e.putOwned(t, "demo", "a", "2", owner("rs2", "u2", true))
	e.del(t, "demo", "b")
	e.putOwned(t, "demo", "orphan", "2", owner("rs1", "u1", true))
	e.putOwned(t, "demo", "new", "1")
	rev, err := e.st.Revision(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Compact(e.ctx, rev); err != nil {
		t.Fatal(err)
	}
	fs.release()

	want := indexView{
		claimRS1:   []string{"new=1", "orphan=2"},
		claimRS2:   []string{"a=2", "new=1"},
		claimOther: []string{},
		namedRS1:   []string{"orphan=2"},
		namedRS2:   []string{"a=2"},
	}
	waitFor(t, "the relist", func() bool { return viewIndexes(t, inf).equal(want) })
	if lists, _ := fs.counts(); lists != 2 {
		t.Fatalf("List called %d times, want 2", lists)
	}
	checkAgainstList(t, inf)
}
