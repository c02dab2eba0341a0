package drill

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var workloadKinds = []*resource.Kind{resource.MustLookup("Deployment"), resource.MustLookup("StatefulSet")}

// objects reads the Deployments and StatefulSets of namespace ns ("": all),
// by KIND/NAMESPACE/NAME.
func (e *execution) objects(ctx context.Context, ns string) (map[string]resource.Object, error) {
	out := map[string]resource.Object{}
	for _, k := range workloadKinds {
		objs, _, err := e.r.cfg.Store.List(ctx, k, ns, nil)
		if err != nil {
			return nil, fmt.Errorf("failed to list %s: %w", k.Plural, err)
		}
		for _, o := range objs {
			out[k.Kind+"/"+o.GetMetadata().GetNamespace()+"/"+o.GetMetadata().GetName()] = o
		}
	}
	return out, nil
}

// clusterStatus is a workload's status.clusters: what each member reports.
func clusterStatus(o resource.Object) []*meridianv1.ClusterWorkloadStatus {
	switch x := o.(type) {
	case *meridianv1.Deployment:
		return x.GetStatus().GetClusters()
	case *meridianv1.StatefulSet:
		return x.GetStatus().GetClusters()
	}
	return nil
}

// desiredOf is a workload's spec.replicas.
func desiredOf(o resource.Object) int32 {
	var p *int32
	switch x := o.(type) {
	case *meridianv1.Deployment:
		p = x.GetSpec().Replicas
	case *meridianv1.StatefulSet:
		p = x.GetSpec().Replicas
	}
	if p == nil {
		return 1
	}
	return *p
}

// readyOn is the ready replicas cluster reports for o.
func readyOn(o resource.Object, cluster string) int32 {
	for _, c := range clusterStatus(o) {
		if c.GetCluster() == cluster {
			return c.GetReadyReplicas()
		}
	}
	return 0
}

// readyTotal is o's ready replicas over every cluster.
func readyTotal(o resource.Object) int32 {
	var n int32
	for _, c := range clusterStatus(o) {
		n += c.GetReadyReplicas()
	}
	return n
}

// readyOutside is o's ready replicas on clusters outside the scope.
func readyOutside(o resource.Object, scope map[string]bool) int32 {
	var n int32
	for _, c := range clusterStatus(o) {
		if !scope[c.GetCluster()] {
			n += c.GetReadyReplicas()
		}
	}
	return n
}

// readyAt reports whether every target has its replicas ready.
func readyAt(o resource.Object, targets []*meridianv1.TargetCluster) bool {
	for _, t := range targets {
		if readyOn(o, t.GetName()) < t.GetReplicas() {
			return false
		}
	}
	return true
}

// reportedTargets is where o's replicas run, as its members report.
func reportedTargets(o resource.Object) []*meridianv1.TargetCluster {
	var out []*meridianv1.TargetCluster
	for _, c := range clusterStatus(o) {
		if c.GetReplicas() > 0 {
			out = append(out, &meridianv1.TargetCluster{Name: c.GetCluster(), Replicas: c.GetReplicas()})
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
