// Package storage is the contract every Meridian object store keeps: the
// hub's etcd store (hub/store) and the member's bbolt store (member/store)
// both implement Interface, so one Admin API server (proto/meridian/apiserver)
// and one set of controllers work over either.
//
// The rules every implementation follows:
//   - metadata.resourceVersion is the store revision of the object's last
//     change, set on every read; revisions only grow.
//   - uid and creationTimestamp are set once, on create; generation starts
//     at 1 and goes up when anything outside metadata and status changes.
//   - status is owned by the server: Apply keeps the stored one; Update may
//     change it.
//   - a resourceVersion sent with a write makes it conditional (ErrConflict).
//   - a namespaced object can only be created in an existing Namespace, and
//     deleting a Namespace deletes everything in it.
//   - List then Watch from the list's revision sees every later change
//     exactly once, in order; a revision too old to replay ends the watch
//     with an Error event carrying a *CompactedError (relist).
//
// The object rules every Store applies, whatever it keeps objects in, are
// functions of this package (rules.go), so that the stores cannot drift
// apart: CheckKey and CheckObjectKey (which keys are valid),
// ParseResourceVersion (the precondition), Normalize and MergeStringData
// (what a caller's object becomes), PrepareCreate, PrepareUpdate,
// PrepareApply and PrepareMutate (what the server owns in an object on
// create and update, and generation), and Encode and Decode (an object's
// stored form). The conformance suite, storagetest, checks the behaviour
// through each Store.
package storage

import (
	"context"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// Interface is an object store.
type Interface interface {
	// Apply creates obj or replaces the stored object's desired state.
	Apply(ctx context.Context, obj resource.Object, opts ApplyOptions) (resource.Object, ApplyResult, error)
	// Create stores a new object; ErrAlreadyExists if its key is taken.
	Create(ctx context.Context, obj resource.Object) (resource.Object, error)
	// Get returns one object; ErrNotFound if there is none.
	Get(ctx context.Context, kind *resource.Kind, namespace, name string) (resource.Object, error)
	// List returns the objects of a kind in a namespace ("" for all) whose
	// labels match sel (nil for all), sorted by namespace and name, and the
	// revision they were read at.
	List(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector) ([]resource.Object, int64, error)
	// Update applies mutate to a copy of the stored object and writes it
	// back if it changed, retrying on conflicts. It may change status.
	Update(ctx context.Context, kind *resource.Kind, namespace, name string, mutate func(resource.Object) error) (resource.Object, error)
	// Delete removes one object, conditionally if resourceVersion is set,
	// and returns its last state.
	Delete(ctx context.Context, kind *resource.Kind, namespace, name, resourceVersion string) (resource.Object, error)
	// Watch reports changes after fromRevision (0: from now) until ctx ends
	// or an Error event; the channel is closed then.
	Watch(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector, fromRevision int64) <-chan Event
	// Revision is the store's current revision.
	Revision(ctx context.Context) (int64, error)
}

// ApplyOptions modify Apply.
type ApplyOptions struct {
	// DryRun computes and checks the result as Apply would, and writes
	// nothing. The returned object of a dry-run create has no
	// resourceVersion.
	DryRun bool
}

// Event is one change reported by Watch.
type Event struct {
	// Type says what happened.
	Type EventType
	// Object is the object after the change; for Deleted its last state,
	// with resourceVersion set to the revision of the deletion. Nil for
	// Bookmark and Error.
	Object resource.Object
	// Revision is the store revision of the change (of the bookmark). Watch
	// from it to resume after this event. Several events can share a
	// revision (a Namespace deletion deletes its objects at once): resume
	// from a revision only once every event of that revision has been
	// handled, or from the revision before it.
	Revision int64
	// Err is why the watch ended, for Error events; a *CompactedError
	// (errors.Is ErrCompacted) means relist and watch from the list's
	// revision.
	Err error
}
