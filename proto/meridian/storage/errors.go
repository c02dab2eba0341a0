package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is; the store wraps them
// with the object's key and what happened, e.g. "deployments/demo/web not
// found" or "cannot create deployments/demo/web: namespace "demo" not found".
var (
	// ErrNotFound: the object (or the namespace it would live in) does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: Create found an object under the same key.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a conditional write (a resourceVersion or uid
	// precondition) lost against a newer version of the object, or an
	// unconditional one kept losing a race (implementations bound their retries).
	ErrConflict = errors.New("the object has been modified")
	// ErrCompacted: the requested revision is older than the oldest one
	// the store still keeps. Relist, then watch from the list's revision.
	ErrCompacted = errors.New("revision has been compacted")
	// ErrInvalid: the request cannot be stored as given (no name, a name
	// with '/', a namespaced kind without namespace, a malformed
	// resourceVersion, a mutate function that renamed the object).
	ErrInvalid = errors.New("invalid request")
)

// ConflictError is the ErrConflict of a write whose resourceVersion was not
// the stored one.
type ConflictError struct {
	// Key is the object's key, as resource.Key renders it.
	Key string
	// Requested is the resourceVersion the caller sent.
	Requested int64
	// Current is the resourceVersion stored now.
	Current int64
}

// Error says what to do about it.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %v (resourceVersion %d, now %d); re-read it and try again",
		e.Key, ErrConflict, e.Requested, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// CompactedError is the ErrCompacted of a watch (or a read) that asked for a
// revision etcd no longer keeps. It is the signal to relist.
type CompactedError struct {
	// Requested is the revision asked for (a watch's fromRevision).
	Requested int64
	// Compacted is the compaction revision: the oldest revision still kept.
	Compacted int64
}

// Error says what to do about it.
func (e *CompactedError) Error() string {
	return fmt.Sprintf("%v: revision %d is older than the oldest kept revision %d; relist and watch from the list's revision",
		ErrCompacted, e.Requested, e.Compacted)
}

// Is makes errors.Is(err, ErrCompacted) true.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// ApplyResult says what Apply did.
type ApplyResult int

// Apply results.
const (
	// Created: the object did not exist and was created.
	Created ApplyResult = iota + 1
	// Configured: the object existed and was changed.
	Configured
	// Unchanged: the object existed as given; nothing was written.
	Unchanged
)

// String renders the result as kubectl prints it.
func (r ApplyResult) String() string {
	switch r {
	case Created:
		return "created"
	case Configured:
		return "configured"
	case Unchanged:
		return "unchanged"
	}
	return fmt.Sprintf("ApplyResult(%d)", int(r))
}

// EventType is the type of a watch Event.
type EventType int

// Watch event types.
const (
	// Added: the object was created, or started to match the selector.
	Added EventType = iota + 1
	// Modified: the object changed and still matches the selector.
	Modified
	// Deleted: the object was deleted, or stopped matching the selector.
	// Event.Object is its last state.
	Deleted
	// Bookmark: no object; every change up to Event.Revision has been
	// delivered. Resume a watch from here.
	Bookmark
	// Error: the watch failed and its channel closes after this event.
	// Event.Err says why; a *CompactedError means relist, then watch again.
	Error
)

// String renders the type as Kubernetes watch events name it.
func (t EventType) String() string {
	switch t {
	case Added:
		return "ADDED"
	case Modified:
		return "MODIFIED"
	case Deleted:
		return "DELETED"
	case Bookmark:
		return "BOOKMARK"
	case Error:
		return "ERROR"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}
