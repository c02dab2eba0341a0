package controller

import (
	"sync"
	"testing"
	"time"
)

// getWithin returns the next key of q, failing the test if none is handed
// out within d. Get blocks, so it runs on a goroutine that ShutDown frees.
func getWithin(t *testing.T, q *Queue, d time.Duration) string {
	t.Helper()
	type result struct {
		key      string
		shutdown bool
	}
	ch := make(chan result, 1)
	go func() {
		k, s := q.Get()
		ch <- result{k, s}
	}()
	select {
	case r := <-ch:
		if r.shutdown {
			t.Fatal("Get reported shutdown")
		}
		return r.key
	case <-time.After(d):
		q.ShutDown() // frees the goroutine above
		t.Fatalf("no key within %v", d)
		return ""
	}
}

func TestQueueDeduplicatesWaitingKeys(t *testing.T) {
	q := NewQueue(RateLimit{Base: time.Millisecond, Max: time.Second})
	defer q.ShutDown()
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d after adding a, b, a; want 2", n)
	}
	for _, want := range []string{"a", "b"} {
		if got := getWithin(t, q, time.Second); got != want {
			t.Fatalf("Get = %q, want %q (keys come out in order)", got, want)
		}
	}
}

func TestQueueKeyAddedWhileProcessingIsRequeuedOnDone(t *testing.T) {
	q := NewQueue(RateLimit{Base: time.Millisecond, Max: time.Second})
	defer q.ShutDown()
	q.Add("a")
	key := getWithin(t, q, time.Second)

	// While a worker holds "a", adding it again must not hand it to a
	// second worker, however often it is added.
	q.Add("a")
	q.Add("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d while the key is processing; want 0", n)
	}
	q.Done(key)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d after Done; want the key queued once again", n)
	}
	if got := getWithin(t, q, time.Second); got != "a" {
		t.Fatalf("Get = %q, want a", got)
	}
	q.Done("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d after the second Done; want 0 (nothing was added meanwhile)", n)
	}
}

func TestQueueNeverHandsOneKeyToTwoWorkers(t *testing.T) {
	q := NewQueue(RateLimit{Base: time.Millisecond, Max: time.Second})
	var (
		mu      sync.Mutex
		holding = map[string]bool{}
		overlap bool
		handled int
	)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, shutdown := q.Get()
				if shutdown {
					return
				}
				mu.Lock()
				if holding[k] {
					overlap = true
				}
				holding[k] = true
				handled++
				mu.Unlock()
				time.Sleep(100 * time.Microsecond) // simulated work, not synchronisation
				mu.Lock()
				holding[k] = false
				mu.Unlock()
				q.Done(k)
			}
		}()
	}
	for i := range 2000 {
		q.Add([]string{"x", "y", "z"}[i%3])
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	q.ShutDown()
	wg.Wait()
	if overlap {
		t.Fatal("a key was handed to two workers at once")
	}
	if handled == 0 {
		t.Fatal("no key was handled")
	}
}

func TestQueueAddAfter(t *testing.T) {
	q := NewQueue(RateLimit{Base: time.Millisecond, Max: time.Second})
	defer q.ShutDown()
	const delay = 50 * time.Millisecond
	start := time.Now()
	q.AddAfter("later", delay)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d right after AddAfter; want 0", n)
	}
	if got := getWithin(t, q, 5*time.Second); got != "later" {
		t.Fatalf("Get = %q, want later", got)
	}
	if el := time.Since(start); el < delay {
		t.Fatalf("key handed out after %v, before its delay of %v", el, delay)
	}

	// A zero delay is a plain Add.
	q.AddAfter("now", 0)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d after AddAfter(0); want 1", n)
	}
}

func TestQueueRateLimitGrowsAndForgetResets(t *testing.T) {
	const base = 20 * time.Millisecond
	q := NewQueue(RateLimit{Base: base, Max: 10 * base})
	defer q.ShutDown()

	// Each consecutive failure doubles the wait: 20, 40, 80, 160 ms.
	for i := range 4 {
		want := base << i
		start := time.Now()
		q.AddRateLimited("k")
		got := getWithin(t, q, 5*time.Second)
		el := time.Since(start)
		q.Done(got)
		if el < want {
			t.Fatalf("failure %d: key back after %v, want at least %v", i+1, el, want)
		}
	}
	q.mu.Lock()
	failures := q.failures["k"]
	q.mu.Unlock()
	if failures != 4 {
		t.Fatalf("failures = %d, want 4", failures)
	}

	q.Forget("k")
	q.mu.Lock()
	_, still := q.failures["k"]
	q.mu.Unlock()
	if still {
		t.Fatal("Forget kept the key's failure count")
	}
	// After Forget the wait starts over at the base, far below the 320 ms
	// the next failure would have cost.
	start := time.Now()
	q.AddRateLimited("k")
	getWithin(t, q, 5*time.Second)
	if el := time.Since(start); el < base || el >= 16*base {
		t.Fatalf("after Forget the key came back after %v; want about %v", el, base)
	}
}

func TestQueueRateLimitIsCapped(t *testing.T) {
	q := NewQueue(RateLimit{Base: time.Millisecond, Max: 30 * time.Millisecond})
	defer q.ShutDown()
	for range 40 {
		// 40 failures would be 2^39 ms uncapped; the cap must hold (and the
		// shift must not overflow into a negative or zero delay).
		q.mu.Lock()
		q.failures["k"]++
		q.mu.Unlock()
	}
	start := time.Now()
	q.AddRateLimited("k")
	getWithin(t, q, 5*time.Second)
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("capped key came back after %v, before the 30ms cap", el)
	}
}

func TestQueueShutDownWakesGet(t *testing.T) {
	q := NewQueue(RateLimit{Base: time.Millisecond, Max: time.Second})
	const waiters = 3
	done := make(chan bool, waiters)
	for range waiters {
		go func() {
			_, shutdown := q.Get()
			done <- shutdown
		}()
	}
	q.AddAfter("never", time.Hour) // a pending timer ShutDown must cancel
	q.ShutDown()
	for range waiters {
		select {
		case shutdown := <-done:
			if !shutdown {
				t.Fatal("Get returned a key from an empty, shut down queue")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ShutDown did not wake a blocked Get")
		}
	}
	q.mu.Lock()
	timers := len(q.timers)
	q.mu.Unlock()
	if timers != 0 {
		t.Fatalf("%d timers still pending after ShutDown", timers)
	}
	// Adds after shutdown are ignored and Get keeps reporting shutdown.
	q.Add("late")
	if _, shutdown := q.Get(); !shutdown {
		t.Fatal("Get after ShutDown did not report shutdown")
	}
}
