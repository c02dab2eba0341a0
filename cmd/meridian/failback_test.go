package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestFailbackCommand: `meridian failback` annotates the binding of one
// workload, or of every workload that failed over from a cluster.
func TestFailbackCommand(t *testing.T) {
	h := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Real workloads (the placement controller deletes bindings of
	// objects that are gone), then failover's record on their bindings.
	for _, name := range []string{"web", "api", "other"} {
		one := int32(1)
		d := &meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment",
			Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: &meridianv1.DeploymentSpec{Replicas: &one, Selector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: &meridianv1.PodTemplateSpec{Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "main", Image: "app:1"}}}}}}
		if _, _, err := h.Store().Apply(ctx, d, storage.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		from := "dc-a1"
		if name == "other" {
			from = "dc-b1"
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := h.Store().Update(ctx, resource.MustLookup("ResourceBinding"), "default", "deployment."+name, func(o resource.Object) error {
				b := o.(*meridianv1.ResourceBinding)
				b.Spec.FailedOver = []*meridianv1.FailedOver{{Cluster: from, Replicas: 1, Time: timestamppb.Now()}}
				return nil
			})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("binding of %s: %v", name, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	annotations := func(name string) map[string]string {
		o, err := h.Store().Get(ctx, resource.MustLookup("ResourceBinding"), "default", name)
		if err != nil {
			t.Fatal(err)
		}
		return o.GetMetadata().GetAnnotations()
	}

	if _, _, err := run(t, "", "failback"); err == nil || !strings.Contains(err.Error(), "either KIND/NAME or --cluster") {
		t.Errorf("no argument: err = %v", err)
	}
	out, _, err := run(t, "", "failback", "deploy/web", "-n", "default")
	if err != nil || !strings.Contains(out, "failback requested: default/deployment.web") {
		t.Fatalf("failback deploy/web: %v\n%s", err, out)
	}
	if a := annotations("deployment.web"); a[failover.AnnotationFailbackRequested] == "" || a[failover.AnnotationFailbackCluster] != "" {
		t.Errorf("web annotations %v", a)
	}
	out, _, err = run(t, "", "failback", "--cluster", "dc-a1")
	if err != nil || !strings.Contains(out, "default/deployment.api") || strings.Contains(out, "deployment.other") {
		t.Fatalf("failback --cluster dc-a1: %v\n%s", err, out)
	}
	if a := annotations("deployment.api"); a[failover.AnnotationFailbackCluster] != "dc-a1" {
		t.Errorf("api annotations %v", a)
	}
	if a := annotations("deployment.other"); a[failover.AnnotationFailbackRequested] != "" {
		t.Errorf("other was annotated: %v", a)
	}
	out, _, err = run(t, "", "failback", "--cluster", "dc-zz")
	if err != nil || !strings.Contains(out, "no workload failed over from dc-zz") {
		t.Errorf("failback --cluster dc-zz: %v\n%s", err, out)
	}
}

func TestDescribeFailover(t *testing.T) {
	now := time.Now()
	ago := timestamppb.New(now.Add(-5 * time.Second))
	b := &meridianv1.ResourceBinding{
		Spec: &meridianv1.ResourceBindingSpec{
			Evicting:        []*meridianv1.GracefulEviction{{Cluster: "dc-a1", Replicas: 2, Since: ago, Reason: "Unreachable"}},
			FailedOver:      []*meridianv1.FailedOver{{Cluster: "dc-a1", Replicas: 2, Time: ago}},
			FencingEpoch:    3,
			Clusters:        []*meridianv1.TargetCluster{{Name: "dc-a1", Replicas: 1}},
			PlannedClusters: []*meridianv1.TargetCluster{{Name: "dc-b1", Replicas: 1}},
		},
		Status: &meridianv1.ResourceBindingStatus{History: []*meridianv1.PlacementMove{{
			Time: ago, Type: "Failover", Reason: "moved 2 replicas from dc-a1 (Unreachable for 5s) to dc-a2 (2)",
			From: []*meridianv1.TargetCluster{{Name: "dc-a1", Replicas: 2}, {Name: "dc-a2", Replicas: 2}},
			To:   []*meridianv1.TargetCluster{{Name: "dc-a2", Replicas: 4}},
		}}},
	}
	var buf bytes.Buffer
	describeFailover(&buf, b, now)
	out := buf.String()
	for _, want := range []string{`Fencing:\s+3`, `EVICTING\s+REPLICAS\s+SINCE\s+REASON`, `dc-a1\s+2\s+5s ago\s+Unreachable`,
		`FAILED OVER\s+REPLICAS\s+AGE\n\s+dc-a1\s+2\s+5s`, `Failover\s+5s\s+dc-a1=2,dc-a2=2\s+dc-a2=4\s+moved 2 replicas from dc-a1`,
		`Moving to:\s+dc-b1=1 \(a singleton: it starts there once its copy on dc-a1 has stopped\)`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
}
