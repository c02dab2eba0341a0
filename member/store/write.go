package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// maxAttempts bounds the read-modify-write loop of Update. Each lost attempt
// means another writer won, so the store as a whole makes progress; the
// bound only stops a single call from spinning under heavy contention on one
// object.
const maxAttempts = 10

// Apply creates obj, or updates the stored object of the same kind,
// namespace and name to obj (the whole object: fields obj leaves out are
// cleared). The server owns uid, creationTimestamp, generation, status and
// deletionTimestamp: it sets them on create and keeps the stored ones on
// update, whatever obj says. If obj's content equals the stored object,
// nothing is written and the result is Unchanged.
//
// A resourceVersion in obj makes the write conditional: ErrConflict (a
// *storage.ConflictError) if the stored object has another one, ErrNotFound
// if there is none. A uid in obj must be the stored object's (ErrConflict
// otherwise). The checks and the write are one transaction, so an Apply
// without a resourceVersion never loses a race.
//
// A Secret's stringData is merged into its data, and not stored. obj is not
// modified; Apply returns the stored object with its new resourceVersion.
func (s *Store) Apply(ctx context.Context, obj resource.Object, opts storage.ApplyOptions) (resource.Object, storage.ApplyResult, error) {
	return s.apply(ctx, obj, opts.DryRun, false)
}

// Create creates obj, as Apply would, but fails with ErrAlreadyExists if an
// object of that kind, namespace and name exists.
func (s *Store) Create(ctx context.Context, obj resource.Object) (resource.Object, error) {
	out, _, err := s.apply(ctx, obj, false, true)
	return out, err
}

func (s *Store) apply(ctx context.Context, obj resource.Object, dryRun, createOnly bool) (resource.Object, storage.ApplyResult, error) {
	r, err := ref(storage.CheckObjectKey(obj))
	if err != nil {
		return nil, 0, err
	}
	in := storage.Normalize(r.kind, obj)
	wantRV, err := storage.ParseResourceVersion(r.key, in.GetMetadata().GetResourceVersion())
	if err != nil {
		return nil, 0, err
	}
	var p applyPlan
	if dryRun {
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("failed to read %s: %w", r.key, err)
		}
		err := s.view(func(tx *bolt.Tx) error {
			var err error
			p, err = s.plan(tx, r, in, wantRV, createOnly)
			return err
		})
		if errors.Is(err, ErrClosed) {
			return nil, 0, fmt.Errorf("failed to read %s: %w", r.key, err)
		}
		if err != nil {
			return nil, 0, err
		}
		if p.cur != nil && p.result != storage.Unchanged {
			resource.Meta(p.obj).ResourceVersion = strconv.FormatInt(p.cur.modRev, 10)
		}
		return p.obj, p.result, nil
	}

	rev, err := s.commit(ctx, r.key.String(), func(w *writeTx) error {
		var err error
		if p, err = s.plan(w.tx, r, in, wantRV, createOnly); err != nil || p.result == storage.Unchanged {
			return err
		}
		return w.put(r, p.obj, p.cur)
	})
	if err != nil {
		return nil, 0, err
	}
	if p.result != storage.Unchanged {
		resource.Meta(p.obj).ResourceVersion = strconv.FormatInt(rev, 10)
	}
	return p.obj, p.result, nil
}

// applyPlan is what an Apply does, decided against the stored state.
type applyPlan struct {
	result storage.ApplyResult
	// obj is the object to store (Created, Configured), or the stored one
	// (Unchanged).
	obj resource.Object
	// cur is the stored record obj replaces, nil for a creation. Only valid
	// during the transaction that read it.
	cur *record
}

// plan decides an Apply of in (normalized) to r in tx.
func (s *Store) plan(tx *bolt.Tx, r objectRef, in resource.Object, wantRV int64, createOnly bool) (applyPlan, error) {
	cur, err := getRecord(tx, r.db)
	if err != nil {
		return applyPlan{}, err
	}
	nsExists := true
	if nk := r.namespaceKey(); nk != "" && cur == nil {
		ns, err := getRecord(tx, nk)
		if err != nil {
			return applyPlan{}, err
		}
		nsExists = ns != nil
	}
	switch {
	case cur == nil && wantRV != 0:
		return applyPlan{}, fmt.Errorf("%s %w: the object does not exist, cannot apply with resourceVersion %d", r.key, storage.ErrNotFound, wantRV)
	case cur == nil && !nsExists:
		return applyPlan{}, fmt.Errorf("cannot create %s: namespace %q %w", r.key, r.key.Namespace, storage.ErrNotFound)
	case cur == nil:
		return applyPlan{result: storage.Created, obj: storage.PrepareCreate(in, s.newUID(), s.now())}, nil
	case createOnly:
		return applyPlan{}, fmt.Errorf("%s %w", r.key, storage.ErrAlreadyExists)
	case wantRV != 0 && wantRV != cur.modRev:
		return applyPlan{}, &storage.ConflictError{Key: r.key.String(), Requested: wantRV, Current: cur.modRev}
	}
	old, err := storage.Decode(r.kind, cur.data, cur.modRev)
	if err != nil {
		return applyPlan{}, fmt.Errorf("%s: %w", r.key, err)
	}
	next, changed, err := storage.PrepareApply(r.key, old, in)
	if err != nil {
		return applyPlan{}, err
	}
	if !changed {
		return applyPlan{result: storage.Unchanged, obj: old, cur: cur}, nil
	}
	return applyPlan{result: storage.Configured, obj: next, cur: cur}, nil
}

// Update changes one object with mutate and writes it back if it changed,
// in a compare-and-swap loop: when another writer wins, mutate runs again on
// a fresh copy (so it must be free of side effects). It is how controllers
// write status. mutate works on a copy, outside any transaction (it may
// read the store); its changes to uid, creationTimestamp, generation and
// resourceVersion are ignored, renaming the object is ErrInvalid, and
// generation follows the rules of Apply. An error from mutate ends Update
// and is returned wrapped. Without a change Update writes nothing and
// returns the stored object.
func (s *Store) Update(ctx context.Context, kind *resource.Kind, namespace, name string, mutate func(resource.Object) error) (resource.Object, error) {
	r, err := ref(storage.CheckKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	cur, err := s.readRecord(ctx, r)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if cur == nil {
			return nil, fmt.Errorf("%s %w", r.key, storage.ErrNotFound)
		}
		old, err := storage.Decode(kind, cur.data, cur.modRev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.key, err)
		}
		next, changed, err := storage.PrepareMutate(r.key, old, mutate)
		if err != nil {
			return nil, err
		}
		if !changed {
			return old, nil
		}
		var now *record
		rev, err := s.commit(ctx, r.key.String(), func(w *writeTx) error {
			got, err := w.get(r)
			if err != nil {
				return err
			}
			if got == nil || got.modRev != cur.modRev {
				now = got.clone() // lost: write nothing, retry on this
				return nil
			}
			return w.put(r, next, got)
		})
		if err != nil {
			return nil, err
		}
		if rev != 0 {
			resource.Meta(next).ResourceVersion = strconv.FormatInt(rev, 10)
			return next, nil
		}
		if cur, err = s.retryRecord(ctx, r, attempt, now); err != nil {
			return nil, err
		}
	}
}

// readRecord reads the record of r out of a read transaction (nil if none).
func (s *Store) readRecord(ctx context.Context, r objectRef) (*record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", r.key, err)
	}
	var rec *record
	err := s.view(func(tx *bolt.Tx) error {
		got, err := getRecord(tx, r.db)
		rec = got.clone()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", r.key, err)
	}
	return rec, nil
}

// retryRecord is the record to retry a lost read-modify-write on. The first
// retry is immediate, on the record the losing transaction read (current as
// of that moment). Later ones wait first — exponential backoff with full
// jitter, random up to 1, 2, 4 ... 64 ms, so that writers racing for one key
// spread out — and then read afresh. After maxAttempts it gives up with
// ErrConflict.
func (s *Store) retryRecord(ctx context.Context, r objectRef, attempt int, lost *record) (*record, error) {
	if attempt >= maxAttempts {
		return nil, fmt.Errorf("%s: %w: lost the race for it %d times; try again", r.key, storage.ErrConflict, attempt)
	}
	if attempt == 1 {
		return lost, nil
	}
	t := time.NewTimer(rand.N(time.Millisecond << min(attempt-2, 6)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, fmt.Errorf("failed to write %s: %w", r.key, ctx.Err())
	}
	return s.readRecord(ctx, r)
}

// Delete deletes one object and returns its last state, with resourceVersion
// set to the revision of the deletion (as a watch reports it). A non-empty
// resourceVersion makes it conditional (ErrConflict if the stored object has
// another). Deleting a Namespace deletes every namespaced object in it, in
// the same transaction and at the same revision.
func (s *Store) Delete(ctx context.Context, kind *resource.Kind, namespace, name, resourceVersion string) (resource.Object, error) {
	r, err := ref(storage.CheckKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	wantRV, err := storage.ParseResourceVersion(r.key, resourceVersion)
	if err != nil {
		return nil, err
	}
	var last resource.Object
	_, err = s.commit(ctx, r.key.String(), func(w *writeTx) error {
		cur, err := w.get(r)
		switch {
		case err != nil:
			return err
		case cur == nil:
			return fmt.Errorf("%s %w", r.key, storage.ErrNotFound)
		case wantRV != 0 && wantRV != cur.modRev:
			return &storage.ConflictError{Key: r.key.String(), Requested: wantRV, Current: cur.modRev}
		}
		if last, err = storage.Decode(kind, cur.data, w.rev); err != nil {
			return fmt.Errorf("%s: %w", r.key, err)
		}
		if err := w.delete(kind, []byte(r.db), cur); err != nil {
			return err
		}
		if kind != namespaceKind {
			return nil
		}
		for _, k := range resource.All() {
			if k.Namespaced {
				if err := w.deletePrefix(k, []byte(rangePrefix(k, name))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return last, nil
}
