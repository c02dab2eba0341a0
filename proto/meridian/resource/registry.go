// Package resource is the registry of Meridian's resource kinds: their names,
// plurals and short names (as kubectl users type them), the apiVersions a
// manifest may use for each, whether they are namespaced, and helpers to wrap
// a typed object into the Admin API's Object envelope and back.
package resource

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// MeridianAPIVersion is the apiVersion of Meridian's own kinds.
const MeridianAPIVersion = "meridian.io/v1"

// KarmadaPolicyAPIVersion is Karmada's policy API group: Meridian's policy
// kinds accept it so that Karmada users can bring their policies, for the
// fields Meridian supports (any other field is an error naming it).
const KarmadaPolicyAPIVersion = "policy.karmada.io/v1alpha1"

// Kind describes one resource kind.
type Kind struct {
	// Kind is the CamelCase name written in manifests ("Deployment").
	Kind string
	// Plural is the lower-case plural used in keys and on the CLI ("deployments").
	Plural string
	// Short are kubectl-style abbreviations ("deploy").
	Short []string
	// Namespaced kinds live in a namespace; the others are cluster-scoped.
	Namespaced bool
	// APIVersions accepted in manifests; the first is written back.
	APIVersions []string
	// Order is the position in which a batch of manifests is applied: lower
	// first, so that namespaces exist before what lives in them and config
	// exists before the workloads that read it.
	Order int
	// HasSpec is true when the kind has a spec field whose changes bump
	// metadata.generation.
	HasSpec bool

	field protoreflect.FieldDescriptor // the kind's field in the Object oneof
	msg   protoreflect.MessageType
}

// New returns an empty object of this kind with apiVersion and kind set.
func (k *Kind) New() Object {
	m := k.msg.New().Interface().(Object)
	SetTypeMeta(m, k.APIVersions[0], k.Kind)
	return m
}

// AcceptsAPIVersion reports whether a manifest may declare this apiVersion.
func (k *Kind) AcceptsAPIVersion(v string) bool {
	for _, a := range k.APIVersions {
		if a == v {
			return true
		}
	}
	return false
}

// Object is implemented by every generated resource message.
type Object interface {
	proto.Message
	GetApiVersion() string
	GetKind() string
	GetMetadata() *meridianv1.ObjectMeta
}

var kinds = []*Kind{
	{Kind: "Namespace", Plural: "namespaces", Short: []string{"ns"}, APIVersions: []string{"v1"}, Order: 0, HasSpec: true},
	{Kind: "Cluster", Plural: "clusters", Short: []string{"cl"}, APIVersions: []string{MeridianAPIVersion}, Order: 1, HasSpec: true},
	{Kind: "Node", Plural: "nodes", Short: []string{"no"}, APIVersions: []string{"v1"}, Order: 1, HasSpec: true},
	{Kind: "PropagationPolicy", Plural: "propagationpolicies", Short: []string{"pp"}, Namespaced: true, APIVersions: []string{MeridianAPIVersion, KarmadaPolicyAPIVersion}, Order: 2, HasSpec: true},
	{Kind: "ClusterPropagationPolicy", Plural: "clusterpropagationpolicies", Short: []string{"cpp"}, APIVersions: []string{MeridianAPIVersion, KarmadaPolicyAPIVersion}, Order: 2, HasSpec: true},
	{Kind: "OverridePolicy", Plural: "overridepolicies", Short: []string{"op"}, Namespaced: true, APIVersions: []string{MeridianAPIVersion, KarmadaPolicyAPIVersion}, Order: 2, HasSpec: true},
	{Kind: "ConfigMap", Plural: "configmaps", Short: []string{"cm"}, Namespaced: true, APIVersions: []string{"v1"}, Order: 3},
	{Kind: "Secret", Plural: "secrets", Namespaced: true, APIVersions: []string{"v1"}, Order: 3},
	{Kind: "Service", Plural: "services", Short: []string{"svc"}, Namespaced: true, APIVersions: []string{"v1"}, Order: 4, HasSpec: true},
	{Kind: "ReplicaSet", Plural: "replicasets", Short: []string{"rs"}, Namespaced: true, APIVersions: []string{"apps/v1"}, Order: 5, HasSpec: true},
	{Kind: "Deployment", Plural: "deployments", Short: []string{"deploy"}, Namespaced: true, APIVersions: []string{"apps/v1"}, Order: 5, HasSpec: true},
	{Kind: "StatefulSet", Plural: "statefulsets", Short: []string{"sts"}, Namespaced: true, APIVersions: []string{"apps/v1"}, Order: 5, HasSpec: true},
	{Kind: "DaemonSet", Plural: "daemonsets", Short: []string{"ds"}, Namespaced: true, APIVersions: []string{"apps/v1"}, Order: 5, HasSpec: true},
	{Kind: "Job", Plural: "jobs", Namespaced: true, APIVersions: []string{"batch/v1"}, Order: 5, HasSpec: true},
	{Kind: "CronJob", Plural: "cronjobs", Short: []string{"cj"}, Namespaced: true, APIVersions: []string{"batch/v1"}, Order: 5, HasSpec: true},
	{Kind: "Pod", Plural: "pods", Short: []string{"po"}, Namespaced: true, APIVersions: []string{"v1"}, Order: 6, HasSpec: true},
	{Kind: "Drill", Plural: "drills", Namespaced: false, APIVersions: []string{MeridianAPIVersion}, Order: 2, HasSpec: true},
	{Kind: "ResourceBinding", Plural: "resourcebindings", Short: []string{"rb"}, Namespaced: true, APIVersions: []string{MeridianAPIVersion}, Order: 6, HasSpec: true},
	{Kind: "Work", Plural: "works", Namespaced: true, APIVersions: []string{MeridianAPIVersion}, Order: 6, HasSpec: true},
	{Kind: "Event", Plural: "events", Short: []string{"ev"}, Namespaced: true, APIVersions: []string{"v1"}, Order: 7},
}

var (
	byName    = map[string]*Kind{}
	byMessage = map[protoreflect.FullName]*Kind{}
)

func init() {
	oneof := (&meridianv1.Object{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
	fields := oneof.Fields()
	for _, k := range kinds {
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if string(fd.Message().Name()) == k.Kind {
				k.field = fd
			}
		}
		if k.field == nil {
			// A kind in the table without its field in Object is a programming
			// error caught by the first test run, never by a user.
			panic(fmt.Sprintf("resource: kind %s has no field in meridian.v1.Object", k.Kind))
		}
		k.msg = (&meridianv1.Object{}).ProtoReflect().NewField(k.field).Message().Type()
		byMessage[k.field.Message().FullName()] = k
		for _, n := range append([]string{strings.ToLower(k.Kind), k.Plural}, k.Short...) {
			byName[n] = k
		}
	}
}

// Lookup finds a kind by its name, plural or short name, ignoring case.
func Lookup(name string) (*Kind, bool) {
	k, ok := byName[strings.ToLower(strings.TrimSpace(name))]
	return k, ok
}

// MustLookup is Lookup for names known at compile time.
func MustLookup(name string) *Kind {
	k, ok := Lookup(name)
	if !ok {
		panic("resource: unknown kind " + name)
	}
	return k
}

// LookupError is the error for a kind name that is not known; it lists the
// kinds that are.
func LookupError(name string) error {
	return fmt.Errorf("unknown kind %q (known kinds: %s)", name, strings.Join(Names(), ", "))
}

// Names lists every kind's plural, sorted.
func Names() []string {
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k.Plural)
	}
	sort.Strings(out)
	return out
}

// All returns every kind, in apply order.
func All() []*Kind {
	out := append([]*Kind(nil), kinds...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out
}

// KindOf returns the kind of a typed object.
func KindOf(m proto.Message) (*Kind, error) {
	k, ok := byMessage[m.ProtoReflect().Descriptor().FullName()]
	if !ok {
		return nil, fmt.Errorf("%s is not a resource kind", m.ProtoReflect().Descriptor().FullName())
	}
	return k, nil
}

// Wrap puts a typed object into the Object envelope.
func Wrap(m Object) (*meridianv1.Object, error) {
	k, err := KindOf(m)
	if err != nil {
		return nil, err
	}
	o := &meridianv1.Object{}
	o.ProtoReflect().Set(k.field, protoreflect.ValueOfMessage(m.ProtoReflect()))
	return o, nil
}

// Unwrap takes the typed object out of an Object envelope.
func Unwrap(o *meridianv1.Object) (Object, *Kind, error) {
	if o == nil {
		return nil, nil, fmt.Errorf("object is missing")
	}
	r := o.ProtoReflect()
	fd := r.WhichOneof(r.Descriptor().Oneofs().ByName("kind"))
	if fd == nil {
		return nil, nil, fmt.Errorf("object holds no kind")
	}
	k := byMessage[fd.Message().FullName()]
	return r.Get(fd).Message().Interface().(Object), k, nil
}

// MustWrap is Wrap for objects whose kind is certain (they came from New).
func MustWrap(m Object) *meridianv1.Object {
	o, err := Wrap(m)
	if err != nil {
		panic(err)
	}
	return o
}

// Meta returns the object's metadata, creating an empty one if it has none.
func Meta(m Object) *meridianv1.ObjectMeta {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("metadata")
	return r.Mutable(fd).Message().Interface().(*meridianv1.ObjectMeta)
}

// SetTypeMeta sets apiVersion and kind.
func SetTypeMeta(m Object, apiVersion, kind string) {
	r := m.ProtoReflect()
	r.Set(r.Descriptor().Fields().ByName("api_version"), protoreflect.ValueOfString(apiVersion))
	r.Set(r.Descriptor().Fields().ByName("kind"), protoreflect.ValueOfString(kind))
}

// ClearStatus drops the object's status, if its kind has one.
func ClearStatus(m Object) {
	r := m.ProtoReflect()
	if fd := r.Descriptor().Fields().ByName("status"); fd != nil {
		r.Clear(fd)
	}
}

// CopyStatus copies the status of from into to (both of the same kind).
func CopyStatus(to, from Object) {
	rt, rf := to.ProtoReflect(), from.ProtoReflect()
	fd := rt.Descriptor().Fields().ByName("status")
	if fd == nil {
		return
	}
	if rf.Has(fd) {
		rt.Set(fd, protoreflect.ValueOfMessage(proto.Clone(rf.Get(fd).Message().Interface()).ProtoReflect()))
	} else {
		rt.Clear(fd)
	}
}

// DesiredEqual reports whether two objects of one kind have the same desired
// state: everything but metadata and status.
// It compares field by field, without copying either object: every store
// write calls it.
func DesiredEqual(a, b Object) bool {
	ra, rb := a.ProtoReflect(), b.ProtoReflect()
	if ra.Descriptor() != rb.Descriptor() {
		return false
	}
	fields := ra.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch fd.Name() {
		case "metadata", "status", "api_version", "kind":
			continue
		}
		if ra.Has(fd) != rb.Has(fd) {
			return false
		}
		if ra.Has(fd) && !ra.Get(fd).Equal(rb.Get(fd)) {
			return false
		}
	}
	return bytes.Equal(ra.GetUnknown(), rb.GetUnknown())
}

// Key identifies an object: kind plural, namespace (empty for cluster-scoped
// kinds) and name.
type Key struct {
	Kind      *Kind
	Namespace string
	Name      string
}

// String renders the key as kubectl does: deployments/web in namespace default
// is "deployments default/web".
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Kind.Plural + "/" + k.Name
	}
	return k.Kind.Plural + "/" + k.Namespace + "/" + k.Name
}

// KeyOf returns the key of a typed object.
func KeyOf(m Object) (Key, error) {
	k, err := KindOf(m)
	if err != nil {
		return Key{}, err
	}
	md := m.GetMetadata()
	key := Key{Kind: k, Name: md.GetName()}
	if k.Namespaced {
		key.Namespace = md.GetNamespace()
	}
	return key, nil
}
