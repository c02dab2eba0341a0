package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Writers and watchers at once (run with -race): every watcher sees every
// write, gapless and in order.
func TestConcurrentWritersAndWatchers(t *testing.T) {
	s := newStore(t, store.WithNoSync())
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers, writes, watchers = 4, 25, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				if _, _, err := s.Apply(ctx, storagetest.Deployment("demo", fmt.Sprintf("w%d", w), int32(i), nil), storage.ApplyOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	results := make(chan error, watchers)
	for range watchers {
		ch := s.Watch(ctx, deployments, "demo", nil, from)
		go func() {
			prev := from
			for range writers * writes {
				e := <-ch
				if e.Type == storage.Error || e.Revision != prev+1 {
					results <- fmt.Errorf("%v@%d after %d: %v", e.Type, e.Revision, prev, e.Err)
					return
				}
				prev = e.Revision
			}
			results <- nil
		}()
	}
	wg.Wait()
	for range watchers {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

// Concurrent writes are committed in batches; each still takes its own
// revision, runs on the state the writes before it left, and fails alone.
func TestBatchedWrites(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(ctx, deployments, "demo", nil, from)

	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		revs    = map[int64]string{}
		created int
	)
	record := func(what string, obj interface{ GetMetadata() *meridianv1.ObjectMeta }) {
		mu.Lock()
		defer mu.Unlock()
		rev, err := strconv.ParseInt(obj.GetMetadata().GetResourceVersion(), 10, 64)
		if err != nil || revs[rev] != "" {
			t.Errorf("%s at resourceVersion %q, taken by %s", what, obj.GetMetadata().GetResourceVersion(), revs[rev])
		}
		revs[rev] = what
	}
	for i := range n {
		wg.Go(func() { // distinct objects: all created
			obj, err := s.Create(ctx, storagetest.Deployment("demo", fmt.Sprintf("own-%d", i), 1, nil))
			if err != nil {
				t.Error(err)
				return
			}
			record(fmt.Sprintf("own-%d", i), obj)
		})
		wg.Go(func() { // one object: created once, then ErrAlreadyExists
			obj, err := s.Create(ctx, storagetest.Deployment("demo", "shared", int32(i), nil))
			if errors.Is(err, storage.ErrAlreadyExists) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			created++
			mu.Unlock()
			record("shared", obj)
		})
	}
	wg.Go(func() { // fails a check of its own: the others are not affected
		_, _, err := s.Apply(ctx, storagetest.Deployment("demo", strings.Repeat("x", 40_000), 1, nil), storage.ApplyOptions{})
		if !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Apply with a 40,000-byte name = %v, want ErrInvalid", err)
		}
	})
	wg.Wait()
	if created != 1 || len(revs) != n+1 {
		t.Fatalf("shared created %d times, %d revisions taken; want 1 and %d", created, len(revs), n+1)
	}
	now, err := s.Revision(ctx)
	if err != nil || now != from+n+1 {
		t.Fatalf("revision %d, %v; want %d: one per write, none for the failed ones", now, err, from+n+1)
	}
	for rev := from + 1; rev <= now; rev++ {
		e := <-ch
		if e.Type != storage.Added || e.Revision != rev || e.Object.GetMetadata().GetName() != revs[rev] {
			t.Fatalf("event %v@%d %v, want ADDED %s@%d", e.Type, e.Revision, e.Err, revs[rev], rev)
		}
	}
}

// BenchmarkApply is one writer applying spec changes, one after another.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []store.Option
	}{
		{"fsync", nil},
		{"nosync", []store.Option{store.WithNoSync()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newStore(b, bc.opts...)
			storagetest.MustApply(b, s, storagetest.Namespace("demo"))
			const objects = 100
			for i := 0; b.Loop(); i++ {
				// Each write changes the spec: Configured, never Unchanged.
				storagetest.MustApply(b, s, storagetest.Deployment("demo", fmt.Sprintf("web-%d", i%objects), int32(i), map[string]string{"app": "web"}))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
		})
	}
}

// BenchmarkApplyParallel is BenchmarkApply with concurrent writers, whose
// commits share fsyncs.
func BenchmarkApplyParallel(b *testing.B) {
	s := newStore(b)
	storagetest.MustApply(b, s, storagetest.Namespace("demo"))
	var n atomic.Int64
	// As many writers as a member has busy controllers and node agents.
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, _, err := s.Apply(context.Background(), storagetest.Deployment("demo", fmt.Sprintf("web-%d", i%100), int32(i), nil), storage.ApplyOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}
