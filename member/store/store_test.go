package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
)

var (
	deployments = resource.MustLookup("Deployment")
	namespaces  = resource.MustLookup("Namespace")
	configMaps  = resource.MustLookup("ConfigMap")
)

// testOptions are a fixed clock (storagetest.T0) and sequential uids
// ("uid-1", "uid-2", ...).
func testOptions() []store.Option {
	return []store.Option{store.WithClock(storagetest.Clock), store.WithUIDGenerator(storagetest.SequentialUIDs())}
}

// open opens the store at path and closes it when the test ends.
func open(t testing.TB, path string, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(path, append(testOptions(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t testing.TB, opts ...store.Option) *store.Store {
	t.Helper()
	return open(t, filepath.Join(t.TempDir(), "member.db"), opts...)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Interface {
		return newStore(t)
	}, storagetest.WithCompact(func(t *testing.T, st storage.Interface, rev int64) {
		if err := st.(*store.Store).Compact(context.Background(), rev); err != nil {
			t.Fatalf("Compact(%d): %v", rev, err)
		}
	}))
}

// The suite again with a history of a handful of events: everything but
// the compaction test must still hold, since none of them watches from far
// behind.
func TestConformanceSmallHistory(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Interface {
		return newStore(t, store.WithWatchHistory(64))
	})
}

func TestCreatedFields(t *testing.T) {
	s := newStore(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	got, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 1, nil))
	md := got.GetMetadata()
	if md.GetUid() != "uid-2" || !md.GetCreationTimestamp().AsTime().Equal(storagetest.T0) || storagetest.ResourceVersion(t, got) != 2 {
		t.Fatalf("created = %v, want uid-2 at %v, resourceVersion 2", md, storagetest.T0)
	}
}

// Close, then Open on the same file: every object is back with the same
// uid and resourceVersion, and revisions go on from where they were.
func TestRestartKeepsObjects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "member.db")
	ctx := ctxT(t)
	s, err := store.Open(path, testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	for i := range 5 {
		storagetest.MustApply(t, s, storagetest.Deployment("demo", fmt.Sprintf("web-%d", i), int32(i), map[string]string{"app": "web"}))
	}
	// The last write is a delete: its revision must not be reused.
	if _, err := s.Delete(ctx, deployments, "demo", "web-4", ""); err != nil {
		t.Fatal(err)
	}
	before, beforeRev, err := s.List(ctx, deployments, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.Get(ctx, deployments, "demo", "web-0"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.Apply(ctx, storagetest.Deployment("demo", "web-9", 1, nil), storage.ApplyOptions{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}

	s2 := open(t, path)
	after, afterRev, err := s2.List(ctx, deployments, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if afterRev != beforeRev || len(after) != len(before) || len(after) != 4 {
		t.Fatalf("after restart: %d objects at revision %d, want %d at %d", len(after), afterRev, len(before), beforeRev)
	}
	for i := range before {
		if !proto.Equal(before[i], after[i]) {
			t.Errorf("after restart %v\nwant %v", after[i], before[i])
		}
	}
	// Writing goes on from where it was: the next revision, never an old one.
	d, res := storagetest.MustApply(t, s2, storagetest.Deployment("demo", "web-0", 7, map[string]string{"app": "web"}))
	if res != storage.Configured || d.GetMetadata().GetUid() != before[0].GetMetadata().GetUid() ||
		storagetest.ResourceVersion(t, d) != beforeRev+1 || d.GetMetadata().GetGeneration() != 2 {
		t.Fatalf("apply after restart: %v %v, want configured at %d", res, d, beforeRev+1)
	}

	// History is not persisted: a watch from before the restart must relist,
	// a watch from the restart's revision on works.
	e := <-s2.Watch(ctx, deployments, "", nil, beforeRev-1)
	var compacted *storage.CompactedError
	if e.Type != storage.Error || !errors.As(e.Err, &compacted) || compacted.Requested != beforeRev-1 || compacted.Compacted != beforeRev {
		t.Fatalf("watch from before the restart = %v %v", e.Type, e.Err)
	}
	e = <-s2.Watch(ctx, deployments, "", nil, beforeRev)
	if e.Type != storage.Modified || e.Revision != storagetest.ResourceVersion(t, d) {
		t.Fatalf("watch from the restart's revision = %v@%d %v", e.Type, e.Revision, e.Err)
	}
}

// A copy of the file taken while the store is open, as a crash would leave
// it, holds every committed write: bbolt's commit is the fsync.
func TestCommittedWritesSurviveACrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "member.db"))
	ctx := ctxT(t)
	storagetest.MustApply(t, s, storagetest.Namespace("demo"))
	last, _ := storagetest.MustApply(t, s, storagetest.Deployment("demo", "web", 3, nil))

	crashed := filepath.Join(dir, "crashed.db")
	copyFile(t, s.Path(), crashed)
	s2 := open(t, crashed)
	got, err := s2.Get(ctx, deployments, "demo", "web")
	if err != nil || !proto.Equal(got, last) {
		t.Fatalf("after the crash: %v, %v; want %v", got, err, last)
	}
	if rev, err := s2.Revision(ctx); err != nil || rev != storagetest.ResourceVersion(t, last) {
		t.Fatalf("revision after the crash = %d, %v; want %d", rev, err, storagetest.ResourceVersion(t, last))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// The file is locked while a Store has it open.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "member.db")
	open(t, path)
	start := time.Now()
	_, err := store.Open(path, store.WithLockTimeout(50*time.Millisecond))
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("second Open = %v after %v, want a lock timeout", err, time.Since(start))
	}
	if _, err := store.Open(path, store.WithWatchHistory(0)); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("Open with no history = %v, want ErrInvalid", err)
	}
}
