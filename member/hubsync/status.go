package hubsync

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// ConditionApplied is the condition of a WorkStatus: True once the member
// has stored the work's generation (observedGeneration), False with a
// reason when it could not.
const ConditionApplied = "Applied"

// tracker keeps the status report of every Work the member holds: one per
// hub-managed object of a propagated kind (from a List and Watch of each
// kind, selected by the managed-by label), and one per Work the member
// could not apply. It records which changed since the last look (the dirty
// set), so that a stream reports only those, coalesced. Reports are never
// modified once stored: they can be sent while the tracker goes on.
type tracker struct {
	cluster string
	store   storage.Interface
	log     *slog.Logger

	mu       sync.Mutex
	objects  map[string]objectStatus                 // by object key (resource.Key.String)
	byWork   map[string]string                       // work name → object key
	failures map[string]*meridianv1.WorkStatusReport // by work name
	dirty    map[string]struct{}                     // work names changed since takeDirty
	notify   chan struct{}                           // signalled (cap 1) when dirty grows
	unlisted int                                     // kinds not listed yet
	synced   chan struct{}                           // closed once every kind is listed by the current run
}

type objectStatus struct {
	work   string
	report *meridianv1.WorkStatusReport
}

func newTracker(cluster string, st storage.Interface, log *slog.Logger) *tracker {
	return &tracker{
		cluster: cluster, store: st, log: log,
		objects: map[string]objectStatus{}, byWork: map[string]string{},
		failures: map[string]*meridianv1.WorkStatusReport{}, dirty: map[string]struct{}{},
		notify: make(chan struct{}, 1), synced: make(chan struct{}),
	}
}

// reset readies the tracker for a run: waitSynced waits for its lists.
// The reports and failures of an earlier run stay until the new lists
// replace them.
func (t *tracker) reset() {
	t.mu.Lock()
	t.unlisted = len(federation.PropagatedKinds())
	t.synced = make(chan struct{})
	t.mu.Unlock()
}

// run watches every propagated kind until ctx ends. Call reset first; runs
// must not overlap.
func (t *tracker) run(ctx context.Context) {
	kinds := federation.PropagatedKinds()
	var wg sync.WaitGroup
	for _, k := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.watchKind(ctx, k)
		}()
	}
	wg.Wait()
}

// waitSynced waits until every kind has been listed once.
func (t *tracker) waitSynced(ctx context.Context) bool {
	t.mu.Lock()
	synced := t.synced
	t.mu.Unlock()
	select {
	case <-synced:
		return true
	case <-ctx.Done():
		return false
	}
}

// watchKind lists and watches the hub-managed objects of kind, relisting
// when the watch's revision was compacted.
func (t *tracker) watchKind(ctx context.Context, kind *resource.Kind) {
	retry := 50 * time.Millisecond
	first, relist := true, true
	var rev int64
	for ctx.Err() == nil {
		if relist {
			objs, r, err := t.store.List(ctx, kind, "", managedSelector)
			if err != nil {
				if ctx.Err() == nil {
					t.log.Warn("failed to list hub-managed objects; retrying", "kind", kind.Plural, "err", err, "in", retry)
				}
				if !sleepCtx(ctx, retry) {
					return
				}
				retry = min(retry*2, 5*time.Second)
				continue
			}
			t.replace(kind, objs)
			if first {
				first = false
				t.listed()
			}
			rev, relist = r, false
		}
		retry = 50 * time.Millisecond
		for ev := range t.store.Watch(ctx, kind, "", managedSelector, rev) {
			switch ev.Type {
			case storage.Error:
				if errors.Is(ev.Err, storage.ErrCompacted) {
					relist = true
				} else if ctx.Err() == nil {
					t.log.Warn("watch of hub-managed objects ended; resuming", "kind", kind.Plural, "err", ev.Err)
				}
			case storage.Bookmark:
				rev = ev.Revision
			case storage.Deleted:
				t.remove(objectKey(ev.Object))
				rev = ev.Revision - 1 // events may share a revision; replays are harmless
			default:
				t.put(ev.Object)
				rev = ev.Revision - 1
			}
		}
		if !relist && !sleepCtx(ctx, retry) {
			return
		}
	}
}

func (t *tracker) listed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unlisted--
	if t.unlisted == 0 {
		close(t.synced)
	}
}

func objectKey(obj resource.Object) string {
	key, err := resource.KeyOf(obj)
	if err != nil {
		return ""
	}
	return key.String()
}

// replace sets the objects of kind to objs.
func (t *tracker) replace(kind *resource.Kind, objs []resource.Object) {
	seen := map[string]bool{}
	for _, o := range objs {
		seen[objectKey(o)] = true
		t.put(o)
	}
	prefix := kind.Plural + "/"
	t.mu.Lock()
	var gone []string
	for k := range t.objects {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix && !seen[k] {
			gone = append(gone, k)
		}
	}
	t.mu.Unlock()
	for _, k := range gone {
		t.remove(k)
	}
}

// put records the status of a hub-managed object.
func (t *tracker) put(obj resource.Object) {
	key := objectKey(obj)
	work := obj.GetMetadata().GetAnnotations()[federation.AnnotationWork]
	if key == "" || work == "" || !federation.IsManagedByHub(obj) {
		// A namespace the member created for a work's objects has no work.
		t.remove(key)
		return
	}
	r := objectReport(t.cluster, work, obj)
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.objects[key]
	if had && old.work == work && proto.Equal(old.report, r) {
		return
	}
	if had && old.work != work {
		t.unindexLocked(key, old.work)
	}
	t.objects[key] = objectStatus{work: work, report: r}
	t.byWork[work] = key
	t.markLocked(work)
}

func (t *tracker) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.objects[key]
	if !had {
		return
	}
	delete(t.objects, key)
	t.unindexLocked(key, old.work)
}

func (t *tracker) unindexLocked(key, work string) {
	if t.byWork[work] == key {
		delete(t.byWork, work)
	}
	t.markLocked(work)
}

func (t *tracker) markLocked(work string) {
	t.dirty[work] = struct{}{}
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// setFailure records that work (at generation gen) could not be applied.
func (t *tracker) setFailure(work string, gen int64, reason, msg string) {
	r := &meridianv1.WorkStatusReport{Work: work, Status: &meridianv1.WorkStatus{
		Conditions: []*meridianv1.Condition{{Type: ConditionApplied, Status: "False", Reason: reason, Message: msg, ObservedGeneration: gen}},
		Workload:   &meridianv1.ClusterWorkloadStatus{Cluster: t.cluster, Applied: false, ObservedGeneration: gen},
	}}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.failures[work]; ok && proto.Equal(old, r) {
		return
	}
	t.failures[work] = r
	t.markLocked(work)
}

// clearFailure forgets a failure of work (it was applied, or deleted).
func (t *tracker) clearFailure(work string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.failures[work]; ok {
		delete(t.failures, work)
		t.markLocked(work)
	}
}

// retainFailures forgets the failures of works not in keep.
func (t *tracker) retainFailures(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for w := range t.failures {
		if !keep[w] {
			delete(t.failures, w)
			t.markLocked(w)
		}
	}
}

// getLocked is the report of work: its failure, else its object's; nil if
// the member holds neither.
func (t *tracker) getLocked(work string) *meridianv1.WorkStatusReport {
	if r, ok := t.failures[work]; ok {
		return r
	}
	if key, ok := t.byWork[work]; ok {
		return t.objects[key].report
	}
	return nil
}

// all clears the dirty set and returns every report, sorted by work.
func (t *tracker) all() []*meridianv1.WorkStatusReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.dirty)
	works := make([]string, 0, len(t.byWork)+len(t.failures))
	for w := range t.byWork {
		works = append(works, w)
	}
	for w := range t.failures {
		if _, ok := t.byWork[w]; !ok {
			works = append(works, w)
		}
	}
	sort.Strings(works)
	out := make([]*meridianv1.WorkStatusReport, 0, len(works))
	for _, w := range works {
		out = append(out, t.getLocked(w))
	}
	return out
}

// takeDirty clears the dirty set and returns the current reports of the
// works in it; a work the member no longer holds maps to nil.
func (t *tracker) takeDirty() map[string]*meridianv1.WorkStatusReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*meridianv1.WorkStatusReport, len(t.dirty))
	for w := range t.dirty {
		out[w] = t.getLocked(w)
	}
	clear(t.dirty)
	return out
}

// objectReport is the status report of a hub-managed object: Summarize,
// with the generation of the Work it was applied from.
func objectReport(cluster, work string, obj resource.Object) *meridianv1.WorkStatusReport {
	gen, _ := strconv.ParseInt(obj.GetMetadata().GetAnnotations()[federation.AnnotationWorkGeneration], 10, 64)
	sum := federation.Summarize(cluster, obj)
	sum.ObservedGeneration = gen
	return &meridianv1.WorkStatusReport{Work: work, Status: &meridianv1.WorkStatus{
		Conditions: []*meridianv1.Condition{{Type: ConditionApplied, Status: "True", Reason: ReasonApplied, ObservedGeneration: gen}},
		Workload:   sum,
	}}
}

// sleepCtx waits d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
