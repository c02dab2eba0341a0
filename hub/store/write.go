package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

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
	return s.apply(ctx, obj, opts.DryRun, false, nil)
}

// ApplyCached is Apply (without dry run) for a caller that holds a copy
// of the stored object — an informer's — or knows of none (cached nil):
// the write is tried on that copy at once, conditional on its
// resourceVersion (on the key being absent for nil), instead of after a
// read. A stale copy costs what a lost race costs: the failed transaction
// reads the stored state, and the apply is redone on it. An apply that
// changes nothing on the copy is redone on the stored object. A
// resourceVersion in obj makes it a plain Apply.
func (s *Store) ApplyCached(ctx context.Context, obj, cached resource.Object) (resource.Object, ApplyResult, error) {
	hint, ok := cachedState(cached)
	if !ok || obj.GetMetadata().GetResourceVersion() != "" {
		return s.apply(ctx, obj, false, false, nil)
	}
	return s.apply(ctx, obj, false, false, &hint)
}

// Create creates obj, as Apply would, but fails with ErrAlreadyExists if an
// object of that kind, namespace and name exists. Controllers create what
// they own with it, so that they never overwrite someone else's object.
func (s *Store) Create(ctx context.Context, obj resource.Object) (resource.Object, error) {
	out, _, err := s.apply(ctx, obj, false, true, nil)
	return out, err
}

func (s *Store) apply(ctx context.Context, obj resource.Object, dryRun, createOnly bool, hint *state) (resource.Object, ApplyResult, error) {
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
	switch {
	case hint != nil:
		cur = *hint
	case !createOnly || dryRun:
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
		case !cur.exists() && wantRV != 0:
			return nil, 0, fmt.Errorf("%s %w: the object does not exist, cannot apply with resourceVersion %d", r.key, ErrNotFound, wantRV)
		case !cur.exists() && !cur.nsExists:
			return nil, 0, fmt.Errorf("cannot create %s: namespace %q %w", r.key, r.key.Namespace, ErrNotFound)
		case !cur.exists():
			next, result = storage.PrepareCreate(in, s.newUID(), s.now()), Created
		case createOnly:
			return nil, 0, fmt.Errorf("%s %w", r.key, ErrAlreadyExists)
		case wantRV != 0 && wantRV != cur.modRevision():
			return nil, 0, &ConflictError{Key: r.key.String(), Requested: wantRV, Current: cur.modRevision()}
		default:
			old, err := cur.object(r.kind)
			if err != nil {
				return nil, 0, err
			}
			var changed bool
			if next, changed, err = storage.PrepareApply(r.key, old, in); err != nil {
				return nil, 0, err
			}
			if !changed && cur.cached {
				// Nothing to do on the caller's copy; the stored object
				// may say otherwise.
				if cur, err = s.readState(ctx, r); err != nil {
					return nil, 0, err
				}
				continue
			}
			if !changed {
				return old, Unchanged, nil
			}
			result = Configured
		}
		if dryRun {
			if cur.exists() {
				resource.Meta(next).ResourceVersion = strconv.FormatInt(cur.modRevision(), 10)
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
	return s.update(ctx, r, cur, mutate)
}

// UpdateCached is Update for a caller that holds a copy of the stored
// object (an informer's): mutate runs on that copy and the result is
// written at once, conditional on its resourceVersion, instead of after a
// read. A stale copy costs what a lost race costs (the failed transaction
// reads the stored state, and mutate runs again on it); so does a mutate
// that changes nothing on the copy.
func (s *Store) UpdateCached(ctx context.Context, cached resource.Object, mutate func(resource.Object) error) (resource.Object, error) {
	r, err := ref(storage.CheckObjectKey(cached))
	if err != nil {
		return nil, err
	}
	cur, ok := cachedState(cached)
	if !ok || cur.rev == 0 {
		if cur, err = s.readState(ctx, r); err != nil {
			return nil, err
		}
	}
	return s.update(ctx, r, cur, mutate)
}

// update is Update from the state cur.
func (s *Store) update(ctx context.Context, r objectRef, cur state, mutate func(resource.Object) error) (resource.Object, error) {
	for attempt := 1; ; attempt++ {
		if !cur.exists() {
			return nil, fmt.Errorf("%s %w", r.key, ErrNotFound)
		}
		old, err := cur.object(r.kind)
		if err != nil {
			return nil, err
		}
		next, changed, err := storage.PrepareMutate(r.key, old, mutate)
		if err != nil {
			return nil, err
		}
		if !changed && cur.cached {
			if cur, err = s.readState(ctx, r); err != nil {
				return nil, err
			}
			continue
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
	var (
		succeeded bool
		responses []*pb.ResponseOp
		revision  int64
	)
	if kind == namespaceKind {
		// Alone: etcd refuses a transaction that writes a key inside a
		// range it deletes, which a batch could hold.
		resp, err := s.cli.Txn(ctx).If(cmp).Then(ops...).Else(clientv3.OpGet(r.etcd)).Commit()
		if err != nil {
			return nil, fmt.Errorf("failed to delete %s: %w", r.key, err)
		}
		succeeded, responses, revision = resp.Succeeded, resp.Responses, resp.Header.Revision
	} else {
		t := &batchedTxn{key: r.etcd, cmps: []clientv3.Cmp{cmp}, then: ops, els: []clientv3.Op{clientv3.OpGet(r.etcd)}, size: len(r.etcd)}
		if err := s.batch.do(ctx, t); err != nil {
			return nil, fmt.Errorf("failed to delete %s: %w", r.key, err)
		}
		succeeded, responses, revision = t.succeeded, t.responses, t.revision
	}
	if !succeeded {
		kvs := responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return nil, fmt.Errorf("%s %w", r.key, ErrNotFound)
		}
		return nil, &ConflictError{Key: r.key.String(), Requested: wantRV, Current: kvs[0].ModRevision}
	}
	prev := responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 {
		return nil, fmt.Errorf("failed to delete %s: etcd returned no previous value", r.key)
	}
	obj, err := storage.Decode(kind, prev[0].Value, revision)
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
	// cached is set for a state the caller believes, not one read: its
	// object (obj, at revision rev; absent if obj is nil). Nothing is
	// concluded from it without a write conditional on it.
	cached bool
	obj    resource.Object
	rev    int64
}

// cachedState is the state of a caller's copy of an object (nil: none).
// ok is false if the copy has no usable resourceVersion.
func cachedState(cached resource.Object) (state, bool) {
	if cached == nil || reflect.ValueOf(cached).IsNil() {
		return state{nsExists: true, cached: true}, true
	}
	rv, err := strconv.ParseInt(cached.GetMetadata().GetResourceVersion(), 10, 64)
	if err != nil || rv <= 0 {
		return state{}, false
	}
	// A copy of its own: what is written shares messages with it.
	return state{nsExists: true, cached: true, obj: proto.Clone(cached).(resource.Object), rev: rv}, true
}

func (st state) exists() bool { return st.kv != nil || st.obj != nil }

func (st state) modRevision() int64 {
	if st.kv != nil {
		return st.kv.ModRevision
	}
	return st.rev
}

// object is the object of an existing state.
func (st state) object(kind *resource.Kind) (resource.Object, error) {
	if st.obj != nil {
		return st.obj, nil
	}
	return decodeKV(kind, st.kv)
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
	if !cur.exists() {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(r.etcd), "=", 0))
		if nk := r.namespaceKey(); nk != "" {
			// Checked in the same transaction, so that an object can never
			// be created in a namespace that is being deleted.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(nk), ">", 0))
		}
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.etcd), "=", cur.modRevision()))
	}
	t := &batchedTxn{key: r.etcd, cmps: cmps, then: []clientv3.Op{clientv3.OpPut(r.etcd, string(val))}, els: r.stateOps(), size: len(r.etcd) + len(val)}
	if err := s.batch.do(ctx, t); err != nil {
		return false, 0, state{}, fmt.Errorf("failed to write %s: %w", r.key, err)
	}
	if t.succeeded {
		return true, t.revision, state{}, nil
	}
	return false, 0, stateFrom(t.responses), nil
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
