package store

import (
	"context"
	"fmt"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Mutation is one object UpdateMany changes, as Update would.
type Mutation struct {
	Namespace, Name string
	Mutate          func(resource.Object) error
	// Cached, if set, is the caller's copy of the object (an informer's),
	// to change without reading it first, as UpdateCached does.
	Cached resource.Object
}

// Limits of one UpdateMany transaction: etcd refuses a transaction of more
// than 128 operations or 1.5 MiB (its defaults).
const (
	manyMaxOps   = 64
	manyMaxBytes = 1 << 20
)

// UpdateMany applies each mutation with the semantics of Update, in few
// etcd round trips. The mutations with a Cached copy are written first,
// in one transaction on condition that none of their objects changed
// since the copy; those without, and those the copies were stale for
// (that transaction reads them when it fails), are then read in one
// round trip and written in another transaction. What still loses a race
// is redone alone with Update. So a mutate may run more than once, as with
// Update. errs[i] is mutation i's error, nil if it was written or had
// nothing to change.
//
// Controllers that write many small statuses at once (the hub's Work
// status writer and status aggregator during a failover) use it: one
// etcd transaction of 64 writes costs far less than 64 transactions.
func (s *Store) UpdateMany(ctx context.Context, kind *resource.Kind, ms []Mutation) []error {
	errs := make([]error, len(ms))
	for lo := 0; lo < len(ms); lo += manyMaxOps {
		hi := min(lo+manyMaxOps, len(ms))
		s.updateGroup(ctx, kind, ms[lo:hi], errs[lo:hi])
	}
	return errs
}

// updateGroup is UpdateMany for at most manyMaxOps mutations.
func (s *Store) updateGroup(ctx context.Context, kind *resource.Kind, ms []Mutation, errs []error) {
	g := &group{s: s, kind: kind, ms: ms, errs: errs, refs: make([]objectRef, len(ms)), states: make([]state, len(ms))}
	var cached, read, alone []int
	seen := map[string]bool{}
	for i, m := range ms {
		r, err := ref(storage.CheckKey(kind, m.Namespace, m.Name))
		if err != nil {
			errs[i] = err
			continue
		}
		g.refs[i] = r
		if seen[r.etcd] {
			alone = append(alone, i) // etcd takes a key once per transaction
			continue
		}
		seen[r.etcd] = true
		if st, ok := cachedState(m.Cached); ok && st.obj != nil {
			g.states[i] = st
			cached = append(cached, i)
		} else {
			read = append(read, i)
		}
	}
	// The caller's copies first: no read. What they were stale for comes
	// back read; what they had nothing to change for must be read.
	stale, unchanged, big := g.write(ctx, cached)
	alone = append(alone, big...)
	read = append(read, unchanged...)
	if len(read) > 0 {
		gets := make([]clientv3.Op, len(read))
		for j, i := range read {
			gets[j] = clientv3.OpGet(g.refs[i].etcd)
		}
		resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			for _, i := range read {
				errs[i] = fmt.Errorf("failed to read %s: %w", g.refs[i].key, err)
			}
			read = nil
		} else {
			for j, i := range read {
				g.states[i] = state{nsExists: true, kv: firstKV(resp.Responses[j])}
			}
		}
	}
	lost, _, big := g.write(ctx, append(stale, read...))
	alone = append(alone, big...)
	alone = append(alone, lost...)
	for _, i := range alone {
		if _, err := s.Update(ctx, kind, ms[i].Namespace, ms[i].Name, ms[i].Mutate); err != nil {
			errs[i] = err
		}
	}
}

// group is one updateGroup: states[i] is what mutation i is made on.
type group struct {
	s      *Store
	kind   *resource.Kind
	ms     []Mutation
	errs   []error
	refs   []objectRef
	states []state
}

// write makes mutations idx on their states and writes those that change
// in one transaction, on condition that none of their objects changed.
// If one did, the transaction writes nothing and reads them all: lost is
// those, their states read afresh. unchanged is the mutations that
// changed nothing on a cached state (to redo on a read one); big those
// that did not fit the transaction.
func (g *group) write(ctx context.Context, idx []int) (lost, unchanged, big []int) {
	type write struct {
		i    int
		next resource.Object
		val  []byte
	}
	var (
		writes []write
		size   int
	)
	for _, i := range idx {
		st, r := g.states[i], g.refs[i]
		if !st.exists() {
			g.errs[i] = fmt.Errorf("%s %w", r.key, ErrNotFound)
			continue
		}
		old, err := st.object(g.kind)
		if err != nil {
			g.errs[i] = err
			continue
		}
		next, changed, err := storage.PrepareMutate(r.key, old, g.ms[i].Mutate)
		if err != nil {
			g.errs[i] = err
			continue
		}
		if !changed {
			if st.cached {
				unchanged = append(unchanged, i)
			}
			continue
		}
		val, err := storage.Encode(next)
		if err != nil {
			g.errs[i] = err
			continue
		}
		if size+len(val) > manyMaxBytes {
			big = append(big, i) // too big to share this transaction
			continue
		}
		size += len(val)
		writes = append(writes, write{i: i, next: next, val: val})
	}
	if len(writes) == 0 {
		return nil, unchanged, big
	}
	// One transaction of one conditional transaction per object: each
	// write lands unless its object changed, and reads it if it did.
	ops := make([]clientv3.Op, len(writes))
	for j, w := range writes {
		key := g.refs[w.i].etcd
		ops[j] = clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", g.states[w.i].modRevision())},
			[]clientv3.Op{clientv3.OpPut(key, string(w.val))},
			[]clientv3.Op{clientv3.OpGet(key)})
	}
	tx, err := g.s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		for _, w := range writes {
			g.errs[w.i] = fmt.Errorf("failed to write %s: %w", g.refs[w.i].key, err)
		}
		return nil, unchanged, big
	}
	for j, w := range writes {
		sub := tx.Responses[j].GetResponseTxn()
		if sub.GetSucceeded() {
			resource.Meta(w.next).ResourceVersion = strconv.FormatInt(tx.Header.Revision, 10)
			continue
		}
		g.states[w.i] = state{nsExists: true, kv: firstKV(sub.GetResponses()[0])}
		lost = append(lost, w.i)
	}
	return lost, unchanged, big
}

// firstKV is the key-value a Get read, nil if none.
func firstKV(r *pb.ResponseOp) *mvccpb.KeyValue {
	if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
		return kvs[0]
	}
	return nil
}

// ManyUpdater is a store that can write many updates at once (Store);
// UpdateEach falls back to one Update after another for others.
type ManyUpdater interface {
	UpdateMany(ctx context.Context, kind *resource.Kind, ms []Mutation) []error
}

// UpdateEach applies ms through st's UpdateMany if it has one, else one
// Update at a time.
func UpdateEach(ctx context.Context, st storage.Interface, kind *resource.Kind, ms []Mutation) []error {
	if mu, ok := st.(ManyUpdater); ok {
		return mu.UpdateMany(ctx, kind, ms)
	}
	errs := make([]error, len(ms))
	for i, m := range ms {
		_, errs[i] = st.Update(ctx, kind, m.Namespace, m.Name, m.Mutate)
	}
	return errs
}

var _ ManyUpdater = (*Store)(nil)

// CachedWriter is a store whose writes can start from the caller's copy
// of the object instead of a read (Store: ApplyCached, UpdateCached).
type CachedWriter interface {
	ApplyCached(ctx context.Context, obj, cached resource.Object) (resource.Object, storage.ApplyResult, error)
	UpdateCached(ctx context.Context, cached resource.Object, mutate func(resource.Object) error) (resource.Object, error)
}

var _ CachedWriter = (*Store)(nil)

// ApplyFrom applies obj through st's ApplyCached if it has one (cached:
// the caller's copy of the stored object, nil if it knows of none), else
// with Apply.
func ApplyFrom(ctx context.Context, st storage.Interface, obj, cached resource.Object) (resource.Object, storage.ApplyResult, error) {
	if cw, ok := st.(CachedWriter); ok {
		return cw.ApplyCached(ctx, obj, cached)
	}
	return st.Apply(ctx, obj, storage.ApplyOptions{})
}

// UpdateFrom updates the object cached is a copy of through st's
// UpdateCached if it has one, else with Update.
func UpdateFrom(ctx context.Context, st storage.Interface, cached resource.Object, mutate func(resource.Object) error) (resource.Object, error) {
	if cw, ok := st.(CachedWriter); ok {
		return cw.UpdateCached(ctx, cached, mutate)
	}
	k, err := resource.KindOf(cached)
	if err != nil {
		return nil, err
	}
	md := cached.GetMetadata()
	return st.Update(ctx, k, md.GetNamespace(), md.GetName(), mutate)
}

// CreateMany creates objs as Create would, in few etcd round trips: one
// transaction for up to 64 of them, each created on its own condition
// (its key free, its namespace present). An object that cannot be created
// so — its key taken, its namespace missing, a resourceVersion given, or
// a key twice in objs — is then tried alone with Create, which says why.
// errs[i] is object i's error, nil if it was created. The hub's event
// recorder writes the events of a failover with it.
func (s *Store) CreateMany(ctx context.Context, objs []resource.Object) []error {
	errs := make([]error, len(objs))
	for lo := 0; lo < len(objs); lo += manyMaxOps {
		hi := min(lo+manyMaxOps, len(objs))
		s.createGroup(ctx, objs[lo:hi], errs[lo:hi])
	}
	return errs
}

func (s *Store) createGroup(ctx context.Context, objs []resource.Object, errs []error) {
	var (
		ops   []clientv3.Op
		idx   []int // ops[j] creates objs[idx[j]]
		alone []int
		size  int
		seen  = map[string]bool{}
	)
	for i, obj := range objs {
		r, err := ref(storage.CheckObjectKey(obj))
		if err != nil {
			errs[i] = err
			continue
		}
		if seen[r.etcd] || obj.GetMetadata().GetResourceVersion() != "" {
			alone = append(alone, i)
			continue
		}
		seen[r.etcd] = true
		next := storage.PrepareCreate(storage.Normalize(r.kind, obj), s.newUID(), s.now())
		val, err := storage.Encode(next)
		if err != nil {
			errs[i] = err
			continue
		}
		if size+len(val) > manyMaxBytes {
			alone = append(alone, i)
			continue
		}
		size += len(val)
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(r.etcd), "=", 0)}
		if nk := r.namespaceKey(); nk != "" {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(nk), ">", 0))
		}
		ops = append(ops, clientv3.OpTxn(cmps, []clientv3.Op{clientv3.OpPut(r.etcd, string(val))}, nil))
		idx = append(idx, i)
	}
	if len(ops) > 0 {
		tx, err := s.cli.Txn(ctx).Then(ops...).Commit()
		for j, i := range idx {
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("failed to create %s: %w", objs[i].GetMetadata().GetName(), err)
			case !tx.Responses[j].GetResponseTxn().GetSucceeded():
				alone = append(alone, i)
			}
		}
	}
	for _, i := range alone {
		if _, err := s.Create(ctx, objs[i]); err != nil {
			errs[i] = err
		}
	}
}
