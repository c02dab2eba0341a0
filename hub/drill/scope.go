package drill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/hub/drill/report"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// ScopeString is a scope as the CLI writes it: "datacenter=dc-a1".
func ScopeString(s *meridianv1.DrillScope) string { return report.Scope(s) }

// inScope reports whether cluster c is in scope s.
func inScope(s *meridianv1.DrillScope, c *framework.Cluster) bool {
	switch {
	case s.GetCluster() != "":
		return c.Name == s.GetCluster()
	case s.GetDatacenter() != "":
		return c.Datacenter == s.GetDatacenter()
	case s.GetRegion() != "":
		return c.Region == s.GetRegion()
	}
	return false
}

// clusters reads every cluster as placement sees it.
func (r *Runner) clusters(ctx context.Context) ([]*framework.Cluster, error) {
	objs, _, err := r.cfg.Store.List(ctx, clusterKind, "", nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list clusters: %w", err)
	}
	out := make([]*framework.Cluster, 0, len(objs))
	for _, o := range objs {
		out = append(out, placement.ClusterInfo(o.(*meridianv1.Cluster)))
	}
	slices.SortFunc(out, func(a, b *framework.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// scopeClusters is the names of the clusters in scope s.
func scopeClusters(s *meridianv1.DrillScope, all []*framework.Cluster) map[string]bool {
	out := map[string]bool{}
	for _, c := range all {
		if inScope(s, c) {
			out[c.Name] = true
		}
	}
	return out
}

// notReady lists the clusters that are not Ready (a real failure, in the
// scope or outside it): a drill does not start, or stops, then. The drill
// itself never makes a cluster unhealthy: it fences workloads, not
// clusters.
func notReady(all []*framework.Cluster) []string {
	var out []string
	for _, c := range all {
		if c.Health != framework.HealthReady {
			out = append(out, fmt.Sprintf("%s is %s", c.Name, c.Health))
		}
	}
	return out
}

// workload is one workload a drill concerns.
type workload struct {
	kind     *resource.Kind
	obj      resource.Object
	binding  *meridianv1.ResourceBinding
	original []*meridianv1.TargetCluster
	// from are the scope's targets; replicas their sum.
	from     []*meridianv1.TargetCluster
	replicas int32
	// targets is where the replicas run during the drill (planned,
	// unplanned) and copyName the copy's name (test).
	targets  []*meridianv1.TargetCluster
	copyName string
	result   *meridianv1.DrillWorkloadResult
	// down accumulates the time it had fewer ready replicas than desired
	// (planned mode); downSince is when the current stretch began.
	down      time.Duration
	downSince time.Time
	ready     bool
	// singleton: never two copies (federation.IsSingleton); its moves
	// stop the old copy first (moveSingleton).
	singleton bool
	// Unplanned: moved is set once the failover controller moved it off
	// the scope, epoch is its fencing epoch before the drill, noFailover
	// why failover would not move it (its policy disables failover).
	moved      bool
	epoch      int64
	noFailover string
}

func (w *workload) ns() string   { return w.obj.GetMetadata().GetNamespace() }
func (w *workload) name() string { return w.obj.GetMetadata().GetName() }
func (w *workload) id() string   { return w.kind.Kind + "/" + w.ns() + "/" + w.name() }

// affected lists the workloads (Deployments and StatefulSets) whose
// binding targets a cluster of the scope, that the drill's selector
// selects, sorted by namespace, kind and name. Drill namespaces are
// skipped.
func (r *Runner) affected(ctx context.Context, spec *meridianv1.DrillSpec, scope map[string]bool) ([]*workload, error) {
	sel, err := podutil.Selector(spec.GetWorkloads())
	if err != nil {
		return nil, fmt.Errorf("workloads selector: %w", err)
	}
	if spec.GetWorkloads() == nil {
		sel = nil
	}
	objs, _, err := r.cfg.Store.List(ctx, bindingKind, "", nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list bindings: %w", err)
	}
	var out []*workload
	for _, o := range objs {
		b := o.(*meridianv1.ResourceBinding)
		ref := b.GetSpec().GetResource()
		if ref.GetKind() != "Deployment" && ref.GetKind() != "StatefulSet" {
			continue
		}
		if ns := b.GetMetadata().GetNamespace(); strings.HasPrefix(ns, "drill-") && isDrillNamespace(ctx, r, ns) {
			continue // another drill's copies
		}
		var from []*meridianv1.TargetCluster
		var n int32
		for _, t := range b.GetSpec().GetClusters() {
			if scope[t.GetName()] && t.GetReplicas() > 0 {
				from = append(from, t)
				n += t.GetReplicas()
			}
		}
		if n == 0 {
			continue
		}
		k := resource.MustLookup(ref.GetKind())
		obj, err := r.cfg.Store.Get(ctx, k, ref.GetNamespace(), ref.GetName())
		if err != nil {
			continue // deleted meanwhile
		}
		if obj.GetMetadata().GetDeletionTimestamp() != nil {
			continue
		}
		if sel != nil && !sel.Matches(labels.Set(obj.GetMetadata().GetLabels())) {
			continue
		}
		out = append(out, &workload{
			kind: k, obj: obj, binding: b, original: cloneTargets(b.GetSpec().GetClusters()), from: cloneTargets(from), replicas: n,
			singleton: federation.IsSingleton(obj),
			result: &meridianv1.DrillWorkloadResult{
				Workload: &meridianv1.ObjectReference{ApiVersion: obj.GetApiVersion(), Kind: k.Kind, Namespace: ref.GetNamespace(), Name: ref.GetName(), Uid: obj.GetMetadata().GetUid()},
				From:     cloneTargets(from),
			},
		})
	}
	slices.SortFunc(out, func(a, b *workload) int {
		return strings.Compare(a.ns()+"/"+a.kind.Kind+"/"+a.name(), b.ns()+"/"+b.kind.Kind+"/"+b.name())
	})
	return out, nil
}

func isDrillNamespace(ctx context.Context, r *Runner, ns string) bool {
	o, err := r.cfg.Store.Get(ctx, namespaceKind, "", ns)
	return err == nil && o.GetMetadata().GetLabels()[LabelDrill] != ""
}

func cloneTargets(ts []*meridianv1.TargetCluster) []*meridianv1.TargetCluster {
	out := make([]*meridianv1.TargetCluster, 0, len(ts))
	for _, t := range ts {
		out = append(out, &meridianv1.TargetCluster{Name: t.GetName(), Replicas: t.GetReplicas()})
	}
	return out
}

// capacityShortfall says what the survivors lack to take the workloads'
// scope replicas ("" when they fit): their free pods, CPU and memory
// summed, against what the replicas request. Survivors that report no
// capacity at all are not limited.
func capacityShortfall(ws []*workload, survivors []*framework.Cluster) string {
	var free framework.Resources
	for _, c := range survivors {
		if c.Allocatable.Pods == 0 && c.Allocatable.MilliCPU == 0 && c.Allocatable.Memory == 0 {
			return ""
		}
		free.Pods += c.Available.Pods
		free.MilliCPU += c.Available.MilliCPU
		free.Memory += c.Available.Memory
	}
	var need framework.Resources
	for _, w := range ws {
		per := placement.WorkloadInfo(w.obj).PerReplica
		n := int64(w.replicas)
		need.Pods += n
		need.MilliCPU += n * per.MilliCPU
		need.Memory += n * per.Memory
	}
	var lack []string
	if need.Pods > free.Pods {
		lack = append(lack, fmt.Sprintf("%d pods (free %d)", need.Pods, free.Pods))
	}
	if need.MilliCPU > free.MilliCPU {
		lack = append(lack, fmt.Sprintf("%dm CPU (free %dm)", need.MilliCPU, free.MilliCPU))
	}
	if need.Memory > free.Memory {
		lack = append(lack, fmt.Sprintf("%d bytes of memory (free %d)", need.Memory, free.Memory))
	}
	if len(lack) == 0 {
		return ""
	}
	return "the surviving clusters lack capacity: the drill needs " + strings.Join(lack, ", ")
}
