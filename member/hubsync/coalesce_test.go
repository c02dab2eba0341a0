package hubsync_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestChangesBackToBackApplyInOrder sends many batches of changes without
// waiting for acks, so that the member takes several at once and stores a
// batch's updates concurrently, and checks that the result is that of
// applying every change in order: the last update of an object wins, a
// deletion and a re-creation in one batch leave the object, a creation
// and a deletion leave none, a namespace comes before its objects.
func TestChangesBackToBackApplyInOrder(t *testing.T) {
	e := newEnv(t)
	c, s, _ := e.start(t, e.config())
	s.sendSnapshot(t, 10, 500, work(namespace("demo", false), 1))
	s.waitAck(t, 10)

	const batches, objects = 30, 20
	cm := func(name string, v int) *meridianv1.ConfigMap {
		return configMap("demo", name, false, map[string]string{"v": fmt.Sprint(v)})
	}
	rev := int64(10)
	for b := 1; b <= batches; b++ {
		var changes []*meridianv1.WorkChange
		for i := range objects {
			// Every object twice a batch: the second write wins.
			changes = append(changes, change(work(cm(fmt.Sprintf("cm-%02d", i), 2*b), int64(2*b)), false))
		}
		for i := range objects {
			changes = append(changes, change(work(cm(fmt.Sprintf("cm-%02d", i), 2*b+1), int64(2*b+1)), false))
		}
		changes = append(changes,
			// Deleted, then made again: it stays, with the new data.
			change(work(cm("phoenix", b), int64(b)), true),
			change(work(cm("phoenix", b), int64(b)), false),
			// Made, then deleted: it goes.
			change(work(cm(fmt.Sprintf("mayfly-%02d", b), b), 1), false),
			change(work(cm(fmt.Sprintf("mayfly-%02d", b), b), 1), true),
			// A namespace, then an object in it.
			change(work(namespace(fmt.Sprintf("ns-%02d", b), false), 1), false),
			change(work(configMap(fmt.Sprintf("ns-%02d", b), "inside", false, map[string]string{"v": fmt.Sprint(b)}), 1), false),
			change(work(deployment("demo", "web", false, int32(b)), int64(b)), false),
		)
		rev++
		s.sendChanges(t, rev, changes...)
	}
	s.waitAck(t, rev)
	if got := c.State(); got.Revision != rev {
		t.Fatalf("State().Revision = %d, want %d", got.Revision, rev)
	}

	for i := range objects {
		o := get(t, e.st, kConfigMap, "demo", fmt.Sprintf("cm-%02d", i)).(*meridianv1.ConfigMap)
		if v, want := o.GetData()["v"], fmt.Sprint(2*batches+1); v != want {
			t.Errorf("cm-%02d: v = %s, want %s (the last update)", i, v, want)
		}
		if g := o.GetMetadata().GetAnnotations()[federation.AnnotationWorkGeneration]; g != fmt.Sprint(2*batches+1) {
			t.Errorf("cm-%02d: work generation %s, want %d", i, g, 2*batches+1)
		}
	}
	if o := get(t, e.st, kConfigMap, "demo", "phoenix").(*meridianv1.ConfigMap); o.GetData()["v"] != fmt.Sprint(batches) {
		t.Errorf("phoenix: v = %s, want %d", o.GetData()["v"], batches)
	}
	for b := 1; b <= batches; b++ {
		if !absent(t, e.st, kConfigMap, "demo", fmt.Sprintf("mayfly-%02d", b)) {
			t.Errorf("mayfly-%02d was deleted after it was made, and is there", b)
		}
		ns := fmt.Sprintf("ns-%02d", b)
		get(t, e.st, kNamespace, "", ns)
		if o := get(t, e.st, kConfigMap, ns, "inside").(*meridianv1.ConfigMap); o.GetData()["v"] != fmt.Sprint(b) {
			t.Errorf("%s/inside: v = %s, want %d", ns, o.GetData()["v"], b)
		}
	}
	if d := get(t, e.st, kDeployment, "demo", "web").(*meridianv1.Deployment); d.GetSpec().GetReplicas() != batches {
		t.Errorf("web: replicas %d, want %d", d.GetSpec().GetReplicas(), batches)
	}

	// Acks only ever grow: a coalesced ack covers the batches before it.
	s.mu.Lock()
	acks := slices.Clone(s.acks)
	s.mu.Unlock()
	t.Logf("%d batches after the snapshot, acknowledged in %d acks", batches, len(acks)-1)
	if !slices.IsSorted(acks) {
		t.Errorf("acks out of order: %v", acks)
	}
}
