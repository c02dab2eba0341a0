package store

import (
	"context"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The batcher sends concurrent writes (and deletes) of single objects to
// etcd together:
// the writes waiting when a sender is free go in one transaction, each
// under its own conditions (a nested transaction per write, which etcd
// evaluates on its own), so every write gets the answer it would get
// alone. A write with nothing else waiting goes at once, as it would
// alone. During a failover of 1,000 workloads the hub's controllers
// write thousands of bindings, Works and events within seconds; one etcd
// transaction of 64 costs etcd (its gRPC, raft and apply work per
// request) far less than 64.
//
// A batch takes a key once (etcd refuses a transaction that writes a key
// twice); a second write of a key waits for the next batch.
const (
	batchMaxTxns     = 64 // etcd allows 128 operations per transaction, nested ones included
	batchMaxBytes    = 1 << 20
	batchMaxInFlight = 4
)

type batcher struct {
	cli *clientv3.Client

	mu       sync.Mutex
	queue    []*batchedTxn
	inFlight int // senders running
}

// batchedTxn is one write's transaction: If cmps Then then Else els.
type batchedTxn struct {
	ctx       context.Context
	key       string
	cmps      []clientv3.Cmp
	then, els []clientv3.Op
	size      int

	done      chan struct{}
	succeeded bool
	responses []*pb.ResponseOp // of the branch taken
	revision  int64
	err       error
}

// do runs t, in a batch with others if some are waiting, and returns once
// it has its answer or ctx ends.
func (b *batcher) do(ctx context.Context, t *batchedTxn) error {
	t.ctx, t.done = ctx, make(chan struct{})
	b.mu.Lock()
	b.queue = append(b.queue, t)
	if b.inFlight < batchMaxInFlight {
		b.inFlight++
		go b.send()
	}
	b.mu.Unlock()
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		// It may still be written: as with a call cancelled in flight,
		// the caller does not know.
		return ctx.Err()
	}
}

// send sends batches until none is waiting.
func (b *batcher) send() {
	for {
		b.mu.Lock()
		batch := b.takeLocked()
		if len(batch) == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.commit(batch)
	}
}

// takeLocked takes the next batch off the queue: waiting writes in order,
// each key once, within the limits; writes whose caller has given up are
// dropped.
func (b *batcher) takeLocked() []*batchedTxn {
	var (
		batch []*batchedTxn
		rest  = b.queue[:0]
		keys  = map[string]bool{}
		size  int
	)
	for _, t := range b.queue {
		switch {
		case t.ctx.Err() != nil:
			t.err = t.ctx.Err()
			close(t.done)
		case len(batch) < batchMaxTxns && !keys[t.key] && (len(batch) == 0 || size+t.size <= batchMaxBytes):
			batch = append(batch, t)
			keys[t.key] = true
			size += t.size
		default:
			rest = append(rest, t)
		}
	}
	clear(b.queue[len(rest):])
	b.queue = rest
	return batch
}

// commit sends batch as one transaction and hands each write its answer.
func (b *batcher) commit(batch []*batchedTxn) {
	defer func() {
		for _, t := range batch {
			close(t.done)
		}
	}()
	if len(batch) == 1 {
		t := batch[0]
		resp, err := b.cli.Txn(t.ctx).If(t.cmps...).Then(t.then...).Else(t.els...).Commit()
		if err != nil {
			t.err = err
			return
		}
		t.succeeded, t.responses, t.revision = resp.Succeeded, resp.Responses, resp.Header.Revision
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, t := range batch {
		ops[i] = clientv3.OpTxn(t.cmps, t.then, t.els)
	}
	// The batch is its writers' together: it is given up only when all of
	// them have given up (the first's context would cancel the others').
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	defer cancel()
	var left atomic.Int32
	left.Store(int32(len(batch)))
	for _, t := range batch {
		stop := context.AfterFunc(t.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	resp, err := b.cli.Txn(ctx).Then(ops...).Commit()
	for i, t := range batch {
		if err != nil {
			t.err = err
			continue
		}
		sub := resp.Responses[i].GetResponseTxn()
		t.succeeded, t.responses, t.revision = sub.GetSucceeded(), sub.GetResponses(), resp.Header.Revision
	}
}
