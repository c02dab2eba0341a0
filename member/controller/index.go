package controller

import (
	"errors"
	"fmt"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// An informer can keep indexes of its cache, as client-go's Indexer does:
// an IndexFunc maps an object to the values it is found under, and ByIndex
// returns the objects under a value without a scan. Controllers look up a
// workload's dependents this way; listing a whole namespace on every sync
// made a namespace of N workloads cost N² per resync.

// IndexFunc returns the values an object is indexed under (none to leave
// it out). It must be a pure function of the object: the informer calls it
// again on the old object to take it out of the index.
type IndexFunc func(obj resource.Object) []string

// ErrNoIndex is the error of ByIndex for an index that was never added.
var ErrNoIndex = errors.New("no such index")

// Indexes that controllers of dependents share; IndexControllers adds them.
const (
	// IndexController indexes objects by their controller's uid, within
	// their namespace (ControllerValue); orphans are under the uid "".
	IndexController = "controller"
	// IndexControllerName indexes objects that have a controller by that
	// controller's kind and name, within their namespace
	// (ControllerNameValue); orphans are not in it.
	IndexControllerName = "controller-name"
)

// ControllerValue is the IndexController value of the objects in
// namespace that the owner with uid controls ("" for orphans).
func ControllerValue(namespace, uid string) string {
	return namespace + "/" + uid
}

// ControllerNameValue is the IndexControllerName value of the objects in
// namespace whose controller reference names kind/name, whatever its uid.
func ControllerNameValue(namespace, kind, name string) string {
	return namespace + "/" + kind + "/" + name
}

func indexByController(o resource.Object) []string {
	return []string{ControllerValue(o.GetMetadata().GetNamespace(), ControllerOf(o).GetUid())}
}

func indexByControllerName(o resource.Object) []string {
	ref := ControllerOf(o)
	if ref == nil {
		return nil
	}
	return []string{ControllerNameValue(o.GetMetadata().GetNamespace(), ref.GetKind(), ref.GetName())}
}

// IndexControllers adds IndexController and IndexControllerName to inf
// (once: every controller of a kind's dependents may ask).
func IndexControllers(inf *Informer) {
	inf.AddIndex(IndexController, indexByController)
	inf.AddIndex(IndexControllerName, indexByControllerName)
}

// ClaimCandidates returns the objects of inf (which has IndexController)
// that a sync of the owner with uid in namespace passes to a claim: those
// it controls and the orphans it may adopt. Objects controlled by anyone
// else are not among them.
func ClaimCandidates(inf *Informer, namespace, uid string) ([]resource.Object, error) {
	return inf.ByIndex(IndexController, ControllerValue(namespace, uid), ControllerValue(namespace, ""))
}

// ControlledByName returns the objects of inf (which has
// IndexControllerName) whose controller reference names kind/name in
// namespace, whatever its uid: what garbage collection of a deleted or
// re-created owner looks at.
func ControlledByName(inf *Informer, namespace, kind, name string) ([]resource.Object, error) {
	return inf.ByIndex(IndexControllerName, ControllerNameValue(namespace, kind, name))
}

// index is one index of an informer's cache. It is guarded by the
// informer's mu.
type index struct {
	fn     IndexFunc
	values map[string]map[string]resource.Object // value → Key → object
}

func (ix *index) add(key string, o resource.Object) {
	for _, v := range ix.fn(o) {
		set := ix.values[v]
		if set == nil {
			set = map[string]resource.Object{}
			ix.values[v] = set
		}
		set[key] = o
	}
}

func (ix *index) remove(key string, o resource.Object) {
	for _, v := range ix.fn(o) {
		set := ix.values[v]
		delete(set, key)
		if len(set) == 0 {
			delete(ix.values, v)
		}
	}
}

func (ix *index) rebuild(objs map[string]resource.Object) {
	ix.values = map[string]map[string]resource.Object{}
	for k, o := range objs {
		ix.add(k, o)
	}
}

// AddIndex adds an index called name, computed by fn, and fills it from
// what the cache already holds. Adding a name a second time does nothing
// (the first fn stays): controllers sharing an informer may each ask for
// the index they need.
func (i *Informer) AddIndex(name string, fn IndexFunc) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.indexes[name]; ok {
		return
	}
	ix := &index{fn: fn}
	ix.rebuild(i.objs)
	i.indexes[name] = ix
}

// ByIndex returns the cached objects indexed under any of values in the
// index called name, each once, in no particular order. The objects are
// shared: clone before changing.
func (i *Informer) ByIndex(name string, values ...string) ([]resource.Object, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	ix, ok := i.indexes[name]
	if !ok {
		return nil, fmt.Errorf("failed to look up %s by %q: %w", i.kind.Plural, name, ErrNoIndex)
	}
	n := 0
	for _, v := range values {
		n += len(ix.values[v])
	}
	out := make([]resource.Object, 0, n)
	var seen map[string]bool
	if len(values) > 1 {
		seen = make(map[string]bool, n)
	}
	for _, v := range values {
		for k, o := range ix.values[v] {
			if seen != nil {
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			out = append(out, o)
		}
	}
	return out, nil
}
