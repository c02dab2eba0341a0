package store

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Mutation is one object UpdateMany changes, as Update would.
type Mutation struct {
	Namespace, Name string
	Mutate          func(resource.Object) error
}

// Limits of one UpdateMany transaction: etcd refuses a transaction of more
// than 128 operations or 1.5 MiB (its defaults).
const (
	manyMaxOps   = 64
	manyMaxBytes = 1 << 20
)

// UpdateMany applies each mutation with the semantics of Update, in few
// etcd round trips: one read of a group of objects, then one transaction
// that writes every object of the group that changed, on condition that
// none of them changed since the read. When another writer changed one
// of them meanwhile, that transaction writes nothing, and each mutation
// of the group is redone alone with Update (so a mutate may run more
// than once, as with Update). errs[i] is mutation i's error, nil if it
// was written or had nothing to change.
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
	refs := make([]objectRef, len(ms))
	var gets []clientv3.Op
	for i, m := range ms {
		r, err := ref(storage.CheckKey(kind, m.Namespace, m.Name))
		if err != nil {
			errs[i] = err
			continue
		}
		refs[i] = r
		gets = append(gets, clientv3.OpGet(r.etcd))
	}
	if len(gets) == 0 {
		return
	}
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		for i := range ms {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("failed to read %s: %w", refs[i].key, err)
			}
		}
		return
	}
	type write struct {
		i    int
		next resource.Object
		val  []byte
		rev  int64
	}
	var (
		writes []write
		size   int
		alone  []int // redone with Update
		seen   = map[string]bool{}
	)
	n := 0
	for i := range ms {
		if errs[i] != nil {
			continue
		}
		r := refs[i]
		kvs := resp.Responses[n].GetResponseRange().GetKvs()
		n++
		if seen[r.etcd] {
			alone = append(alone, i) // etcd takes a key once per transaction
			continue
		}
		seen[r.etcd] = true
		if len(kvs) == 0 {
			errs[i] = fmt.Errorf("%s %w", r.key, ErrNotFound)
			continue
		}
		old, err := decodeKV(kind, kvs[0])
		if err != nil {
			errs[i] = err
			continue
		}
		next, changed, err := storage.PrepareMutate(r.key, old, ms[i].Mutate)
		if err != nil {
			errs[i] = err
			continue
		}
		if !changed {
			continue
		}
		val, err := storage.Encode(next)
		if err != nil {
			errs[i] = err
			continue
		}
		if size+len(val) > manyMaxBytes {
			alone = append(alone, i) // too big to share this transaction
			continue
		}
		size += len(val)
		writes = append(writes, write{i: i, next: next, val: val, rev: kvs[0].ModRevision})
	}
	if len(writes) > 0 {
		cmps := make([]clientv3.Cmp, len(writes))
		puts := make([]clientv3.Op, len(writes))
		for j, w := range writes {
			cmps[j] = clientv3.Compare(clientv3.ModRevision(refs[w.i].etcd), "=", w.rev)
			puts[j] = clientv3.OpPut(refs[w.i].etcd, string(w.val))
		}
		tx, err := s.cli.Txn(ctx).If(cmps...).Then(puts...).Commit()
		switch {
		case err != nil:
			for _, w := range writes {
				errs[w.i] = fmt.Errorf("failed to write %s: %w", refs[w.i].key, err)
			}
		case tx.Succeeded:
			for _, w := range writes {
				resource.Meta(w.next).ResourceVersion = strconv.FormatInt(tx.Header.Revision, 10)
			}
		default:
			for _, w := range writes {
				alone = append(alone, w.i)
			}
		}
	}
	for _, i := range alone {
		if _, err := s.Update(ctx, kind, ms[i].Namespace, ms[i].Name, ms[i].Mutate); err != nil {
			errs[i] = err
		}
	}
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
