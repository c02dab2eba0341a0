package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// watchBuffer is how many events Watch holds for a slow reader before it
// stops reading from etcd (etcd's client buffers further events).
const watchBuffer = 16

// Watch reports the changes to the objects of a kind in a namespace ("" for
// every namespace, and always for cluster-scoped kinds) whose labels match
// sel (nil matches everything), in revision order, after fromRevision (0:
// from now). List then Watch from the list's revision sees every change
// exactly once.
//
// With a selector, an object that stops matching is reported as Deleted
// (with its previous state) and one that starts matching as Added. Periodic
// Bookmark events carry the revision up to which everything has been
// reported. If fromRevision has been compacted, the only event is an Error
// whose Err is a *CompactedError: relist. Any other failure (no etcd leader,
// a closed client) also ends with an Error event. The channel is closed
// after an Error event and when ctx ends; the goroutine behind it stops
// then too. The caller must cancel ctx or drain the channel.
func (s *Store) Watch(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector, fromRevision int64) <-chan Event {
	out := make(chan Event, watchBuffer)
	var err error
	switch {
	case kind == nil:
		err = fmt.Errorf("%w: kind is required", ErrInvalid)
	case strings.Contains(namespace, "/"):
		err = fmt.Errorf("%w: namespace %q must not contain '/'", ErrInvalid, namespace)
	case fromRevision < 0:
		err = fmt.Errorf("%w: revision %d is negative", ErrInvalid, fromRevision)
	}
	if err != nil {
		out <- Event{Type: Error, Err: err}
		close(out)
		return out
	}
	w := &watch{cli: s.cli, kind: kind, prefix: rangePrefix(kind, namespace), sel: sel, from: fromRevision}
	ready := make(chan struct{})
	go w.run(ctx, out, ready)
	if fromRevision == 0 {
		// "From now" is now, not whenever the watch reaches etcd: a write
		// the caller makes once Watch has returned must be reported. Wait
		// until etcd has registered the watch (or it failed).
		select {
		case <-ready:
		case <-ctx.Done():
		}
	}
	return out
}

// watch is one Watch call; run is its goroutine, owned by the caller's ctx.
type watch struct {
	cli    *clientv3.Client
	kind   *resource.Kind
	prefix string
	sel    labels.Selector
	from   int64
}

// run closes ready once etcd has registered the watch, or when it ends.
func (w *watch) run(ctx context.Context, out chan<- Event, ready chan<- struct{}) {
	defer close(out)
	var once sync.Once
	registered := func() { once.Do(func() { close(ready) }) }
	defer registered()
	// Without a leader the etcd member cannot know it is up to date: end
	// the watch (an Error event) rather than go silent.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify()}
	if w.from > 0 {
		opts = append(opts, clientv3.WithRev(w.from+1))
	}
	// etcd's client closes this channel when wctx ends.
	for resp := range w.cli.Watch(wctx, w.prefix, opts...) {
		if resp.Created && !resp.Canceled && resp.CompactRevision == 0 {
			registered()
			continue
		}
		if resp.CompactRevision != 0 {
			w.send(ctx, out, Event{Type: Error, Err: &CompactedError{Requested: w.from, Compacted: resp.CompactRevision}})
			return
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, rpctypes.ErrCompacted) {
				err = &CompactedError{Requested: w.from}
			}
			w.send(ctx, out, Event{Type: Error, Err: fmt.Errorf("failed to watch %s: %w", w.prefix, err)})
			return
		}
		if resp.IsProgressNotify() {
			if !w.send(ctx, out, Event{Type: Bookmark, Revision: resp.Header.Revision}) {
				return
			}
			continue
		}
		for _, ev := range resp.Events {
			e, ok, err := w.translate(ev)
			if err != nil {
				w.send(ctx, out, Event{Type: Error, Err: fmt.Errorf("failed to watch %s: %w", w.prefix, err)})
				return
			}
			if ok && !w.send(ctx, out, e) {
				return
			}
		}
	}
	if ctx.Err() == nil {
		w.send(ctx, out, Event{Type: Error, Err: fmt.Errorf("failed to watch %s: the etcd client closed the watch", w.prefix)})
	}
}

// send delivers e unless ctx ends first; it reports whether it did.
func (w *watch) send(ctx context.Context, out chan<- Event, e Event) bool {
	select {
	case out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

// translate turns an etcd event into a store event, applying the selector;
// ok is false if the change is invisible through the selector.
func (w *watch) translate(ev *clientv3.Event) (e Event, ok bool, err error) {
	rev := ev.Kv.ModRevision
	var prev resource.Object
	// The previous state is reported for a deletion, and tells whether a
	// modification moved the object into or out of the selector; without
	// a selector a modification does not need it (decoding it was a
	// tenth of a failover's decoding work).
	needPrev := ev.Type == mvccpb.DELETE || (w.sel != nil && !w.sel.Empty())
	if ev.PrevKv != nil && needPrev {
		// The previous state, stamped with the revision of this change, as
		// the last state of a deleted object is.
		if prev, err = storage.Decode(w.kind, ev.PrevKv.Value, rev); err != nil {
			return Event{}, false, fmt.Errorf("%s: %w", ev.Kv.Key, err)
		}
	}
	if ev.Type == mvccpb.DELETE {
		if prev == nil {
			// No previous value (it should always be there): report the
			// deletion of the bare key, matching or not; a spurious delete
			// is safer than a missed one.
			prev = w.stub(string(ev.Kv.Key), rev)
		} else if !matches(w.sel, prev) {
			return Event{}, false, nil
		}
		return Event{Type: Deleted, Object: prev, Revision: rev}, true, nil
	}

	obj, err := decodeKV(w.kind, ev.Kv)
	if err != nil {
		return Event{}, false, err
	}
	now := matches(w.sel, obj)
	before := prev != nil && matches(w.sel, prev)
	if prev == nil && !ev.IsCreate() {
		// A modification without its previous value: assume the match did
		// not change.
		before = now
	}
	switch {
	case ev.IsCreate() && now:
		return Event{Type: Added, Object: obj, Revision: rev}, true, nil
	case ev.IsCreate():
		return Event{}, false, nil
	case now && before:
		return Event{Type: Modified, Object: obj, Revision: rev}, true, nil
	case now:
		return Event{Type: Added, Object: obj, Revision: rev}, true, nil
	case before:
		return Event{Type: Deleted, Object: prev, Revision: rev}, true, nil
	}
	return Event{}, false, nil
}

// stub is an object of the watched kind with only the name and namespace
// its key tells.
func (w *watch) stub(key string, rev int64) resource.Object {
	obj := w.kind.New()
	md := resource.Meta(obj)
	rest := strings.TrimPrefix(key, KindPrefix(w.kind))
	if ns, name, ok := strings.Cut(rest, "/"); ok && w.kind.Namespaced {
		md.Namespace, md.Name = ns, name
	} else {
		md.Name = rest
	}
	md.ResourceVersion = fmt.Sprint(rev)
	return obj
}
