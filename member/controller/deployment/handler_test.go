package deployment

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestOnlyStatusChanged: the controller's own status writes do not queue
// a sync; every other change of a Deployment does.
func TestOnlyStatusChanged(t *testing.T) {
	base := &meridianv1.Deployment{
		Metadata: &meridianv1.ObjectMeta{Name: "web", Uid: "u1", Generation: 2,
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{RevisionAnnotation: "1"}},
		Status: &meridianv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1},
	}
	for _, tc := range []struct {
		name   string
		change func(d *meridianv1.Deployment)
		only   bool
	}{
		{"status", func(d *meridianv1.Deployment) { d.Status.Replicas, d.Status.ObservedGeneration = 2, 2 }, true},
		{"resourceVersion", func(d *meridianv1.Deployment) { d.Metadata.ResourceVersion = "9" }, true},
		{"spec (generation)", func(d *meridianv1.Deployment) { d.Metadata.Generation = 3 }, false},
		{"deletion", func(d *meridianv1.Deployment) { d.Metadata.DeletionTimestamp = timestamppb.Now() }, false},
		{"replaced (uid)", func(d *meridianv1.Deployment) { d.Metadata.Uid = "u2" }, false},
		{"annotation", func(d *meridianv1.Deployment) { d.Metadata.Annotations[RevisionAnnotation] = "2" }, false},
		{"label", func(d *meridianv1.Deployment) { d.Metadata.Labels["tier"] = "front" }, false},
	} {
		next := proto.Clone(base).(*meridianv1.Deployment)
		tc.change(next)
		if got := onlyStatusChanged(base, next); got != tc.only {
			t.Errorf("%s: onlyStatusChanged = %v, want %v", tc.name, got, tc.only)
		}
	}
}
