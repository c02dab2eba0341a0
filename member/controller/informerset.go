package controller

import (
	"context"
	"log/slog"
	"sync"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// InformerSet shares one informer per kind among every controller of a member.
type InformerSet struct {
	store storage.Interface
	log   *slog.Logger

	mu      sync.Mutex
	byKind  map[*resource.Kind]*Informer
	started bool
}

// NewInformerSet returns an empty set over st.
func NewInformerSet(st storage.Interface, log *slog.Logger) *InformerSet {
	return &InformerSet{store: st, log: log, byKind: map[*resource.Kind]*Informer{}}
}

// For returns the informer of kind, creating it on first use. Ask for every
// informer before Run.
func (s *InformerSet) For(kind *resource.Kind) *Informer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if inf, ok := s.byKind[kind]; ok {
		return inf
	}
	if s.started {
		// A programming error: the informer would never run. Fail loudly in
		// tests rather than hang a controller forever.
		panic("controller: InformerSet.For(" + kind.Plural + ") after Run")
	}
	inf := NewInformer(s.store, kind, s.log)
	s.byKind[kind] = inf
	return inf
}

// Run runs every informer until ctx ends.
func (s *InformerSet) Run(ctx context.Context) {
	s.mu.Lock()
	s.started = true
	infs := make([]*Informer, 0, len(s.byKind))
	for _, inf := range s.byKind {
		infs = append(infs, inf)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, inf := range infs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.Run(ctx)
		}()
	}
	wg.Wait()
}

// WaitForSync blocks until every informer has loaded its first list.
func (s *InformerSet) WaitForSync(ctx context.Context) bool {
	s.mu.Lock()
	infs := make([]*Informer, 0, len(s.byKind))
	for _, inf := range s.byKind {
		infs = append(infs, inf)
	}
	s.mu.Unlock()
	for _, inf := range infs {
		if !inf.WaitForSync(ctx) {
			return false
		}
	}
	return true
}
