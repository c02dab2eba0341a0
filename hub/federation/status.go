package federation

import (
	"context"
	"errors"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// statusWriter writes members' status reports into their Works. Reports are
// coalesced per Work (the latest wins) and written by a few workers, so a
// member's full report after a reconnect never holds up its stream.
type statusWriter struct {
	f    *Federation
	ctrl *controller.Controller

	mu      sync.Mutex
	pending map[string]*meridianv1.WorkStatus // by "<cluster>/<work>"
}

// The status writer and the aggregator write in batches: each worker takes
// every waiting key, up to statusBatch, and writes them with one etcd read
// and one transaction (store.UpdateMany). When a failover makes a thousand
// workloads ready at once, one transaction of 64 status writes costs
// etcd far less than 64 transactions, and the writes leave room for the
// failover's own. With one key waiting a batch is one write, as before.
const (
	statusWorkers = 8
	statusBatch   = 64
)

func newStatusWriter(f *Federation) *statusWriter {
	w := &statusWriter{f: f, pending: map[string]*meridianv1.WorkStatus{}}
	w.ctrl = controller.NewBatch("work-status", statusWorkers, statusBatch, w.sync, f.log)
	return w
}

func (w *statusWriter) run(ctx context.Context) { w.ctrl.Run(ctx) }

func (w *statusWriter) enqueue(cluster string, reports []*meridianv1.WorkStatusReport) {
	w.mu.Lock()
	for _, r := range reports {
		if r.GetWork() == "" || r.GetStatus() == nil {
			continue
		}
		w.pending[cluster+"/"+r.GetWork()] = r.GetStatus()
	}
	w.mu.Unlock()
	for _, r := range reports {
		if r.GetWork() != "" && r.GetStatus() != nil {
			w.ctrl.Queue.Add(cluster + "/" + r.GetWork())
		}
	}
}

// sync writes the latest report of each key ("<cluster>/<work>") into its
// Work, unless the Work already says the same.
func (w *statusWriter) sync(ctx context.Context, keys []string) []error {
	sts := make([]*meridianv1.WorkStatus, len(keys))
	var ms []store.Mutation
	var idx []int // ms[j] is keys[idx[j]]
	w.mu.Lock()
	for i, key := range keys {
		sts[i] = w.pending[key]
		delete(w.pending, key)
	}
	w.mu.Unlock()
	now := w.f.cfg.Now()
	for i, key := range keys {
		st := sts[i]
		if st == nil {
			continue
		}
		cluster, work, _ := strings.Cut(key, "/")
		st = proto.Clone(st).(*meridianv1.WorkStatus)
		if st.Workload != nil {
			st.Workload.Cluster = cluster
		}
		sts[i] = st
		m := store.Mutation{Namespace: federation.ClusterNamespace(cluster), Name: work, Mutate: func(o resource.Object) error {
			wk := o.(*meridianv1.Work)
			if sameStatus(wk.GetStatus(), st) {
				return nil
			}
			next := proto.Clone(st).(*meridianv1.WorkStatus)
			if next.Workload != nil {
				next.Workload.LastUpdateTime = timestamppb.New(now)
			}
			wk.Status = next
			return nil
		}}
		// The stream's copy saves a read; it is nil when the report
		// came through a stream that has ended since.
		if c := w.f.cachedWork(cluster, work); c != nil {
			m.Cached = c
		}
		ms = append(ms, m)
		idx = append(idx, i)
	}
	errs := make([]error, len(keys))
	for j, err := range store.UpdateEach(ctx, w.f.store, workKind, ms) {
		i := idx[j]
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			continue // written, or the work was deleted since
		}
		// Keep the report unless a newer one arrived meanwhile.
		w.mu.Lock()
		if _, ok := w.pending[keys[i]]; !ok {
			w.pending[keys[i]] = sts[i]
		}
		w.mu.Unlock()
		errs[i] = err
	}
	return errs
}

// sameStatus compares two work statuses, ignoring when they were reported.
func sameStatus(a, b *meridianv1.WorkStatus) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	a, b = proto.Clone(a).(*meridianv1.WorkStatus), proto.Clone(b).(*meridianv1.WorkStatus)
	for _, s := range []*meridianv1.WorkStatus{a, b} {
		if s.Workload != nil {
			s.Workload.LastUpdateTime = nil
		}
	}
	return proto.Equal(a, b)
}

// indexSourceUID indexes Works by their source's uid (the
// federation.LabelSourceUID label).
const indexSourceUID = "source-uid"

// aggregator folds the status of every Work of a hub workload into the
// workload's status (federation.Aggregate).
type aggregator struct {
	f     *Federation
	inf   *controller.InformerSet
	works *controller.Informer
	ctrl  *controller.Controller
}

func newAggregator(f *Federation, inf *controller.InformerSet) *aggregator {
	a := &aggregator{f: f, inf: inf, works: inf.For(workKind)}
	// A sync reads the Works of one workload; scanning every Work for it
	// cost the aggregator the square of the workloads.
	a.works.AddIndex(indexSourceUID, func(o resource.Object) []string {
		if uid, ok := o.GetMetadata().GetLabels()[federation.LabelSourceUID]; ok {
			return []string{uid}
		}
		return nil
	})
	a.ctrl = controller.NewBatch("status-aggregator", statusWorkers, statusBatch, a.sync, f.log)
	enqueue := func(o resource.Object) {
		if src := o.(*meridianv1.Work).GetSpec().GetSource(); src != nil {
			a.ctrl.Queue.Add(sourceKey(src.GetKind(), src.GetNamespace(), src.GetName()))
		}
	}
	a.works.AddHandler(controller.Handler{
		OnAdd: enqueue,
		OnUpdate: func(old, o resource.Object) {
			if !proto.Equal(old.(*meridianv1.Work).GetStatus(), o.(*meridianv1.Work).GetStatus()) {
				enqueue(o)
			}
		},
		OnDelete: enqueue,
	})
	for _, k := range federation.PropagatedKinds() {
		if !federation.IsWorkload(k) {
			continue
		}
		inf.For(k).AddHandler(controller.Handler{
			OnAdd: func(o resource.Object) { a.ctrl.Queue.Add(sourceKeyOf(o)) },
			OnUpdate: func(old, o resource.Object) {
				if old.GetMetadata().GetGeneration() != o.GetMetadata().GetGeneration() {
					a.ctrl.Queue.Add(sourceKeyOf(o))
				}
			},
		})
	}
	return a
}

func (a *aggregator) run(ctx context.Context) {
	if !a.inf.WaitForSync(ctx) {
		return
	}
	a.ctrl.Run(ctx)
}

// sync folds the Works of each key's workload into its status, writing
// the workloads whose status changed, a kind at a time.
func (a *aggregator) sync(ctx context.Context, keys []string) []error {
	errs := make([]error, len(keys))
	byKind := map[*resource.Kind][]store.Mutation{}
	idx := map[*resource.Kind][]int{}
	for i, key := range keys {
		k, m, ok, err := a.mutation(key)
		if err != nil {
			errs[i] = err
		}
		if ok {
			byKind[k] = append(byKind[k], m)
			idx[k] = append(idx[k], i)
		}
	}
	for k, ms := range byKind {
		for j, err := range store.UpdateEach(ctx, a.f.store, k, ms) {
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				errs[idx[k][j]] = err
			}
		}
	}
	return errs
}

// mutation is the status write of the workload of key, if its status
// (from the informer caches) is not what its Works say (ok false then).
func (a *aggregator) mutation(key string) (*resource.Kind, store.Mutation, bool, error) {
	k, ns, name, err := parseSourceKey(key)
	if err != nil || !federation.IsWorkload(k) {
		return nil, store.Mutation{}, false, nil
	}
	obj, ok := a.inf.For(k).Get(ns, name)
	if !ok {
		return nil, store.Mutation{}, false, nil
	}
	uid := obj.GetMetadata().GetUid()
	works, err := a.works.ByIndex(indexSourceUID, uid)
	if err != nil {
		return nil, store.Mutation{}, false, err
	}
	var clusters []*meridianv1.ClusterWorkloadStatus
	for _, o := range works {
		w := o.(*meridianv1.Work)
		st := w.GetStatus().GetWorkload()
		if st == nil {
			// Placed, not reported yet: the cluster owes its replicas.
			st = &meridianv1.ClusterWorkloadStatus{Replicas: replicasOf(w)}
		}
		st = proto.Clone(st).(*meridianv1.ClusterWorkloadStatus)
		st.Cluster = w.GetSpec().GetCluster()
		if st.GetObservedGeneration() != w.GetMetadata().GetGeneration() {
			st.Applied = false
		}
		clusters = append(clusters, st)
	}
	want := proto.Clone(obj).(resource.Object)
	federation.Aggregate(want, clusters)
	if proto.Equal(statusOf(want), statusOf(obj)) {
		return nil, store.Mutation{}, false, nil
	}
	return k, store.Mutation{Namespace: ns, Name: name, Cached: obj, Mutate: func(o resource.Object) error {
		if o.GetMetadata().GetUid() != uid {
			return nil
		}
		federation.Aggregate(o, clusters)
		return nil
	}}, true, nil
}

// replicasOf is the replicas a Work asks its cluster to run.
func replicasOf(w *meridianv1.Work) int32 {
	obj, _, err := resource.Unwrap(w.GetSpec().GetWorkload())
	if err != nil {
		return 0
	}
	s := federation.Summarize("", obj)
	if _, ok := obj.(*meridianv1.DaemonSet); ok {
		return 0 // a DaemonSet's count is only known on the member
	}
	return s.GetReplicas()
}

func statusOf(o resource.Object) proto.Message {
	r := o.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("status")
	if fd == nil || !r.Has(fd) {
		return nil
	}
	return r.Get(fd).Message().Interface()
}

// sourceKey is the queue key of a hub object: "<Kind>/<namespace>/<name>".
func sourceKey(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

func sourceKeyOf(o resource.Object) string {
	return sourceKey(o.GetKind(), o.GetMetadata().GetNamespace(), o.GetMetadata().GetName())
}

func parseSourceKey(key string) (*resource.Kind, string, string, error) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return nil, "", "", errors.New("bad key " + key)
	}
	k, ok := resource.Lookup(parts[0])
	if !ok {
		return nil, "", "", errors.New("bad kind in key " + key)
	}
	return k, parts[1], parts[2], nil
}
