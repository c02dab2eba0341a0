package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestConcurrentWritesBatched: many writers at once share etcd
// transactions, and each still gets its own answer: creates land, a
// create of a taken name is refused, and updates racing for one object
// lose nothing.
func TestConcurrentWritesBatched(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	storagetest.MustApply(t, s, storagetest.ConfigMap("demo", "taken", map[string]string{"k": "old"}))
	storagetest.MustApply(t, s, storagetest.ConfigMap("demo", "counter", map[string]string{"n": "0"}))
	txns := countTxns(cli)

	const creates, increments = 200, 10
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, creates)
	for i := range creates {
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.ApplyCached(ctx, storagetest.ConfigMap("demo", fmt.Sprintf("c-%03d", i), map[string]string{"i": strconv.Itoa(i)}), nil)
		})
	}
	var takenErr error
	wg.Go(func() {
		<-start
		_, takenErr = s.Create(ctx, storagetest.ConfigMap("demo", "taken", map[string]string{"k": "new"}))
	})
	close(start)
	wg.Wait()
	// Each create alone would be a transaction of its own.
	if n := txns.n.Load(); n >= creates/2 {
		t.Errorf("%d etcd transactions for %d concurrent creates: want them batched", n, creates+1)
	}
	t.Logf("%d etcd transactions for %d concurrent creates", txns.n.Load(), creates+1)

	start = make(chan struct{})
	incErrs := make([]error, increments)
	for i := range increments {
		wg.Go(func() {
			<-start
			_, incErrs[i] = s.Update(ctx, configMaps, "demo", "counter", func(o resource.Object) error {
				cm := o.(*meridianv1.ConfigMap)
				n, err := strconv.Atoi(cm.Data["n"])
				if err != nil {
					return err
				}
				cm.Data["n"] = strconv.Itoa(n + 1)
				return nil
			})
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("create c-%03d: %v", i, err)
		}
	}
	if takenErr == nil {
		t.Error("a create of a taken name succeeded")
	}
	done := 0
	for _, err := range incErrs {
		if err == nil {
			done++
		}
	}
	if done == 0 {
		t.Errorf("no increment succeeded: %v", incErrs)
	}
	objs, _, err := s.List(ctx, configMaps, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != creates+2 {
		t.Errorf("%d ConfigMaps, want %d", len(objs), creates+2)
	}
	for _, o := range objs {
		cm := o.(*meridianv1.ConfigMap)
		switch name := cm.GetMetadata().GetName(); name {
		case "taken":
			if cm.GetData()["k"] != "old" {
				t.Errorf("taken was overwritten: %v", cm.GetData())
			}
		case "counter":
			// Those that lost the race too often say so; none is lost.
			if cm.GetData()["n"] != strconv.Itoa(done) {
				t.Errorf("counter %s after %d increments: a write was lost", cm.GetData()["n"], done)
			}
		default:
			if want := name[2:]; fmt.Sprintf("%03d", atoi(t, cm.GetData()["i"])) != want {
				t.Errorf("%s: data %v", name, cm.GetData())
			}
		}
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentDeletesBatched: deletes share transactions too, and each
// gets its own answer (the deleted object, or ErrNotFound).
func TestConcurrentDeletesBatched(t *testing.T) {
	s, cli := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	const n = 100
	for i := range n {
		storagetest.MustApply(t, s, storagetest.ConfigMap("demo", fmt.Sprintf("c-%03d", i), nil))
	}
	txns := countTxns(cli)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := range n + 1 { // and one that does not exist
		wg.Go(func() {
			<-start
			var got resource.Object
			got, errs[i] = s.Delete(ctx, configMaps, "demo", fmt.Sprintf("c-%03d", i), "")
			if errs[i] == nil && got.GetMetadata().GetName() != fmt.Sprintf("c-%03d", i) {
				errs[i] = fmt.Errorf("deleted %s", got.GetMetadata().GetName())
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("delete c-%03d: %v", i, errs[i])
		}
	}
	if !errors.Is(errs[n], store.ErrNotFound) {
		t.Errorf("delete of a missing object: %v, want ErrNotFound", errs[n])
	}
	if left, _, err := s.List(ctx, configMaps, "demo", nil); err != nil || len(left) != 0 {
		t.Errorf("left: %d, %v", len(left), err)
	}
	if got := txns.n.Load(); got >= n/2 {
		t.Errorf("%d etcd transactions for %d concurrent deletes: want them batched", got, n+1)
	}
}

// TestBatchedWriteCancelled: a writer that gives up gets its context's
// error; the others' writes are not cancelled with it.
func TestBatchedWriteCancelled(t *testing.T) {
	s, _ := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Create(gone, storagetest.ConfigMap("demo", "gone", nil)); err == nil {
		t.Error("a write with an ended context succeeded")
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wctx := ctx
		if i%2 == 0 {
			c, cancel := context.WithCancel(ctx)
			defer cancel()
			wctx = c
			wg.Go(cancel) // gives up at some point
		}
		wg.Go(func() { _, _ = s.Create(wctx, storagetest.ConfigMap("demo", fmt.Sprintf("c-%02d", i), nil)) })
	}
	wg.Wait()
	for i := 1; i < 20; i += 2 {
		if _, err := s.Get(ctx, configMaps, "demo", fmt.Sprintf("c-%02d", i)); err != nil {
			t.Errorf("c-%02d (its writer did not give up): %v", i, err)
		}
	}
}
