package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// Group commit.
//
// A commit costs an fsync or two (milliseconds on most disks), while the
// checks and writes of one Apply take microseconds. So writes queue, and
// one writer at a time — the leader — runs everything queued in one bbolt
// transaction, commits it once, publishes the changes to the watchers and
// wakes the writers; then it hands the lead to the oldest write that queued
// meanwhile. A lone writer commits at once; concurrent writers share fsyncs.
//
// Each write in a batch runs on the state the writes before it left, takes
// its own revision (the next one) if it changes something, and none if it
// does not or fails a check: a batch is the writes run one after another,
// committed together. A write checks before it writes, so its errors
// (conflict, not found...) leave the batch alone. A failure after a write
// has begun, or of the commit itself, fails every write of the batch and
// commits nothing.

// maxBatch bounds the writes of one transaction, so that one commit's
// latency stays bounded under a flood of writes.
const maxBatch = 256

// errNoWrite rolls back a transaction that changed nothing.
var errNoWrite = errors.New("nothing to write")

// writeOp is one queued write.
type writeOp struct {
	what string
	fn   func(w *writeTx) error
	// rev and err are the result, set by the leader before it closes done.
	rev int64
	err error
	// done is closed when the write has been committed or has failed.
	done chan struct{}
	// lead is closed when the write's goroutine must lead the next batch.
	lead chan struct{}
}

// writeQueue is the writes waiting for a leader. Guarded by Store.qmu.
type writeQueue struct {
	ops []*writeOp
	// leading is true while a writer leads: then new writes wait.
	leading bool
}

// writeTx is the transaction of a batch, as one write sees it: the revision
// its changes get, and every change of the batch so far.
type writeTx struct {
	tx      *bolt.Tx
	objects *bolt.Bucket
	rev     int64
	changes []change
}

// get reads the record of r, nil if there is none. Its data is only valid
// during the transaction.
func (w *writeTx) get(r objectRef) (*record, error) { return getRecord(w.tx, r.db) }

// put stores obj under r at the write's revision; prev is the record it
// replaces (nil for a creation).
func (w *writeTx) put(r objectRef, obj resource.Object, prev *record) error {
	if len(r.db) > bolt.MaxKeySize {
		return fmt.Errorf("%s: %w: the key is longer than %d bytes", r.key, storage.ErrInvalid, bolt.MaxKeySize)
	}
	data, err := storage.Encode(obj)
	if err != nil {
		return err
	}
	rec := record{modRev: w.rev, createRev: w.rev, data: data}
	c := change{rev: w.rev, kind: r.kind, key: r.db, data: data}
	if prev != nil {
		rec.createRev = prev.createRev
		c.prev = bytes.Clone(prev.data)
	}
	if err := w.objects.Put([]byte(r.db), rec.value()); err != nil {
		return fmt.Errorf("failed to write %s: %w", r.key, err)
	}
	w.changes = append(w.changes, c)
	return nil
}

// delete removes the record under key; prev is what it holds.
func (w *writeTx) delete(kind *resource.Kind, key []byte, prev *record) error {
	if err := w.objects.Delete(key); err != nil {
		return fmt.Errorf("failed to delete %s: %w", key, err)
	}
	w.changes = append(w.changes, change{rev: w.rev, kind: kind, key: string(key), deleted: true, prev: bytes.Clone(prev.data)})
	return nil
}

// deletePrefix removes every object of kind under prefix, in key order.
func (w *writeTx) deletePrefix(kind *resource.Kind, prefix []byte) error {
	type kv struct {
		key []byte
		rec *record
	}
	// Collect first: deleting under a cursor that then moves on skips keys.
	var found []kv
	c := w.objects.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		rec, err := parseRecord(k, v)
		if err != nil {
			return err
		}
		found = append(found, kv{key: bytes.Clone(k), rec: rec.clone()})
	}
	for _, f := range found {
		if err := w.delete(kind, f.key, f.rec); err != nil {
			return err
		}
	}
	return nil
}

// commit queues fn as one write and waits for its batch to commit; it
// returns the write's revision, or 0 if fn changed nothing. fn reads and
// writes through w; an error from fn before it writes fails this write
// only, and is returned as it is. The wait in the queue does not end with
// ctx: it is one commit long at most.
func (s *Store) commit(ctx context.Context, what string, fn func(w *writeTx) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("failed to write %s: %w", what, err)
	}
	op := &writeOp{what: what, fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	s.qmu.Lock()
	s.queue.ops = append(s.queue.ops, op)
	leader := !s.queue.leading
	s.queue.leading = true
	s.qmu.Unlock()
	if !leader {
		select {
		case <-op.done:
			return op.rev, op.err
		case <-op.lead:
		}
	}
	s.lead()
	<-op.done // the leader's own write is the first of its batch
	return op.rev, op.err
}

// lead runs one batch of the queue, then hands the lead to the oldest write
// still queued, or gives it up.
func (s *Store) lead() {
	s.qmu.Lock()
	n := min(len(s.queue.ops), maxBatch)
	batch := s.queue.ops[:n:n]
	s.queue.ops = s.queue.ops[n:]
	s.qmu.Unlock()

	s.runBatch(batch)

	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue.ops) == 0 {
		s.queue.leading = false
		s.queue.ops = nil
		return
	}
	close(s.queue.ops[0].lead)
}

// runBatch runs ops in one transaction, commits it, publishes its changes
// and closes every op's done.
func (s *Store) runBatch(ops []*writeOp) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	defer func() {
		for _, op := range ops {
			close(op.done)
		}
	}()
	fail := func(err error) {
		for _, op := range ops {
			op.rev, op.err = 0, fmt.Errorf("failed to write %s: %w", op.what, err)
		}
	}
	if s.isClosed() {
		fail(ErrClosed)
		return
	}
	var w *writeTx
	err := s.db.Update(func(tx *bolt.Tx) error {
		base, err := readRevision(tx)
		if err != nil {
			return err
		}
		w = &writeTx{tx: tx, objects: tx.Bucket(objectsBucket)}
		last := base
		for _, op := range ops {
			w.rev = last + 1
			before := len(w.changes)
			op.rev, op.err = 0, op.fn(w)
			switch {
			case op.err != nil && len(w.changes) != before:
				// Half written: the transaction is no longer the sum of
				// whole writes.
				return op.err
			case op.err == nil && len(w.changes) != before:
				op.rev, last = w.rev, w.rev
			}
		}
		if last == base {
			return errNoWrite
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(last))
		if err := tx.Bucket(metaBucket).Put(revisionKey, b[:]); err != nil {
			return fmt.Errorf("failed to write the revision: %w", err)
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoWrite):
		// Every write failed a check or changed nothing: their results stand.
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		fail(ErrClosed)
	case err != nil:
		fail(err)
	default:
		s.publish(w.changes)
	}
}
