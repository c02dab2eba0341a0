package job

import (
	"sync"
	"time"
)

// expectationTTL bounds how long a sync waits for the cache to show a pod
// it created or deleted. The informer always catches up unless an event is
// lost for good (a pod created and deleted by someone else before the cache
// saw it); then the Job is synced anyway after this long.
const expectationTTL = 2 * time.Minute

// expectations remember, per Job key, the pods a sync created or deleted
// that the informer cache does not show yet. The cache lags the store: a
// sync that ran on a cache without its own recent creations would create
// them again, and the Job would run more pods than its parallelism allows.
// A Job whose expectations are pending is not synced; the informer event
// that settles them queues it again. Safe for concurrent use.
//
// The same holds for the Job itself: a sync that ran on a Job older than
// the status the previous sync wrote would act on a stale picture (run pods
// for a Job that has just failed), so written remembers the
// resourceVersion of each Job's last status write until the cache has it.
type expectations struct {
	mu      sync.Mutex
	m       map[string]*expected // by Job key
	written map[string]int64     // by Job key: resourceVersion of our last write
}

// expected is one Job's pending creations and deletions, by pod name.
type expected struct {
	adds, dels map[string]struct{}
	since      time.Time // when the oldest pending one was recorded
}

func newExpectations() *expectations {
	return &expectations{m: map[string]*expected{}, written: map[string]int64{}}
}

// expect records that pod name of key is about to be created (add) or
// deleted. Record before the write, so that its informer event, whenever it
// comes, finds the record.
func (e *expectations) expect(key, name string, add bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil {
		x = &expected{adds: map[string]struct{}{}, dels: map[string]struct{}{}, since: time.Now()}
		e.m[key] = x
	}
	if len(x.adds) == 0 && len(x.dels) == 0 {
		x.since = time.Now()
	}
	if add {
		x.adds[name] = struct{}{}
	} else {
		x.dels[name] = struct{}{}
	}
}

// observed settles an expectation: the cache has shown the creation (add)
// or deletion of pod name, or the write failed and will not happen.
func (e *expectations) observed(key, name string, add bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil {
		return
	}
	if add {
		delete(x.adds, name)
	} else {
		delete(x.dels, name)
	}
}

// satisfied reports whether key may be synced: nothing is pending, or what
// is pending is already visible in the cache (settled tells whether the
// cache shows a pod's creation (add) or deletion: gone, or terminating),
// or has waited longer than expectationTTL.
func (e *expectations) satisfied(key string, settled func(name string, add bool) bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil {
		return true
	}
	for n := range x.adds {
		if settled(n, true) {
			delete(x.adds, n)
		}
	}
	for n := range x.dels {
		if settled(n, false) {
			delete(x.dels, n)
		}
	}
	if len(x.adds) == 0 && len(x.dels) == 0 {
		delete(e.m, key)
		return true
	}
	if time.Since(x.since) > expectationTTL {
		delete(e.m, key)
		return true
	}
	return false
}

// wrote records that the Job of key was written at resourceVersion rv.
func (e *expectations) wrote(key string, rv int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rv > e.written[key] {
		e.written[key] = rv
	}
}

// current reports whether a cached Job at resourceVersion rv includes our
// last write of it.
func (e *expectations) current(key string, rv int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.written[key]
	if !ok {
		return true
	}
	if rv >= w {
		delete(e.written, key)
		return true
	}
	return false
}

// forget drops key's expectations (its Job is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
	delete(e.written, key)
}
