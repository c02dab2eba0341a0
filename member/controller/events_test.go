package controller_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// gatedStore is the hub's store with event writes held until the test
// opens the gate; it records how many events each write carried.
type gatedStore struct {
	*store.Store
	gate chan struct{}

	mu    sync.Mutex
	sizes []int
}

func (g *gatedStore) wait(ctx context.Context, n int) {
	g.mu.Lock()
	g.sizes = append(g.sizes, n)
	g.mu.Unlock()
	select {
	case <-g.gate:
	case <-ctx.Done():
	}
}

func (g *gatedStore) Create(ctx context.Context, obj resource.Object) (resource.Object, error) {
	g.wait(ctx, 1)
	return g.Store.Create(ctx, obj)
}

func (g *gatedStore) CreateMany(ctx context.Context, objs []resource.Object) []error {
	g.wait(ctx, len(objs))
	return g.Store.CreateMany(ctx, objs)
}

// TestRecorderWritesInBackground: Eventf returns while its event is still
// being written (a controller does not wait for the store), Wait returns
// once every event recorded is written, none is lost, and events queued
// while the store is busy go in batches to a store that takes many.
func TestRecorderWritesInBackground(t *testing.T) {
	st := &gatedStore{Store: store.New(etcdnodetest.Client(t, etcdnodetest.Start(t))), gate: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	storagetest.MustApply(t, st.Store, storagetest.Namespace("demo"))
	cm, _ := storagetest.MustApply(t, st.Store, storagetest.ConfigMap("demo", "cm", nil))
	rec := controller.NewRecorder(st, "test", nil)

	const n = 200
	recorded := make(chan struct{})
	go func() {
		// The store holds every write: these return only if recording
		// does not wait for it.
		for i := range n {
			rec.Eventf(ctx, cm, controller.EventNormal, "Tested", "event %d", i)
		}
		close(recorded)
	}()
	select {
	case <-recorded:
	case <-time.After(20 * time.Second):
		t.Fatal("Eventf waited for the store")
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := rec.Wait(short); err == nil {
		t.Fatal("Wait returned while the store held the events")
	}

	close(st.gate)
	if err := rec.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	evs, _, err := st.List(ctx, resource.MustLookup("Event"), "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events stored, want %d", len(evs), n)
	}
	seen := map[string]bool{}
	for _, o := range evs {
		seen[o.(*meridianv1.Event).GetMessage()] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct events, want %d", len(seen), n)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	batched := false
	for _, s := range st.sizes {
		batched = batched || s > 1
	}
	if !batched || len(st.sizes) >= n {
		t.Errorf("writes of %v events: want the queued ones in batches", st.sizes)
	}
}
