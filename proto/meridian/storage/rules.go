package storage

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// This file holds the rules every Store applies, whatever it stores objects
// in: which keys are valid, what a caller's object is normalized to, what
// the server owns in an object on create and on update, and the encoding of
// a stored object. The stores (hub/store, member/store) call them, so that
// they agree rule for rule and error message for error message; the
// conformance suite (storagetest) checks that they do.

// CheckKey checks kind, namespace and name and returns the object's key
// (ErrInvalid if there is none: no kind, no name, a namespaced kind without
// namespace, a '/' in name or namespace). The namespace of a cluster-scoped
// kind is ignored, as kubectl ignores -n for such kinds.
func CheckKey(kind *resource.Kind, namespace, name string) (resource.Key, error) {
	if kind == nil {
		return resource.Key{}, fmt.Errorf("%w: kind is required", ErrInvalid)
	}
	if !kind.Namespaced {
		namespace = ""
	}
	key := resource.Key{Kind: kind, Namespace: namespace, Name: name}
	switch {
	case name == "":
		return resource.Key{}, fmt.Errorf("%s: %w: metadata.name is required", key, ErrInvalid)
	case strings.Contains(name, "/"):
		return resource.Key{}, fmt.Errorf("%s: %w: metadata.name must not contain '/'", key, ErrInvalid)
	case kind.Namespaced && namespace == "":
		return resource.Key{}, fmt.Errorf("%s: %w: metadata.namespace is required for %s", key, ErrInvalid, kind.Plural)
	case strings.Contains(namespace, "/"):
		return resource.Key{}, fmt.Errorf("%s: %w: metadata.namespace must not contain '/'", key, ErrInvalid)
	}
	return key, nil
}

// CheckObjectKey is CheckKey for a typed object: ErrInvalid also if obj is
// nil or of no registered kind.
func CheckObjectKey(obj resource.Object) (resource.Key, error) {
	if obj == nil {
		return resource.Key{}, fmt.Errorf("%w: object is missing", ErrInvalid)
	}
	kind, err := resource.KindOf(obj)
	if err != nil {
		return resource.Key{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	md := obj.GetMetadata()
	return CheckKey(kind, md.GetNamespace(), md.GetName())
}

// ParseResourceVersion parses the resourceVersion precondition of a write
// to key: "" is none (0), anything but a positive revision number is
// ErrInvalid.
func ParseResourceVersion(key resource.Key, rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %w: resourceVersion %q is not a revision number", key, ErrInvalid, rv)
	}
	return n, nil
}

// Normalize returns the object to store from what a caller sent to Apply or
// Create: a copy (obj is not modified), with apiVersion and kind filled in if
// missing, no namespace on a cluster-scoped kind, and a Secret's stringData
// merged into data (MergeStringData).
func Normalize(kind *resource.Kind, obj resource.Object) resource.Object {
	in := proto.Clone(obj).(resource.Object)
	if in.GetApiVersion() == "" || in.GetKind() == "" {
		resource.SetTypeMeta(in, kind.APIVersions[0], kind.Kind)
	}
	if !kind.Namespaced {
		resource.Meta(in).Namespace = ""
	}
	MergeStringData(in)
	return in
}

// MergeStringData moves a Secret's write-only stringData into its data, as
// Kubernetes does; a key in both takes the stringData value. stringData is
// never stored. Objects of other kinds are left as they are.
func MergeStringData(obj resource.Object) {
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

// PrepareCreate returns the object to store when in (normalized) is
// created: a copy stamped with what the server owns — uid, creationTimestamp
// now, generation 1 — with no deletionTimestamp, resourceVersion or status.
func PrepareCreate(in resource.Object, uid string, now time.Time) resource.Object {
	next := proto.Clone(in).(resource.Object)
	md := resource.Meta(next)
	md.Uid = uid
	md.CreationTimestamp = timestamppb.New(now)
	md.DeletionTimestamp = nil
	md.Generation = 1
	md.ResourceVersion = ""
	resource.ClearStatus(next)
	return next
}

// PrepareUpdate turns next (the caller's new version of the stored object
// old; it is modified and returned) into the object to store: uid,
// creationTimestamp and resourceVersion from old; status and
// deletionTimestamp from old too if keepStatus (Apply; Update lets
// controllers write status); generation old's, plus one unless
// resource.DesiredEqual says the desired state is unchanged. It reports
// whether the result differs from old: if not, there is nothing to write.
func PrepareUpdate(old, next resource.Object, keepStatus bool) (resource.Object, bool) {
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

// PrepareApply is PrepareUpdate for an Apply of in (normalized; not
// modified) to key over the stored object old, status kept. A uid in in is a
// precondition: ErrConflict unless it is old's.
func PrepareApply(key resource.Key, old, in resource.Object) (resource.Object, bool, error) {
	if uid := in.GetMetadata().GetUid(); uid != "" && uid != old.GetMetadata().GetUid() {
		return nil, false, fmt.Errorf("%s: %w: uid %s is not the stored object's uid %s (it was deleted and created again)",
			key, ErrConflict, uid, old.GetMetadata().GetUid())
	}
	next, changed := PrepareUpdate(old, proto.Clone(in).(resource.Object), true)
	return next, changed, nil
}

// PrepareMutate is one attempt of Update of key: it runs mutate on a copy
// of the stored object old and returns the object to store and whether it
// differs from old (PrepareUpdate, status as mutate left it). An error of
// mutate is returned wrapped; a mutate that renamed the object is
// ErrInvalid. A Secret's stringData is merged into its data.
func PrepareMutate(key resource.Key, old resource.Object, mutate func(resource.Object) error) (resource.Object, bool, error) {
	next := proto.Clone(old).(resource.Object)
	if err := mutate(next); err != nil {
		return nil, false, fmt.Errorf("failed to update %s: %w", key, err)
	}
	if md := next.GetMetadata(); md.GetName() != key.Name || (key.Kind.Namespaced && md.GetNamespace() != key.Namespace) {
		return nil, false, fmt.Errorf("failed to update %s: %w: the update renamed it to %s/%s",
			key, ErrInvalid, md.GetNamespace(), md.GetName())
	}
	if !key.Kind.Namespaced {
		resource.Meta(next).Namespace = ""
	}
	MergeStringData(next)
	next, changed := PrepareUpdate(old, next, false)
	return next, changed, nil
}

// Encode is the stored form of obj: its deterministic protobuf encoding
// (equal objects are equal bytes), without resourceVersion, which the store
// keeps as the object's mod revision. obj is not modified.
func Encode(obj resource.Object) ([]byte, error) {
	c := obj
	if obj.GetMetadata().GetResourceVersion() != "" {
		c = withoutResourceVersion(obj)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("failed to encode %s: %w", obj.ProtoReflect().Descriptor().FullName(), err)
	}
	return b, nil
}

// withoutResourceVersion is obj without its resourceVersion: a shallow
// copy (its fields are obj's, its metadata a shallow copy too), cheaper
// than a deep one for a write path that encodes every object it stores.
// It is only read.
func withoutResourceVersion(obj resource.Object) resource.Object {
	md := obj.ProtoReflect().Descriptor().Fields().ByName("metadata")
	rvf := (*meridianv1.ObjectMeta)(nil).ProtoReflect().Descriptor().Fields().ByName("resource_version")
	if md == nil || md.Message() == nil || md.Message().FullName() != rvf.ContainingMessage().FullName() {
		c := proto.Clone(obj).(resource.Object)
		resource.Meta(c).ResourceVersion = ""
		return c
	}
	c := shallowCopy(obj.ProtoReflect())
	mc := shallowCopy(obj.ProtoReflect().Get(md).Message())
	mc.Clear(rvf)
	c.Set(md, protoreflect.ValueOfMessage(mc))
	return c.Interface().(resource.Object)
}

func shallowCopy(m protoreflect.Message) protoreflect.Message {
	c := m.New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		c.Set(fd, v)
		return true
	})
	return c
}

// Decode reads an object of kind that Encode stored and sets its
// resourceVersion to rev, its mod revision. The object owns its memory:
// data may be reused once Decode returns.
func Decode(kind *resource.Kind, data []byte, rev int64) (resource.Object, error) {
	obj := kind.New()
	if err := proto.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("failed to decode a stored %s: %w", kind.Kind, err)
	}
	resource.Meta(obj).ResourceVersion = strconv.FormatInt(rev, 10)
	return obj, nil
}
