package controller

import (
	"context"
	"log/slog"
	"sync"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// SyncFunc brings one key's world in line with its desired state. It
// returns an error to be retried with backoff; it may also re-queue the key
// itself (Queue.AddAfter) when it knows when to look again.
type SyncFunc func(ctx context.Context, key string) error

// BatchSyncFunc syncs several keys at once; errs[i] is keys[i]'s error.
type BatchSyncFunc func(ctx context.Context, keys []string) (errs []error)

// Controller runs workers that take keys off a queue and sync them.
type Controller struct {
	Name    string
	Queue   *Queue
	Sync    SyncFunc // a field so tests can swap it
	Workers int
	Log     *slog.Logger
	// SyncBatch, when set, replaces Sync: each worker takes up to MaxBatch
	// waiting keys at once (NewBatch).
	SyncBatch BatchSyncFunc
	MaxBatch  int
}

// New returns a controller with its own queue.
func New(name string, workers int, sync SyncFunc, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	if workers <= 0 {
		workers = 1
	}
	return &Controller{Name: name, Queue: NewQueue(DefaultRateLimit), Sync: sync, Workers: workers, Log: log.With("controller", name)}
}

// NewBatch returns a controller whose workers each take every waiting key,
// up to maxBatch, and sync them together: for writers whose store makes
// one write of many cheaper than many writes. With one key waiting it
// behaves as New; a key is still never synced by two workers at once, and
// a key whose sync failed is retried alone with its backoff.
func NewBatch(name string, workers, maxBatch int, sync BatchSyncFunc, log *slog.Logger) *Controller {
	c := New(name, workers, nil, log)
	c.SyncBatch, c.MaxBatch = sync, max(maxBatch, 1)
	return c
}

// Enqueue is a Handler that queues the key of every changed object.
func (c *Controller) Enqueue() Handler {
	return Handler{
		OnAdd:    func(o resource.Object) { c.Queue.Add(Key(o)) },
		OnUpdate: func(_, o resource.Object) { c.Queue.Add(Key(o)) },
		OnDelete: func(o resource.Object) { c.Queue.Add(Key(o)) },
	}
}

// EnqueueOwner is a Handler that queues the key of the object's controller
// owner of the given kind (a ReplicaSet's Deployment, a Pod's ReplicaSet).
func (c *Controller) EnqueueOwner(ownerKind string) Handler {
	f := func(o resource.Object) {
		if ref := ControllerOf(o); ref != nil && ref.GetKind() == ownerKind {
			ns := o.GetMetadata().GetNamespace()
			if ns == "" {
				c.Queue.Add(ref.GetName())
			} else {
				c.Queue.Add(ns + "/" + ref.GetName())
			}
		}
	}
	return Handler{OnAdd: f, OnUpdate: func(old, o resource.Object) { f(old); f(o) }, OnDelete: f}
}

// Run starts the workers and blocks until ctx ends; then it shuts the queue
// down and waits for the workers to finish their current key.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := 0; w < c.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.Queue.ShutDown()
	wg.Wait()
}

func (c *Controller) processNext(ctx context.Context) bool {
	if c.SyncBatch != nil {
		return c.processBatch(ctx)
	}
	key, shutdown := c.Queue.Get()
	if shutdown {
		return false
	}
	defer c.Queue.Done(key)
	if err := c.Sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			c.Log.Debug("sync failed; will retry", "key", key, "err", err)
		}
		c.Queue.AddRateLimited(key)
		return true
	}
	c.Queue.Forget(key)
	return true
}

func (c *Controller) processBatch(ctx context.Context) bool {
	keys, shutdown := c.Queue.GetBatch(c.MaxBatch)
	if shutdown {
		return false
	}
	errs := c.SyncBatch(ctx, keys)
	for i, key := range keys {
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		if err != nil {
			if ctx.Err() == nil {
				c.Log.Debug("sync failed; will retry", "key", key, "err", err)
			}
			c.Queue.AddRateLimited(key)
		} else {
			c.Queue.Forget(key)
		}
		c.Queue.Done(key)
	}
	return true
}

// ControllerOf returns the owner reference marked controller, if any.
func ControllerOf(o resource.Object) *meridianv1.OwnerReference {
	for _, r := range o.GetMetadata().GetOwnerReferences() {
		if r.GetController() {
			return r
		}
	}
	return nil
}

// OwnerRef returns a controller owner reference to owner.
func OwnerRef(owner resource.Object) *meridianv1.OwnerReference {
	t := true
	return &meridianv1.OwnerReference{
		ApiVersion: owner.GetApiVersion(),
		Kind:       owner.GetKind(),
		Name:       owner.GetMetadata().GetName(),
		Uid:        owner.GetMetadata().GetUid(),
		Controller: &t,
	}
}

// IsControlledBy reports whether o's controller is owner (by uid).
func IsControlledBy(o, owner resource.Object) bool {
	ref := ControllerOf(o)
	return ref != nil && ref.GetUid() == owner.GetMetadata().GetUid()
}
