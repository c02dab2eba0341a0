package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestQueueGetBatch(t *testing.T) {
	q := NewQueue(DefaultRateLimit)
	for _, k := range []string{"a", "b", "c", "a"} {
		q.Add(k)
	}
	keys, shutdown := q.GetBatch(2)
	if shutdown || !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("GetBatch(2) = %v, %v", keys, shutdown)
	}
	q.Add("a") // handed out: queued again on Done, never twice at once
	keys, _ = q.GetBatch(10)
	if !slices.Equal(keys, []string{"c"}) {
		t.Fatalf("GetBatch(10) = %v, want [c] (a is being processed)", keys)
	}
	q.Done("a")
	q.Done("b")
	q.Done("c")
	keys, _ = q.GetBatch(10)
	if !slices.Equal(keys, []string{"a"}) {
		t.Fatalf("after Done: %v, want [a]", keys)
	}
}

// TestBatchController: the workers sync every waiting key together, and a
// key whose sync failed is retried (alone, after its backoff) until it
// succeeds.
func TestBatchController(t *testing.T) {
	var mu sync.Mutex
	var batches [][]string
	failed := false
	done := make(chan struct{})
	c := NewBatch("test", 1, 10, func(_ context.Context, keys []string) []error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, keys)
		errs := make([]error, len(keys))
		for i, k := range keys {
			if k == "k3" && !failed {
				failed = true
				errs[i] = errors.New("conflict")
			}
			if k == "k3" && failed && len(batches) > 1 {
				close(done)
			}
		}
		return errs
	}, nil)
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		c.Queue.Add(k) // before Run: all four wait together
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { c.Run(ctx); close(stopped) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the failed key was not retried")
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || !slices.Equal(batches[0], []string{"k1", "k2", "k3", "k4"}) || !slices.Equal(batches[1], []string{"k3"}) {
		t.Errorf("batches %v, want [k1 k2 k3 k4] then [k3]", batches)
	}
}
