package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Apply creates obj, or updates the stored object of the same kind,
// namespace and name to obj (the whole object: fields obj leaves out are
// cleared). The server owns uid, creationTimestamp, generation, status and
// deletionTimestamp: it sets them on create and keeps the stored ones on
// update, whatever obj says. If obj's content equals the stored object,
// nothing is written and the result is Unchanged.
//
// A resourceVersion in obj makes the write conditional: ErrConflict (a
// *ConflictError) if the stored object has another one, ErrNotFound if there
// is none. A uid in obj must be the stored object's (ErrConflict otherwise).
// Without a resourceVersion a write that loses a race re-reads and retries.
//
// A Secret's stringData is merged into its data, and not stored. obj is not
// modified; Apply returns the stored object with its new resourceVersion.
func (s *Store) Apply(ctx context.Context, obj resource.Object, opts ApplyOptions) (resource.Object, ApplyResult, error) {
	return s.apply(ctx, obj, opts.DryRun, false)
}

// Create creates obj, as Apply would, but fails with ErrAlreadyExists if an
// object of that kind, namespace and name exists. Controllers create what
// they own with it, so that they never overwrite someone else's object.
func (s *Store) Create(ctx context.Context, obj resource.Object) (resource.Object, error) {
	out, _, err := s.apply(ctx, obj, false, true)
	return out, err
}

func (s *Store) apply(ctx context.Context, obj resource.Object, dryRun, createOnly bool) (resource.Object, ApplyResult, error) {
	r, err := ref(storage.CheckObjectKey(obj))
	if err != nil {
		return nil, 0, err
	}
	in := storage.Normalize(r.kind, obj)
	wantRV, err := storage.ParseResourceVersion(r.key, in.GetMetadata().GetResourceVersion())
	if err != nil {
		return nil, 0, err
	}
	// A create is tried blind: its transaction checks that the object is
	// absent and its namespace present, and reads the state in the same
	// round trip if not (one round trip instead of two for every event,
	// binding and Work the hub creates).
	cur := state{nsExists: true}
	if !createOnly || dryRun {
		if cur, err = s.readState(ctx, r); err != nil {
			return nil, 0, err
		}
	}
	for attempt := 1; ; attempt++ {
		var (
			next   resource.Object
			result ApplyResult
		)
		switch {
		case cur.kv == nil && wantRV != 0:
			return nil, 0, fmt.Errorf("%s %w: the object does not exist, cannot apply with resourceVersion %d", r.key, ErrNotFound, wantRV)
		case cur.kv == nil && !cur.nsExists:
			return nil, 0, fmt.Errorf("cannot create %s: namespace %q %w", r.key, r.key.Namespace, ErrNotFound)
		case cur.kv == nil:
			next, result = storage.PrepareCreate(in, s.newUID(), s.now()), Created
		case createOnly:
			return nil, 0, fmt.Errorf("%s %w", r.key, ErrAlreadyExists)
		case wantRV != 0 && wantRV != cur.kv.ModRevision:
			return nil, 0, &ConflictError{Key: r.key.String(), Requested: wantRV, Current: cur.kv.ModRevision}
		default:
			old, err := decodeKV(r.kind, cur.kv)
			if err != nil {
				return nil, 0, err
			}
			var changed bool
			if next, changed, err = storage.PrepareApply(r.key, old, in); err != nil {
				return nil, 0, err
			}
			if !changed {
				return old, Unchanged, nil
			}
			result = Configured
		}
		if dryRun {
			if cur.kv != nil {
				resource.Meta(next).ResourceVersion = strconv.FormatInt(cur.kv.ModRevision, 10)
			}
			return next, result, nil
		}

		ok, rev, now, err := s.write(ctx, r, cur, next)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			resource.Meta(next).ResourceVersion = strconv.FormatInt(rev, 10)
			return next, result, nil
		}
		// Another writer won. With a resourceVersion that is the caller's
		// conflict to resolve; without, redo on what is stored now.
		if wantRV != 0 {
			if now.kv == nil {
				return nil, 0, fmt.Errorf("%s %w: it was deleted while being applied", r.key, ErrNotFound)
			}
			return nil, 0, &ConflictError{Key: r.key.String(), Requested: wantRV, Current: now.kv.ModRevision}
		}
		if cur, err = s.retryState(ctx, r, attempt, now); err != nil {
			return nil, 0, err
		}
	}
}

// Update changes one object with mutate and writes it back if it changed,
// in a compare-and-swap loop: when another writer wins, mutate runs again on
// a fresh copy (so it must be free of side effects). It is how controllers
// write status. mutate works on a copy; its changes to uid,
// creationTimestamp, generation and resourceVersion are ignored, renaming
// the object is ErrInvalid, and generation follows the rules of Apply. An
// error from mutate ends Update and is returned wrapped. Without a change
// Update writes nothing and returns the stored object.
func (s *Store) Update(ctx context.Context, kind *resource.Kind, namespace, name string, mutate func(resource.Object) error) (resource.Object, error) {
	r, err := ref(storage.CheckKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	cur, err := s.readState(ctx, r)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if cur.kv == nil {
			return nil, fmt.Errorf("%s %w", r.key, ErrNotFound)
		}
		old, err := decodeKV(kind, cur.kv)
		if err != nil {
			return nil, err
		}
		next, changed, err := storage.PrepareMutate(r.key, old, mutate)
		if err != nil {
			return nil, err
		}
		if !changed {
			return old, nil
		}
		ok, rev, now, err := s.write(ctx, r, cur, next)
		if err != nil {
			return nil, err
		}
		if ok {
			resource.Meta(next).ResourceVersion = strconv.FormatInt(rev, 10)
			return next, nil
		}
		if cur, err = s.retryState(ctx, r, attempt, now); err != nil {
			return nil, err
		}
	}
}

// Delete deletes one object and returns its last state, with resourceVersion
// set to the revision of the deletion (as a watch reports it). A non-empty
// resourceVersion makes it conditional (ErrConflict if the stored object has
// another). Deleting a Namespace deletes every namespaced object in it, in
// the same transaction.
func (s *Store) Delete(ctx context.Context, kind *resource.Kind, namespace, name, resourceVersion string) (resource.Object, error) {
	r, err := ref(storage.CheckKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	wantRV, err := storage.ParseResourceVersion(r.key, resourceVersion)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(r.etcd), ">", 0)
	if wantRV != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(r.etcd), "=", wantRV)
	}
	ops := []clientv3.Op{clientv3.OpDelete(r.etcd, clientv3.WithPrevKV())}
	if kind == namespaceKind {
		// One DeleteRange per namespaced kind: the transaction stays small
		// (etcd allows 128 operations) however many objects there are.
		for _, k := range resource.All() {
			if k.Namespaced {
				ops = append(ops, clientv3.OpDelete(rangePrefix(k, name), clientv3.WithPrefix()))
			}
		}
	}
	resp, err := s.cli.Txn(ctx).If(cmp).Then(ops...).Else(clientv3.OpGet(r.etcd)).Commit()
	if err != nil {
		return nil, fmt.Errorf("failed to delete %s: %w", r.key, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return nil, fmt.Errorf("%s %w", r.key, ErrNotFound)
		}
		return nil, &ConflictError{Key: r.key.String(), Requested: wantRV, Current: kvs[0].ModRevision}
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 {
		return nil, fmt.Errorf("failed to delete %s: etcd returned no previous value", r.key)
	}
	obj, err := storage.Decode(kind, prev[0].Value, resp.Header.Revision)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.key, err)
	}
	return obj, nil
}

// state is what a write needs to know about an object's key: its current
// key-value (nil if none) and whether its namespace exists (always true for
// cluster-scoped kinds).
type state struct {
	kv       *mvccpb.KeyValue
	nsExists bool
}

// stateOps read the state of r: the object, and its namespace's existence.
func (r objectRef) stateOps() []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpGet(r.etcd)}
	if nk := r.namespaceKey(); nk != "" {
		ops = append(ops, clientv3.OpGet(nk, clientv3.WithCountOnly()))
	}
	return ops
}

// stateFrom reads the responses of stateOps.
func stateFrom(rs []*pb.ResponseOp) state {
	st := state{nsExists: true}
	if kvs := rs[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		st.kv = kvs[0]
	}
	if len(rs) > 1 {
		st.nsExists = rs[1].GetResponseRange().GetCount() > 0
	}
	return st
}

// readState reads the state of r in one linearizable round trip.
func (s *Store) readState(ctx context.Context, r objectRef) (state, error) {
	resp, err := s.cli.Txn(ctx).Then(r.stateOps()...).Commit()
	if err != nil {
		return state{}, fmt.Errorf("failed to read %s: %w", r.key, err)
	}
	return stateFrom(resp.Responses), nil
}

// write stores next if the key is still as cur says: absent (and the
// namespace present) for a create, at cur's mod revision for an update. It
// reports whether it wrote and the new revision; if not, the state it found
// instead, read in the same transaction.
func (s *Store) write(ctx context.Context, r objectRef, cur state, next resource.Object) (bool, int64, state, error) {
	val, err := storage.Encode(next)
	if err != nil {
		return false, 0, state{}, err
	}
	var cmps []clientv3.Cmp
	if cur.kv == nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(r.etcd), "=", 0))
		if nk := r.namespaceKey(); nk != "" {
			// Checked in the same transaction, so that an object can never
			// be created in a namespace that is being deleted.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(nk), ">", 0))
		}
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.etcd), "=", cur.kv.ModRevision))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(r.etcd, string(val))).Else(r.stateOps()...).Commit()
	if err != nil {
		return false, 0, state{}, fmt.Errorf("failed to write %s: %w", r.key, err)
	}
	if resp.Succeeded {
		return true, resp.Header.Revision, state{}, nil
	}
	return false, 0, stateFrom(resp.Responses), nil
}

// retryState is the state to retry a lost read-modify-write on. The first
// retry is immediate, on the state the losing transaction read (current as
// of that moment). Later ones wait first — exponential backoff with full
// jitter, random up to 1, 2, 4 ... 64 ms, so that writers racing for one key
// spread out — and then read afresh, since the state read before waiting is
// likely stale after it. After maxAttempts it gives up with ErrConflict.
func (s *Store) retryState(ctx context.Context, r objectRef, attempt int, lost state) (state, error) {
	if attempt >= maxAttempts {
		return state{}, fmt.Errorf("%s: %w: lost the race for it %d times; try again", r.key, ErrConflict, attempt)
	}
	if attempt == 1 {
		return lost, nil
	}
	t := time.NewTimer(rand.N(time.Millisecond << min(attempt-2, 6)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return state{}, fmt.Errorf("failed to write %s: %w", r.key, ctx.Err())
	}
	return s.readState(ctx, r)
}
