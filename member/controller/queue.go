// Package controller is the machinery a member's controllers share: a
// rate-limited queue of object keys, an informer that keeps a watched cache
// of one kind, and a worker loop. Event handlers only enqueue keys; a sync
// function reads the cache, copies before it changes anything, and writes
// through the store. Controllers are level-triggered: a sync looks at the
// whole current state of its key, never at the event that woke it.
package controller

import (
	"sync"
	"time"
)

// Queue is a set of keys waiting to be processed. A key is never handed to
// two workers at once: a key added while it is being processed is queued
// again when the worker calls Done. Safe for concurrent use.
type Queue struct {
	backoff RateLimit

	mu         sync.Mutex
	cond       *sync.Cond
	queue      []string            // keys in order, each at most once
	dirty      map[string]struct{} // keys waiting (in queue or to be re-queued on Done)
	processing map[string]struct{} // keys handed out and not Done yet
	failures   map[string]int      // consecutive AddRateLimited per key
	timers     map[*time.Timer]struct{}
	shutdown   bool
}

// RateLimit is the backoff of AddRateLimited: Base doubled per consecutive
// failure of a key, capped at Max.
type RateLimit struct {
	Base, Max time.Duration
}

// DefaultRateLimit retries a failing key after 10 ms, doubling to 30 s: fast
// enough for a conflict that resolves on the next read, slow enough that a
// key that keeps failing costs nothing.
var DefaultRateLimit = RateLimit{Base: 10 * time.Millisecond, Max: 30 * time.Second}

// NewQueue returns an empty queue.
func NewQueue(rl RateLimit) *Queue {
	if rl.Base <= 0 {
		rl = DefaultRateLimit
	}
	q := &Queue{
		backoff:    rl,
		dirty:      map[string]struct{}{},
		processing: map[string]struct{}{},
		failures:   map[string]int{},
		timers:     map[*time.Timer]struct{}{},
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key unless it is already waiting.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	if _, ok := q.dirty[key]; ok {
		return
	}
	q.dirty[key] = struct{}{}
	if _, ok := q.processing[key]; ok {
		return // Done will queue it
	}
	q.queue = append(q.queue, key)
	q.cond.Signal()
}

// AddAfter queues key after d.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		delete(q.timers, t)
		q.mu.Unlock()
		q.Add(key)
	})
	q.timers[t] = struct{}{}
}

// AddRateLimited queues key after its backoff, which grows with every call
// until Forget.
func (q *Queue) AddRateLimited(key string) {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	d := q.backoff.Base << min(n, 30)
	if d > q.backoff.Max || d <= 0 {
		d = q.backoff.Max
	}
	q.AddAfter(key, d)
}

// Forget resets key's backoff after a successful sync.
func (q *Queue) Forget(key string) {
	q.mu.Lock()
	delete(q.failures, key)
	q.mu.Unlock()
}

// Get blocks until a key is ready and hands it out; shutdown is true once
// the queue is shut down and drained of nothing more to hand out.
func (q *Queue) Get() (key string, shutdown bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", true
	}
	key = q.queue[0]
	q.queue = q.queue[1:]
	delete(q.dirty, key)
	q.processing[key] = struct{}{}
	return key, false
}

// GetBatch is Get for up to limit keys: it blocks until a key is ready
// and hands out every ready key, up to limit, in queue order.
func (q *Queue) GetBatch(limit int) (keys []string, shutdown bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return nil, true
	}
	n := min(len(q.queue), max(limit, 1))
	keys = append([]string(nil), q.queue[:n]...)
	q.queue = q.queue[n:]
	for _, k := range keys {
		delete(q.dirty, k)
		q.processing[k] = struct{}{}
	}
	return keys, false
}

// Done marks key processed; if it was added meanwhile, it is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if _, ok := q.dirty[key]; ok && !q.shutdown {
		q.queue = append(q.queue, key)
		q.cond.Signal()
	}
}

// Len is the number of keys waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// ShutDown stops the queue: pending timers are cancelled and Get returns
// shutdown to every worker.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for t := range q.timers {
		t.Stop()
	}
	q.timers = map[*time.Timer]struct{}{}
	q.cond.Broadcast()
}
