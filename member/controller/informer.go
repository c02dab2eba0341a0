package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Handler receives an informer's changes. Handlers run on the informer's
// goroutine, one at a time, in order: they must not block (enqueue a key
// and return) and must not modify the objects they are given.
type Handler struct {
	OnAdd    func(obj resource.Object)
	OnUpdate func(old, obj resource.Object)
	OnDelete func(obj resource.Object)
}

// Informer keeps a cache of the objects of one kind, filled by a list and
// kept current by a watch, and tells its handlers about every change.
type Informer struct {
	store storage.Interface
	kind  *resource.Kind
	log   *slog.Logger

	mu       sync.RWMutex
	objs     map[string]resource.Object // by Key; never modified in place
	indexes  map[string]*index          // by index name; kept in step with objs
	handlers []Handler
	synced   bool
	syncedCh chan struct{} // closed once the first list is in the cache
}

// NewInformer returns an informer of kind over st, across all namespaces.
func NewInformer(st storage.Interface, kind *resource.Kind, log *slog.Logger) *Informer {
	if log == nil {
		log = slog.Default()
	}
	return &Informer{
		store:    st,
		kind:     kind,
		log:      log.With("informer", kind.Plural),
		objs:     map[string]resource.Object{},
		indexes:  map[string]*index{},
		syncedCh: make(chan struct{}),
	}
}

// Kind is the kind the informer watches.
func (i *Informer) Kind() *resource.Kind { return i.kind }

// AddHandler registers h. Call it before Run.
func (i *Informer) AddHandler(h Handler) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.handlers = append(i.handlers, h)
}

// Key is the cache key of an object: "namespace/name", or "name" for
// cluster-scoped kinds.
func Key(obj resource.Object) string {
	md := obj.GetMetadata()
	if md.GetNamespace() == "" {
		return md.GetName()
	}
	return md.GetNamespace() + "/" + md.GetName()
}

// SplitKey is the inverse of Key.
func SplitKey(key string) (namespace, name string) {
	for j := 0; j < len(key); j++ {
		if key[j] == '/' {
			return key[:j], key[j+1:]
		}
	}
	return "", key
}

// Get returns the cached object with that key. The object is shared: clone
// it before changing it.
func (i *Informer) Get(namespace, name string) (resource.Object, bool) {
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.objs[key]
	return o, ok
}

// List returns the cached objects in namespace ("" for all) matching sel
// (nil for all). The objects are shared: clone before changing.
func (i *Informer) List(namespace string, sel labels.Selector) []resource.Object {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]resource.Object, 0, len(i.objs))
	for _, o := range i.objs {
		md := o.GetMetadata()
		if namespace != "" && md.GetNamespace() != namespace {
			continue
		}
		if sel != nil && !sel.Matches(labels.Set(md.GetLabels())) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// HasSynced reports whether the first list has been loaded.
func (i *Informer) HasSynced() bool {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.synced
}

// WaitForSync blocks until the first list is loaded or ctx ends.
func (i *Informer) WaitForSync(ctx context.Context) bool {
	select {
	case <-i.syncedCh:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run lists and watches until ctx ends. A watch that fails is resumed from
// the last revision seen; one whose revision was compacted relists, and the
// handlers hear about whatever changed in between.
func (i *Informer) Run(ctx context.Context) {
	retry := 50 * time.Millisecond
	var rev int64
	relist := true
	for ctx.Err() == nil {
		if relist {
			objs, r, err := i.store.List(ctx, i.kind, "", nil)
			if err != nil {
				if ctx.Err() == nil {
					i.log.Warn("list failed; retrying", "err", err, "in", retry)
				}
				if !sleep(ctx, retry) {
					return
				}
				retry = min(retry*2, 5*time.Second)
				continue
			}
			i.replace(objs)
			rev, relist = r, false
		}
		retry = 50 * time.Millisecond
		for ev := range i.store.Watch(ctx, i.kind, "", nil, rev) {
			switch ev.Type {
			case storage.Error:
				if errors.Is(ev.Err, storage.ErrCompacted) {
					relist = true
				} else if ctx.Err() == nil {
					i.log.Warn("watch ended; resuming", "err", ev.Err, "revision", rev)
				}
			case storage.Bookmark:
				rev = ev.Revision
			default:
				i.apply(ev)
				// More events may share this revision (a Namespace
				// deletion): resume from the revision before it, and let
				// apply skip the events it has already handled.
				rev = ev.Revision - 1
			}
		}
		if !relist && !sleep(ctx, retry) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// replace loads a full list, telling handlers what differs from the cache.
func (i *Informer) replace(objs []resource.Object) {
	i.mu.Lock()
	old := i.objs
	i.objs = make(map[string]resource.Object, len(objs))
	for _, o := range objs {
		i.objs[Key(o)] = o
	}
	for _, ix := range i.indexes {
		ix.rebuild(i.objs)
	}
	handlers := i.handlers
	first := !i.synced
	i.synced = true
	i.mu.Unlock()
	if first {
		close(i.syncedCh)
	}
	for _, o := range objs {
		prev, ok := old[Key(o)]
		for _, h := range handlers {
			switch {
			case !ok && h.OnAdd != nil:
				h.OnAdd(o)
			case ok && h.OnUpdate != nil && prev.GetMetadata().GetResourceVersion() != o.GetMetadata().GetResourceVersion():
				h.OnUpdate(prev, o)
			}
		}
		delete(old, Key(o))
	}
	for _, o := range old {
		for _, h := range handlers {
			if h.OnDelete != nil {
				h.OnDelete(o)
			}
		}
	}
}

// apply puts one watch event into the cache and tells the handlers. An
// event replayed by a resumed watch (the object is already in the cache at
// that resourceVersion, or already gone) is skipped.
func (i *Informer) apply(ev storage.Event) {
	key := Key(ev.Object)
	i.mu.Lock()
	prev, had := i.objs[key]
	if (ev.Type == storage.Deleted && !had) ||
		(ev.Type != storage.Deleted && had && prev.GetMetadata().GetResourceVersion() == ev.Object.GetMetadata().GetResourceVersion()) {
		i.mu.Unlock()
		return
	}
	if ev.Type == storage.Deleted {
		delete(i.objs, key)
	} else {
		i.objs[key] = ev.Object
	}
	for _, ix := range i.indexes {
		if had {
			ix.remove(key, prev)
		}
		if ev.Type != storage.Deleted {
			ix.add(key, ev.Object)
		}
	}
	handlers := i.handlers
	i.mu.Unlock()
	for _, h := range handlers {
		switch {
		case ev.Type == storage.Deleted:
			if h.OnDelete != nil {
				h.OnDelete(ev.Object)
			}
		case had:
			if h.OnUpdate != nil {
				h.OnUpdate(prev, ev.Object)
			}
		default:
			if h.OnAdd != nil {
				h.OnAdd(ev.Object)
			}
		}
	}
}
