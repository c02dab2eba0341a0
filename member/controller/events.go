package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Event types, as in Kubernetes.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

const (
	// eventWriters bounds the goroutines that write queued events. Each
	// write waits for a commit; the stores let concurrent writes share
	// one, so a few writers keep up with many controllers.
	eventWriters = 8
	// maxQueuedEvents bounds the events waiting to be written. Past it,
	// Eventf writes its event itself: a flood slows the controllers that
	// make it rather than growing memory or losing events.
	maxQueuedEvents = 4096
	// eventTimeout bounds the write of one event.
	eventTimeout = 30 * time.Second
)

// Recorder writes Events about objects, so that `meridian describe` and
// `meridian get events` can tell what happened to them.
//
// Events are written in the background, as in Kubernetes: a controller
// that records one goes on at once instead of waiting for a commit (on a
// member, an fsync), which would otherwise be one wait more in each of the
// steps that take a moved replica from its Work to ready. Events of one
// recorder may therefore be stored in another order than they were made;
// their timestamps keep it. Wait returns once everything recorded so far
// is written.
type Recorder struct {
	store  storage.Interface
	source string
	log    *slog.Logger
	seq    atomic.Uint64

	mu      sync.Mutex
	queue   []queuedEvent
	writers int
	idle    chan struct{} // closed when nothing is queued or being written
}

type queuedEvent struct {
	ctx context.Context
	ev  *meridianv1.Event
}

// NewRecorder returns a recorder whose events name source (a controller or agent).
func NewRecorder(st storage.Interface, source string, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	idle := make(chan struct{})
	close(idle)
	return &Recorder{store: st, source: source, log: log, idle: idle}
}

// Eventf records an event about obj. Recording is best-effort: a failure is
// logged, never returned, because no controller should fail for lack of an
// event. The event is written in the background (see Recorder); the
// values of ctx, not its end, go with it.
func (r *Recorder) Eventf(ctx context.Context, obj resource.Object, typ, reason, format string, args ...any) {
	md := obj.GetMetadata()
	ns := md.GetNamespace()
	if ns == "" {
		ns = "default"
	}
	now := timestamppb.New(time.Now())
	ev := &meridianv1.Event{
		ApiVersion: "v1", Kind: "Event",
		Metadata: &meridianv1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%s%s", md.GetName(), strconv.FormatInt(time.Now().UnixNano(), 36), strconv.FormatUint(r.seq.Add(1), 36)),
			Namespace: ns,
		},
		InvolvedObject: &meridianv1.ObjectReference{ApiVersion: obj.GetApiVersion(), Kind: obj.GetKind(), Namespace: md.GetNamespace(), Name: md.GetName(), Uid: md.GetUid()},
		Reason:         reason,
		Message:        fmt.Sprintf(format, args...),
		Type:           typ,
		Count:          1,
		FirstTimestamp: now,
		LastTimestamp:  now,
		Source:         r.source,
	}
	q := queuedEvent{ctx: context.WithoutCancel(ctx), ev: ev}
	r.mu.Lock()
	if len(r.queue) >= maxQueuedEvents {
		r.mu.Unlock()
		r.write(q)
		return
	}
	if len(r.queue) == 0 && r.writers == 0 {
		r.idle = make(chan struct{})
	}
	r.queue = append(r.queue, q)
	if r.writers < eventWriters {
		r.writers++
		go r.drain()
	}
	r.mu.Unlock()
}

// manyCreator is a store that creates many objects in one round trip
// (the hub's store: CreateMany). A member's store needs none: it commits
// concurrent writes together.
type manyCreator interface {
	CreateMany(ctx context.Context, objs []resource.Object) []error
}

// eventBatch is how many queued events one writer takes at once for a
// store that creates many at once.
const eventBatch = 64

// drain writes queued events until none is left.
func (r *Recorder) drain() {
	mc, many := r.store.(manyCreator)
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.writers--
			if r.writers == 0 {
				close(r.idle)
			}
			r.mu.Unlock()
			return
		}
		n := 1
		if many {
			n = min(len(r.queue), eventBatch)
		}
		batch := slices.Clone(r.queue[:n])
		clear(r.queue[:n])
		r.queue = r.queue[n:]
		if len(r.queue) == 0 {
			r.queue = nil // let the backing array go
		}
		r.mu.Unlock()
		if len(batch) == 1 {
			r.write(batch[0])
			continue
		}
		objs := make([]resource.Object, len(batch))
		for i, q := range batch {
			objs[i] = q.ev
		}
		ctx, cancel := context.WithTimeout(batch[0].ctx, eventTimeout)
		for i, err := range mc.CreateMany(ctx, objs) {
			if err != nil {
				r.log.Debug("failed to record event", "reason", batch[i].ev.GetReason(), "object", batch[i].ev.GetInvolvedObject().GetName(), "err", err)
			}
		}
		cancel()
	}
}

func (r *Recorder) write(q queuedEvent) {
	ctx, cancel := context.WithTimeout(q.ctx, eventTimeout)
	defer cancel()
	if _, err := r.store.Create(ctx, q.ev); err != nil {
		r.log.Debug("failed to record event", "reason", q.ev.GetReason(), "object", q.ev.GetInvolvedObject().GetName(), "err", err)
	}
}

// Wait blocks until every event recorded before the call is written (or
// failed), or ctx ends.
func (r *Recorder) Wait(ctx context.Context) error {
	r.mu.Lock()
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
