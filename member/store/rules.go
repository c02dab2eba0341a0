package store

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// This file holds the rules of storage.Interface that do not depend on
// bbolt: object keys, validation, and what the server owns in an object.
// They are the hub store's (hub/store/store.go, write.go) rule for rule, and
// produce the same error messages; the conformance suite
// (proto/meridian/storage/storagetest) checks that the two agree.

var namespaceKind = resource.MustLookup("Namespace")

// KindPrefix is the key prefix of every object of a kind.
func KindPrefix(kind *resource.Kind) string { return kind.Plural + "/" }

// ObjectKey is the bbolt key of one object. The namespace of a
// cluster-scoped kind is ignored.
func ObjectKey(kind *resource.Kind, namespace, name string) string {
	if !kind.Namespaced || namespace == "" {
		return KindPrefix(kind) + name
	}
	return KindPrefix(kind) + namespace + "/" + name
}

// rangePrefix is the key prefix of a List or Watch: a kind, or a kind in
// one namespace. The trailing slash keeps namespace "a" apart from "a-b".
func rangePrefix(kind *resource.Kind, namespace string) string {
	if !kind.Namespaced || namespace == "" {
		return KindPrefix(kind)
	}
	return KindPrefix(kind) + namespace + "/"
}

// objectRef is one object's identity, checked: its key for messages and its
// bbolt key.
type objectRef struct {
	kind *resource.Kind
	key  resource.Key
	db   string
}

// ref checks kind, namespace and name and returns the object's keys. The
// namespace of a cluster-scoped kind is ignored, as kubectl ignores -n for
// such kinds.
func ref(kind *resource.Kind, namespace, name string) (objectRef, error) {
	if kind == nil {
		return objectRef{}, fmt.Errorf("%w: kind is required", storage.ErrInvalid)
	}
	if !kind.Namespaced {
		namespace = ""
	}
	key := resource.Key{Kind: kind, Namespace: namespace, Name: name}
	switch {
	case name == "":
		return objectRef{}, fmt.Errorf("%s: %w: metadata.name is required", key, storage.ErrInvalid)
	case strings.Contains(name, "/"):
		return objectRef{}, fmt.Errorf("%s: %w: metadata.name must not contain '/'", key, storage.ErrInvalid)
	case kind.Namespaced && namespace == "":
		return objectRef{}, fmt.Errorf("%s: %w: metadata.namespace is required for %s", key, storage.ErrInvalid, kind.Plural)
	case strings.Contains(namespace, "/"):
		return objectRef{}, fmt.Errorf("%s: %w: metadata.namespace must not contain '/'", key, storage.ErrInvalid)
	}
	return objectRef{kind: kind, key: key, db: ObjectKey(kind, namespace, name)}, nil
}

// refOf is ref for a typed object.
func refOf(obj resource.Object) (objectRef, error) {
	if obj == nil {
		return objectRef{}, fmt.Errorf("%w: object is missing", storage.ErrInvalid)
	}
	kind, err := resource.KindOf(obj)
	if err != nil {
		return objectRef{}, fmt.Errorf("%w: %w", storage.ErrInvalid, err)
	}
	md := obj.GetMetadata()
	return ref(kind, md.GetNamespace(), md.GetName())
}

// namespaceKey is the bbolt key of the Namespace an object lives in, or ""
// for cluster-scoped kinds.
func (r objectRef) namespaceKey() string {
	if !r.kind.Namespaced {
		return ""
	}
	return ObjectKey(namespaceKind, "", r.key.Namespace)
}

// parseRV parses a resourceVersion precondition; "" is none (0).
func parseRV(r objectRef, rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %w: resourceVersion %q is not a revision number", r.key, storage.ErrInvalid, rv)
	}
	return n, nil
}

// normalize returns the object to store from what a caller sent: a copy,
// with apiVersion and kind filled in if missing, no namespace on a
// cluster-scoped kind, and a Secret's stringData merged into data.
func normalize(r objectRef, obj resource.Object) resource.Object {
	in := proto.Clone(obj).(resource.Object)
	if in.GetApiVersion() == "" || in.GetKind() == "" {
		resource.SetTypeMeta(in, r.kind.APIVersions[0], r.kind.Kind)
	}
	if !r.kind.Namespaced {
		resource.Meta(in).Namespace = ""
	}
	mergeStringData(in)
	return in
}

// mergeStringData moves a Secret's write-only stringData into data, as
// Kubernetes does; a key in both takes the stringData value.
func mergeStringData(obj resource.Object) {
	sec, ok := obj.(*meridianv1.Secret)
	if !ok || len(sec.StringData) == 0 {
		return
	}
	if sec.Data == nil {
		sec.Data = make(map[string][]byte, len(sec.StringData))
	}
	for k, v := range sec.StringData {
		sec.Data[k] = []byte(v)
	}
	sec.StringData = nil
}

// created stamps a new object with what the server owns.
func (s *Store) created(in resource.Object) resource.Object {
	next := proto.Clone(in).(resource.Object)
	md := resource.Meta(next)
	md.Uid = s.newUID()
	md.CreationTimestamp = timestamppb.New(s.now())
	md.DeletionTimestamp = nil
	md.Generation = 1
	md.ResourceVersion = ""
	resource.ClearStatus(next)
	return next
}

// updated turns next (the caller's new version of old) into the object to
// store: uid and creationTimestamp from old, status from old if keepStatus
// (Apply; Update lets controllers write status), generation bumped if the
// desired state changed. It reports whether the result differs from old.
func updated(old, next resource.Object, keepStatus bool) (resource.Object, bool) {
	om, md := old.GetMetadata(), resource.Meta(next)
	md.Uid = om.GetUid()
	md.CreationTimestamp = om.GetCreationTimestamp()
	if keepStatus {
		md.DeletionTimestamp = om.GetDeletionTimestamp()
		resource.CopyStatus(next, old)
	}
	md.Generation = om.GetGeneration()
	if !resource.DesiredEqual(old, next) {
		md.Generation++
	}
	md.ResourceVersion = om.GetResourceVersion()
	return next, !proto.Equal(old, next)
}
