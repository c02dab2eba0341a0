package store

import "github.com/meridian-fed/meridian/proto/meridian/storage"

// The store's vocabulary is the shared storage contract; these names let
// callers of this package write store.ErrNotFound, store.Created, ...
var (
	ErrNotFound      = storage.ErrNotFound
	ErrAlreadyExists = storage.ErrAlreadyExists
	ErrConflict      = storage.ErrConflict
	ErrCompacted     = storage.ErrCompacted
	ErrInvalid       = storage.ErrInvalid
)

type (
	// ConflictError is storage.ConflictError.
	ConflictError = storage.ConflictError
	// CompactedError is storage.CompactedError.
	CompactedError = storage.CompactedError
	// ApplyResult is storage.ApplyResult.
	ApplyResult = storage.ApplyResult
	// EventType is storage.EventType.
	EventType = storage.EventType
	// Event is storage.Event.
	Event = storage.Event
	// ApplyOptions is storage.ApplyOptions.
	ApplyOptions = storage.ApplyOptions
)

// Apply results and watch event types (see package storage).
const (
	Created    = storage.Created
	Configured = storage.Configured
	Unchanged  = storage.Unchanged

	Added    = storage.Added
	Modified = storage.Modified
	Deleted  = storage.Deleted
	Bookmark = storage.Bookmark
	Error    = storage.Error
)

var _ storage.Interface = (*Store)(nil)
