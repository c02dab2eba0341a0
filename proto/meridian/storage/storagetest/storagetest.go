// Package storagetest is the conformance suite of storage.Interface: the
// behaviour every Meridian object store shares, written once and run against
// each implementation (the hub's etcd store, the member's bbolt store), so
// that one API server and one set of controllers work over either.
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Interface {
//			return newEmptyStore(t) // closed by t.Cleanup
//		}, storagetest.WithCompact(compactTo))
//	}
//
// Every subtest gets a fresh, empty store from newStore. The suite does not
// know the store's clock or uid generator: it checks that uid and
// creationTimestamp are set once and kept, not their values. Bookmark events
// are optional and skipped. What is implementation-specific — how a store
// forgets history — comes in through Options; the subtests that need an
// option the caller did not give are skipped.
//
// The helpers the suite writes objects with (Namespace, Deployment,
// ConfigMap, MustApply, ResourceVersion) and a fixed Clock and
// SequentialUIDs for a store's options are exported for the stores' own
// tests of what the suite does not cover.
package storagetest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// CompactFunc makes st forget its history up to and including rev, so that
// a watch from an older revision must fail with a *storage.CompactedError.
// It fails t if it cannot.
type CompactFunc func(t *testing.T, st storage.Interface, rev int64)

// Options are the implementation-specific parts of the suite.
type Options struct {
	// Compact forces compaction; without it the compaction subtest is
	// skipped.
	Compact CompactFunc
	// EventTimeout is how long the suite waits for a watch event (10s if
	// zero).
	EventTimeout time.Duration
}

// Option sets one of the Options.
type Option func(*Options)

// WithCompact sets Options.Compact.
func WithCompact(fn CompactFunc) Option {
	return func(o *Options) { o.Compact = fn }
}

// WithEventTimeout sets Options.EventTimeout.
func WithEventTimeout(d time.Duration) Option {
	return func(o *Options) { o.EventTimeout = d }
}

// test is one subtest of the suite.
type test struct {
	name string
	run  func(f *fixture)
}

// tests is the suite, in the order it runs. Subtests run one at a time: the
// goroutine-leak check counts every goroutine in the process.
var tests = []test{
	{"GetAndList", testGetAndList},
	{"InvalidRequests", testInvalidRequests},
	{"ReturnedObjectsAreCopies", testReturnedObjectsAreCopies},
	{"ApplyCreateUpdateUnchanged", testApplyCreateUpdateUnchanged},
	{"ApplyKindsWithoutSpec", testApplyKindsWithoutSpec},
	{"ApplyDryRun", testApplyDryRun},
	{"ApplyPreconditions", testApplyPreconditions},
	{"NamespaceMustExist", testNamespaceMustExist},
	{"ConcurrentAppliers", testConcurrentAppliers},
	{"Update", testUpdate},
	{"UpdateConcurrentIncrements", testUpdateConcurrentIncrements},
	{"Delete", testDelete},
	{"NamespaceDeleteCascades", testNamespaceDeleteCascades},
	{"RevisionOnlyGrows", testRevisionOnlyGrows},
	{"WatchAddedModifiedDeleted", testWatchAddedModifiedDeleted},
	{"ListThenWatch", testListThenWatch},
	{"WatchResume", testWatchResume},
	{"WatchSelectorAndNamespace", testWatchSelectorAndNamespace},
	{"WatchNamespaceDeletion", testWatchNamespaceDeletion},
	{"WatchCompacted", testWatchCompacted},
	{"WatchEndsWithContext", testWatchEndsWithContext},
	{"WatchInvalid", testWatchInvalid},
	{"WatchGoroutinesEndWithContext", testWatchGoroutinesEndWithContext},
}

// Run runs the suite; newStore returns a new, empty store, and closes it
// with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) storage.Interface, opts ...Option) {
	o := Options{EventTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.EventTimeout <= 0 {
		o.EventTimeout = 10 * time.Second
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t.Cleanup(cancel)
			tt.run(&fixture{T: t, st: newStore(t), ctx: ctx, opts: o})
		})
	}
}

// fixture is one subtest's store and helpers.
type fixture struct {
	*testing.T
	st   storage.Interface
	ctx  context.Context
	opts Options
}

var (
	deployments = resource.MustLookup("Deployment")
	namespaces  = resource.MustLookup("Namespace")
	configMaps  = resource.MustLookup("ConfigMap")
	secrets     = resource.MustLookup("Secret")
)

// The objects the suite writes, for the stores' own tests too.

// Namespace is a Namespace named name.
func Namespace(name string) *meridianv1.Namespace {
	ns := namespaces.New().(*meridianv1.Namespace)
	resource.Meta(ns).Name = name
	return ns
}

// Deployment is a Deployment of replicas in namespace ns, labelled lbls.
func Deployment(ns, name string, replicas int32, lbls map[string]string) *meridianv1.Deployment {
	d := deployments.New().(*meridianv1.Deployment)
	resource.Meta(d).Namespace = ns
	resource.Meta(d).Name = name
	resource.Meta(d).Labels = lbls
	d.Spec = &meridianv1.DeploymentSpec{Replicas: proto.Int32(replicas)}
	return d
}

// ConfigMap is a ConfigMap holding data in namespace ns.
func ConfigMap(ns, name string, data map[string]string) *meridianv1.ConfigMap {
	c := configMaps.New().(*meridianv1.ConfigMap)
	resource.Meta(c).Namespace = ns
	resource.Meta(c).Name = name
	c.Data = data
	return c
}

// T0 is the time Clock tells.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Clock is a clock stopped at T0, for a store's WithClock option in its own
// tests (the suite does not depend on the store's clock).
func Clock() time.Time { return T0 }

// SequentialUIDs returns a generator of the uids "uid-1", "uid-2", ..., for
// a store's WithUIDGenerator option in its own tests (the suite does not
// depend on the store's uids). It is safe for concurrent use.
func SequentialUIDs() func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("uid-%d", n.Add(1)) }
}

// MustApply applies obj to st and fails t on error.
func MustApply(t testing.TB, st storage.Interface, obj resource.Object) (resource.Object, storage.ApplyResult) {
	t.Helper()
	out, res, err := st.Apply(context.Background(), obj, storage.ApplyOptions{})
	if err != nil {
		t.Fatalf("Apply(%s): %v", obj.GetMetadata().GetName(), err)
	}
	return out, res
}

// ResourceVersion is obj's resourceVersion as a number; it fails t if it is
// not one.
func ResourceVersion(t testing.TB, obj resource.Object) int64 {
	t.Helper()
	n, err := strconv.ParseInt(obj.GetMetadata().GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", obj.GetMetadata().GetResourceVersion(), err)
	}
	return n
}

// apply applies obj and fails the test on error.
func (f *fixture) apply(obj resource.Object) (resource.Object, storage.ApplyResult) {
	f.Helper()
	return MustApply(f.T, f.st, obj)
}

// revision is the store's current revision.
func (f *fixture) revision() int64 {
	f.Helper()
	rev, err := f.st.Revision(f.ctx)
	if err != nil {
		f.Fatalf("Revision: %v", err)
	}
	return rev
}

// rv is an object's resourceVersion as a number.
func (f *fixture) rv(obj resource.Object) int64 {
	f.Helper()
	return ResourceVersion(f.T, obj)
}

// names renders objects as "ns/name" (or "name").
func names(objs []resource.Object) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		md := o.GetMetadata()
		if md.GetNamespace() == "" {
			out = append(out, md.GetName())
		} else {
			out = append(out, md.GetNamespace()+"/"+md.GetName())
		}
	}
	return out
}

// next returns the next event that is not a Bookmark.
func (f *fixture) next(ch <-chan storage.Event) storage.Event {
	f.Helper()
	timeout := time.NewTimer(f.opts.EventTimeout)
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				f.Fatal("watch channel closed")
			}
			if e.Type == storage.Bookmark {
				if e.Object != nil {
					f.Fatalf("bookmark with an object: %v", e.Object)
				}
				continue
			}
			return e
		case <-timeout.C:
			f.Fatalf("no watch event within %v", f.opts.EventTimeout)
		}
	}
}

// summary renders an event as "TYPE ns/name@rev".
func summary(e storage.Event) string {
	if e.Object == nil {
		return fmt.Sprintf("%v@%d", e.Type, e.Revision)
	}
	md := e.Object.GetMetadata()
	return fmt.Sprintf("%v %s/%s@%d", e.Type, md.GetNamespace(), md.GetName(), e.Revision)
}

// collect reads n events (no errors allowed) and checks that each object
// carries its event's revision as resourceVersion.
func (f *fixture) collect(ch <-chan storage.Event, n int) []string {
	f.Helper()
	out := make([]string, 0, n)
	for range n {
		e := f.next(ch)
		if e.Type == storage.Error {
			f.Fatalf("watch error after %d events: %v", len(out), e.Err)
		}
		if e.Object == nil {
			f.Fatalf("%s: no object", summary(e))
		}
		if e.Object.GetMetadata().GetResourceVersion() != fmt.Sprint(e.Revision) {
			f.Fatalf("%s: object resourceVersion %s", summary(e), e.Object.GetMetadata().GetResourceVersion())
		}
		out = append(out, summary(e))
	}
	return out
}

// quiet checks that no event other than a bookmark arrives for a while.
func (f *fixture) quiet(ch <-chan storage.Event) {
	f.Helper()
	timeout := time.NewTimer(100 * time.Millisecond)
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				f.Fatal("watch channel closed")
			}
			if e.Type != storage.Bookmark {
				f.Fatalf("unexpected extra event %s", summary(e))
			}
		case <-timeout.C:
			return
		}
	}
}

// expect compares event summaries.
func (f *fixture) expect(got []string, want ...string) {
	f.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		f.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// closed checks that ch is closed (after nothing but bookmarks).
func (f *fixture) closed(ch <-chan storage.Event) {
	f.Helper()
	timeout := time.NewTimer(f.opts.EventTimeout)
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			if e.Type != storage.Bookmark {
				f.Fatalf("event on a watch that should be over: %s %v", summary(e), e.Err)
			}
		case <-timeout.C:
			f.Fatalf("watch channel not closed within %v", f.opts.EventTimeout)
		}
	}
}
