package placement

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func failedOverBinding() *meridianv1.ResourceBinding {
	return &meridianv1.ResourceBinding{
		Metadata: &meridianv1.ObjectMeta{Annotations: map[string]string{"meridian.io/failback-requested": "now", AnnotationPolicyGeneration: "1"}},
		Spec: &meridianv1.ResourceBindingSpec{
			Clusters:     []*meridianv1.TargetCluster{{Name: "a", Replicas: 1}, {Name: "b", Replicas: 5}},
			Evicting:     []*meridianv1.GracefulEviction{{Cluster: "c", Replicas: 2, Since: timestamppb.Now()}},
			FailedOver:   []*meridianv1.FailedOver{{Cluster: "a", Replicas: 3}, {Cluster: "c", Replicas: 2}},
			FencingEpoch: 4,
		},
		Status: &meridianv1.ResourceBindingStatus{History: []*meridianv1.PlacementMove{{Type: "Failover"}}},
	}
}

// TestSnapshotForFailedOver: the clusters failover moved the workload off
// are Failed for the placement controller, except those failback has made
// targets again.
func TestSnapshotForFailedOver(t *testing.T) {
	b := failedOverBinding()
	d := deploy("demo", "web", nil)
	d.Spec = &meridianv1.DeploymentSpec{}
	s := SnapshotFor(d, nil, nil, b)
	if !slices.Equal(s.Failed, []string{"c"}) {
		t.Errorf("Failed = %v, want [c]", s.Failed)
	}
	if !slices.Equal(s.Previous, []framework.Target{{Cluster: "a", Replicas: 1}, {Cluster: "b", Replicas: 5}}) {
		t.Errorf("Previous = %v", s.Previous)
	}
}

// TestCarryFailover: a re-placement keeps what failover owns.
func TestCarryFailover(t *testing.T) {
	from := failedOverBinding()
	next := &meridianv1.ResourceBinding{Metadata: &meridianv1.ObjectMeta{Annotations: map[string]string{AnnotationPolicyGeneration: "2"}},
		Spec: &meridianv1.ResourceBindingSpec{}, Status: &meridianv1.ResourceBindingStatus{}}
	carryFailover(next, from)
	if len(next.Spec.Evicting) != 1 || len(next.Spec.FailedOver) != 2 || next.Spec.FencingEpoch != 4 || len(next.Status.History) != 1 {
		t.Errorf("spec %v status %v", next.Spec, next.Status)
	}
	if next.Metadata.Annotations["meridian.io/failback-requested"] != "now" || next.Metadata.Annotations[AnnotationPolicyGeneration] != "2" {
		t.Errorf("annotations %v", next.Metadata.Annotations)
	}
}

// TestSnapshotForPlannedMove: a singleton's move under way (planned
// clusters) is the placement a steady re-placement keeps, not the targets
// it is leaving.
func TestSnapshotForPlannedMove(t *testing.T) {
	b := &meridianv1.ResourceBinding{Spec: &meridianv1.ResourceBindingSpec{
		Clusters:        []*meridianv1.TargetCluster{{Name: "a", Replicas: 1}},
		PlannedClusters: []*meridianv1.TargetCluster{{Name: "b", Replicas: 1}},
	}}
	d := deploy("demo", "db", nil)
	d.Spec = &meridianv1.DeploymentSpec{}
	s := SnapshotFor(d, nil, nil, b)
	if !slices.Equal(s.Previous, []framework.Target{{Cluster: "b", Replicas: 1}}) {
		t.Errorf("Previous = %v, want the planned b", s.Previous)
	}
}

func TestLeaves(t *testing.T) {
	ts := func(kv ...any) []*meridianv1.TargetCluster {
		var out []*meridianv1.TargetCluster
		for i := 0; i < len(kv); i += 2 {
			out = append(out, &meridianv1.TargetCluster{Name: kv[i].(string), Replicas: int32(kv[i+1].(int))})
		}
		return out
	}
	for _, c := range []struct {
		from, to []*meridianv1.TargetCluster
		want     []string
	}{
		{ts("a", 1), ts("b", 1), []string{"a"}},
		{ts("a", 1), ts("a", 2), nil},
		{ts("a", 0), ts("b", 1), nil}, // nothing ran on a
		{ts("a", 1, "b", 1), ts("b", 2, "c", 1), []string{"a"}},
		{nil, ts("b", 1), nil},
	} {
		if got := Leaves(c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("Leaves(%v, %v) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}
