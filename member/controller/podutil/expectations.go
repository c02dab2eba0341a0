package podutil

import (
	"sync"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// DefaultExpectationsTTL is how long a controller waits to see its own
// creations and deletions in its cache before it acts without them. Every
// write it makes shows up as a watch event within milliseconds; the only
// way to miss one is an informer relist (after a compaction) that skips an
// object created and deleted in between. A minute bounds that rare stall
// while staying far longer than any healthy watch lag, because acting
// early means creating duplicates.
const DefaultExpectationsTTL = time.Minute

// Expectations remember, per owner key, the pods a controller has created
// or deleted and not yet seen in its informer's cache, as Kubernetes'
// ControllerExpectations do. A sync that acts on a stale cache would create
// a pod twice (or delete one twice): while expectations are pending, the
// controller updates status but leaves the pods alone.
//
// Record an expectation before the write (the watch event may come before
// the write returns), and observe it from the informer's handlers, or
// right away when the write fails. Expectations are names, not counts, so
// observing one twice is harmless. Safe for concurrent use.
type Expectations struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	pending map[string]*pending // by owner key
}

type pending struct {
	creates map[string]struct{} // pod names awaiting their add event
	deletes map[string]struct{} // pod names awaiting their delete event
	since   time.Time           // when the last expectation was recorded
}

// NewExpectations returns an empty set whose expectations lapse after ttl
// (DefaultExpectationsTTL if ttl <= 0).
func NewExpectations(ttl time.Duration) *Expectations {
	if ttl <= 0 {
		ttl = DefaultExpectationsTTL
	}
	return &Expectations{ttl: ttl, now: time.Now, pending: map[string]*pending{}}
}

func (e *Expectations) entry(key string) *pending {
	p := e.pending[key]
	if p == nil {
		p = &pending{creates: map[string]struct{}{}, deletes: map[string]struct{}{}}
		e.pending[key] = p
	}
	p.since = e.now()
	return p
}

// ExpectCreations records that the owner key is about to create pods names.
func (e *Expectations) ExpectCreations(key string, names ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.entry(key)
	for _, n := range names {
		p.creates[n] = struct{}{}
	}
}

// ExpectDeletions records that the owner key is about to delete pods names.
func (e *Expectations) ExpectDeletions(key string, names ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.entry(key)
	for _, n := range names {
		p.deletes[n] = struct{}{}
	}
}

// CreationObserved settles the expectation that key creates name: its add
// event came, or the creation failed.
func (e *Expectations) CreationObserved(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pending[key]; p != nil {
		delete(p.creates, name)
		e.drop(key, p)
	}
}

// DeletionObserved settles the expectation that key deletes name: its
// delete event came, or the pod was already gone. A pod deleted before its
// creation was seen settles both.
func (e *Expectations) DeletionObserved(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pending[key]; p != nil {
		delete(p.deletes, name)
		delete(p.creates, name)
		e.drop(key, p)
	}
}

func (e *Expectations) drop(key string, p *pending) {
	if len(p.creates) == 0 && len(p.deletes) == 0 {
		delete(e.pending, key)
	}
}

// Satisfied reports whether key has nothing pending; if it has, wait is how
// long until its expectations lapse (the owner should be synced again then,
// in case the events never come).
func (e *Expectations) Satisfied(key string) (ok bool, wait time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending[key]
	if p == nil {
		return true, 0
	}
	left := p.since.Add(e.ttl).Sub(e.now())
	if left <= 0 {
		delete(e.pending, key)
		return true, 0
	}
	return false, left
}

// Forget drops key's expectations (its owner was deleted).
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pending, key)
}

// Observe settles the expectation a pod event answers: the creation or
// deletion of o, expected under the key of its controller owner when that
// owner is of ownerKind ("namespace/name"). Other objects are ignored.
func (e *Expectations) Observe(ownerKind string, o resource.Object, deleted bool) {
	ref := controller.ControllerOf(o)
	if ref == nil || ref.GetKind() != ownerKind {
		return
	}
	key := o.GetMetadata().GetNamespace() + "/" + ref.GetName()
	if deleted {
		e.DeletionObserved(key, o.GetMetadata().GetName())
	} else {
		e.CreationObserved(key, o.GetMetadata().GetName())
	}
}
