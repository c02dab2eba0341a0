package federation_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// stages records, per workload, when each stage of a failover's data path
// first held, from watches, and counts the hub's writes by kind and
// reason (MERIDIAN_BENCH_STAGES=1; the watches load the machine, so the
// RTO of such a run is not the figure to report). Stages, for the
// workloads that gain their moved replica on dc-a2: 1 the hub's Work for
// dc-a2 asks for 2 replicas; 2 dc-a2's store has that Deployment; 3 its
// ReplicaSet is scaled to 2; 3a-3c its second pod is created, bound to a
// node, reported Pending; 4 it is Running; 5 the Deployment
// reports 2 ready there; 6 the hub's Work status says so.
type stages struct {
	mu     sync.Mutex
	start  time.Time
	at     map[string]map[string]time.Duration
	counts map[string]int
}

func (s *stages) mark(stage, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.start.IsZero() {
		return
	}
	if s.at[stage] == nil {
		s.at[stage] = map[string]time.Duration{}
	}
	if _, ok := s.at[stage][name]; !ok {
		s.at[stage][name] = time.Since(s.start)
	}
}

func (s *stages) watch(ctx context.Context, st storage.Interface, kind, ns string, check func(resource.Object) (stage, name string, ok bool)) {
	k := resource.MustLookup(kind)
	_, rev, err := st.List(ctx, k, ns, nil)
	if err != nil {
		return
	}
	ch := st.Watch(ctx, k, ns, nil, rev)
	go func() {
		for ev := range ch {
			if ev.Object == nil {
				continue
			}
			if stage, name, ok := check(ev.Object); ok {
				s.mark(stage, name)
			}
		}
	}()
}

func (s *stages) report(b *testing.B) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.Logf("%-50s %d", k, s.counts[k])
	}
	for _, stage := range []string{"0-unreachable", "1-work-sent", "2-member-spec", "3-member-rs", "3a-pod-created", "3b-pod-bound", "3c-pod-pending", "4-member-pods", "5-member-ready", "6-work-ready"} {
		var ds []time.Duration
		for _, d := range s.at[stage] {
			ds = append(ds, d)
		}
		slices.Sort(ds)
		if len(ds) == 0 {
			b.Logf("%s: none", stage)
			continue
		}
		var out []string
		for _, p := range []int{0, 25, 50, 75, 90, 100} {
			out = append(out, fmt.Sprintf("p%d=%s", p, ds[min(len(ds)-1, p*len(ds)/100)].Round(10*time.Millisecond)))
		}
		b.Logf("%-15s n=%d %s", stage, len(ds), strings.Join(out, " "))
		if os.Getenv("MERIDIAN_BENCH_HIST") != "" {
			hist := make([]string, int(ds[len(ds)-1]/(250*time.Millisecond))+1)
			counts := make([]int, len(hist))
			for _, d := range ds {
				counts[int(d/(250*time.Millisecond))]++
			}
			for i, n := range counts {
				hist[i] = fmt.Sprint(n)
			}
			b.Logf("%-15s per 250ms: %s", stage, strings.Join(hist, " "))
		}
	}
}

// count counts the writes of kind (all namespaces) to st (who: "hub",
// or a member's name) by a reason derived from the object.
func (s *stages) count(ctx context.Context, st storage.Interface, who, kind string) {
	k := resource.MustLookup(kind)
	_, rev, err := st.List(ctx, k, "", nil)
	if err != nil {
		return
	}
	ch := st.Watch(ctx, k, "", nil, rev)
	prev := map[string]*meridianv1.ResourceBinding{}
	prevW := map[string]*meridianv1.Work{}
	prevO := map[string]resource.Object{} // other kinds: what changed
	go func() {
		for ev := range ch {
			if ev.Object == nil {
				continue
			}
			what := who + " writes: " + kind + " " + fmt.Sprint(ev.Type)
			switch ev.Object.(type) {
			case *meridianv1.Pod, *meridianv1.ReplicaSet, *meridianv1.Deployment:
				key := ev.Object.GetMetadata().GetNamespace() + "/" + ev.Object.GetMetadata().GetName()
				if p := prevO[key]; p != nil {
					if p.GetMetadata().GetGeneration() != ev.Object.GetMetadata().GetGeneration() {
						what += " spec"
					} else {
						what += " status/meta " + statusDiff(p, ev.Object)
					}
				}
				prevO[key] = ev.Object
			}
			if b, ok := ev.Object.(*meridianv1.ResourceBinding); ok {
				if p := prev[b.GetMetadata().GetName()]; p != nil {
					switch {
					case p.GetMetadata().GetGeneration() != b.GetMetadata().GetGeneration():
						what += " spec"
					case !proto.Equal(&meridianv1.ResourceBindingStatus{Clusters: p.GetStatus().GetClusters()}, &meridianv1.ResourceBindingStatus{Clusters: b.GetStatus().GetClusters()}):
						what += fmt.Sprintf(" verdicts@%ds", int(time.Since(s.start).Seconds()))
					default:
						what += " other-status/meta"
					}
				}
				prev[b.GetMetadata().GetName()] = b
			}
			if e, ok := ev.Object.(*meridianv1.Event); ok {
				what += " " + e.GetReason()
			}
			if w, ok := ev.Object.(*meridianv1.Work); ok {
				what += " " + w.GetSpec().GetCluster()
				if p := prevW[w.GetMetadata().GetName()+w.GetSpec().GetCluster()]; p != nil && p.GetMetadata().GetGeneration() == w.GetMetadata().GetGeneration() {
					a, b := p.GetStatus().GetWorkload(), w.GetStatus().GetWorkload()
					var ch []string
					if a.GetReplicas() != b.GetReplicas() {
						ch = append(ch, "replicas")
					}
					if a.GetCurrent() != b.GetCurrent() {
						ch = append(ch, "current")
					}
					if a.GetReadyReplicas() != b.GetReadyReplicas() {
						ch = append(ch, "ready")
					}
					if a.GetAvailableReplicas() != b.GetAvailableReplicas() {
						ch = append(ch, "avail")
					}
					if a.GetUpdatedReplicas() != b.GetUpdatedReplicas() {
						ch = append(ch, "updated")
					}
					if a.GetObservedGeneration() != b.GetObservedGeneration() {
						ch = append(ch, "obsgen")
					}
					if a.GetApplied() != b.GetApplied() {
						ch = append(ch, "applied")
					}
					if !proto.Equal(&meridianv1.ClusterWorkloadStatus{Conditions: a.GetConditions()}, &meridianv1.ClusterWorkloadStatus{Conditions: b.GetConditions()}) {
						ch = append(ch, "conds")
					}
					what += " [" + strings.Join(ch, ",") + "]"
				}
				prevW[w.GetMetadata().GetName()+w.GetSpec().GetCluster()] = w
			}
			s.mu.Lock()
			s.counts[what]++
			s.mu.Unlock()
		}
	}()
}

func startStages(ctx context.Context, f *fed, a2 storage.Interface) *stages {
	s := &stages{at: map[string]map[string]time.Duration{}, counts: map[string]int{}}
	for _, k := range []string{"ResourceBinding", "Work", "Deployment", "Event", "Cluster", "Lease"} {
		if _, ok := resource.Lookup(k); ok {
			s.count(ctx, f.hub.Store(), "hub", k)
		}
	}
	for _, k := range []string{"Deployment", "ReplicaSet", "Pod", "Event"} {
		s.count(ctx, a2, "dc-a2", k)
	}
	s.watch(ctx, f.hub.Store(), "Work", federation.ClusterNamespace("dc-a2"), func(o resource.Object) (string, string, bool) {
		w := o.(*meridianv1.Work)
		name := w.GetSpec().GetSource().GetName()
		if w.GetStatus().GetWorkload().GetReadyReplicas() >= 2 && w.GetStatus().GetWorkload().GetObservedGeneration() == w.GetMetadata().GetGeneration() {
			s.mark("6-work-ready", name)
		}
		obj, _, err := resource.Unwrap(w.GetSpec().GetWorkload())
		if d, ok := obj.(*meridianv1.Deployment); err == nil && ok && d.GetSpec().GetReplicas() == 2 {
			return "1-work-sent", name, true
		}
		return "", "", false
	})
	s.watch(ctx, a2, "Deployment", "bench", func(o resource.Object) (string, string, bool) {
		d := o.(*meridianv1.Deployment)
		if d.GetSpec().GetReplicas() != 2 {
			return "", "", false
		}
		s.mark("2-member-spec", d.GetMetadata().GetName())
		if d.GetStatus().GetReadyReplicas() >= 2 {
			return "5-member-ready", d.GetMetadata().GetName(), true
		}
		return "", "", false
	})
	s.watch(ctx, a2, "ReplicaSet", "bench", func(o resource.Object) (string, string, bool) {
		rs := o.(*meridianv1.ReplicaSet)
		if rs.GetSpec().GetReplicas() == 2 && len(rs.GetMetadata().GetOwnerReferences()) > 0 {
			return "3-member-rs", rs.GetMetadata().GetOwnerReferences()[0].GetName(), true
		}
		return "", "", false
	})
	s.watch(ctx, a2, "Pod", "bench", func(o resource.Object) (string, string, bool) {
		p := o.(*meridianv1.Pod)
		if len(p.GetMetadata().GetOwnerReferences()) == 0 {
			return "", "", false
		}
		s.mu.Lock()
		moved := p.GetMetadata().GetCreationTimestamp().AsTime().After(s.start)
		s.mu.Unlock()
		// The owner is the ReplicaSet <deployment>-<hash>; a pod created
		// after the stop is the moved replica.
		rs := p.GetMetadata().GetOwnerReferences()[0].GetName()
		name := rs[:max(strings.LastIndex(rs, "-"), 0)]
		if !moved {
			return "", "", false
		}
		s.mark("3a-pod-created", name)
		if p.GetSpec().GetNodeName() != "" {
			s.mark("3b-pod-bound", name)
		}
		if p.GetStatus().GetPhase() != "" && p.GetStatus().GetPhase() != "Running" {
			s.mark("3c-pod-pending", name)
		}
		return "4-member-pods", name, p.GetStatus().GetPhase() == "Running"
	})
	s.watch(ctx, f.hub.Store(), "Cluster", "", func(o resource.Object) (string, string, bool) {
		for _, c := range o.(*meridianv1.Cluster).GetStatus().GetConditions() {
			if c.GetType() == "Ready" && c.GetStatus() != "True" {
				return "0-unreachable", o.GetMetadata().GetName(), true
			}
		}
		return "", "", false
	})
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
	return s
}

// statusDiff names the fields of the status that differ between a and b
// ("[replicas,conditions]").
func statusDiff(a, b resource.Object) string {
	fd := a.ProtoReflect().Descriptor().Fields().ByName("status")
	if fd == nil {
		return ""
	}
	sa, sb := a.ProtoReflect().Get(fd).Message(), b.ProtoReflect().Get(fd).Message()
	var out []string
	fields := fd.Message().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !sa.Get(f).Equal(sb.Get(f)) {
			out = append(out, string(f.Name()))
		}
	}
	return "[" + strings.Join(out, ",") + "]"
}
