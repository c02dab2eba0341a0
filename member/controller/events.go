package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
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

// Recorder writes Events about objects, so that `meridian describe` and
// `meridian get events` can tell what happened to them.
type Recorder struct {
	store  storage.Interface
	source string
	log    *slog.Logger
	seq    atomic.Uint64
}

// NewRecorder returns a recorder whose events name source (a controller or agent).
func NewRecorder(st storage.Interface, source string, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{store: st, source: source, log: log}
}

// Eventf records an event about obj. Recording is best-effort: a failure is
// logged, never returned, because no controller should fail for lack of an
// event.
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
	if _, err := r.store.Create(ctx, ev); err != nil && ctx.Err() == nil {
		r.log.Debug("failed to record event", "reason", reason, "object", md.GetName(), "err", err)
	}
}
