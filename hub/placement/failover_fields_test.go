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
