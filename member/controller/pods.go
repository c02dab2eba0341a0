package controller

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var podKind = resource.MustLookup("Pod")

// Controllers must delete pods with DeletePod rather than by themselves, and
// treat a pod with a deletionTimestamp as terminating: it no longer counts
// as a replica, but its name is still taken until the object is gone —
// which is what keeps two copies of a StatefulSet pod from ever running at
// once. A node agent removes the object once the processes have stopped.

// errSkipDelete ends an Update's mutate function without writing.
var errSkipDelete = errors.New("no longer applies")

// deleteAttempts bounds DeleteByUID's read-and-delete loop; every lost
// attempt means the object changed, which an active node agent does often.
const deleteAttempts = 5

// DeleteByUID deletes the object of kind namespace/name if it is still the
// one with uid, and reports whether it deleted it. A controller deletes what
// it saw in its cache this way: if the cache was stale and the name now
// belongs to a successor (a StatefulSet pod re-created under the same name),
// the successor is left alone. An object already gone is not an error.
func DeleteByUID(ctx context.Context, st storage.Interface, kind *resource.Kind, namespace, name, uid string) (bool, error) {
	for range deleteAttempts {
		cur, err := st.Get(ctx, kind, namespace, name)
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("failed to read %s %s before deleting it: %w", kind.Kind, name, err)
		}
		if cur.GetMetadata().GetUid() != uid {
			return false, nil
		}
		_, err = st.Delete(ctx, kind, namespace, name, cur.GetMetadata().GetResourceVersion())
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, storage.ErrNotFound):
			return false, nil
		case !errors.Is(err, storage.ErrConflict):
			return false, fmt.Errorf("failed to delete %s %s: %w", kind.Kind, name, err)
		}
	}
	return false, fmt.Errorf("failed to delete %s %s: %w after %d attempts", kind.Kind, name, storage.ErrConflict, deleteAttempts)
}

// DeletePod deletes a pod gracefully, as Kubernetes does —
// (metadata.deletionTimestamp, for the node agent to stop its processes
// and remove the object) if it is bound to a node and has not ended, at
// once otherwise — with two differences a controller with a cache needs:
// it acts only if the stored pod is still the one with pod's uid (never on
// a successor of the same name), and it reports whether it did anything,
// so that a controller expecting a deletion event knows whether one will
// come. A pod already terminating or gone is left as it is (false, nil).
func DeletePod(ctx context.Context, st storage.Interface, pod *meridianv1.Pod) (bool, error) {
	md := pod.GetMetadata()
	if pod.GetSpec().GetNodeName() == "" || isTerminal(pod) {
		return DeleteByUID(ctx, st, podKind, md.GetNamespace(), md.GetName(), md.GetUid())
	}
	var marked bool
	_, err := st.Update(ctx, podKind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		m := resource.Meta(o)
		marked = false
		if m.GetUid() != md.GetUid() || m.DeletionTimestamp != nil {
			return errSkipDelete
		}
		m.DeletionTimestamp = timestamppb.Now()
		marked = true
		return nil
	})
	switch {
	case err == nil:
		return marked, nil
	case errors.Is(err, errSkipDelete), errors.Is(err, storage.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("failed to mark pod %s for deletion: %w", md.GetName(), err)
}

func isTerminal(pod *meridianv1.Pod) bool {
	ph := pod.GetStatus().GetPhase()
	return ph == "Succeeded" || ph == "Failed"
}

// IsTerminating reports whether a pod is being deleted.
func IsTerminating(pod *meridianv1.Pod) bool {
	return pod.GetMetadata().GetDeletionTimestamp() != nil
}
