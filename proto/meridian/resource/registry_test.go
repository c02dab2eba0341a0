package resource

import (
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestLookupNamesAndShortNames(t *testing.T) {
	for name, want := range map[string]string{
		"deploy": "Deployment", "Deployments": "Deployment", "deployment": "Deployment",
		"sts": "StatefulSet", "ds": "DaemonSet", "svc": "Service", "cm": "ConfigMap",
		"ns": "Namespace", "cj": "CronJob", "pp": "PropagationPolicy", "clusters": "Cluster",
	} {
		k, ok := Lookup(name)
		if !ok || k.Kind != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", name, k, ok, want)
		}
	}
	if _, ok := Lookup("deployz"); ok {
		t.Error("Lookup(deployz) succeeded")
	}
}

func TestWrapUnwrapEveryKind(t *testing.T) {
	for _, k := range All() {
		obj := k.New()
		Meta(obj).Name = "x"
		o, err := Wrap(obj)
		if err != nil {
			t.Fatalf("%s: %v", k.Kind, err)
		}
		back, bk, err := Unwrap(o)
		if err != nil || bk != k || back.GetMetadata().GetName() != "x" || back.GetKind() != k.Kind {
			t.Fatalf("%s: round trip gave %v %v %v", k.Kind, back, bk, err)
		}
	}
	if _, _, err := Unwrap(&meridianv1.Object{}); err == nil {
		t.Fatal("Unwrap of an empty Object succeeded")
	}
}

func TestDesiredEqualIgnoresMetadataAndStatus(t *testing.T) {
	a := &meridianv1.Deployment{Metadata: &meridianv1.ObjectMeta{Name: "a", ResourceVersion: "1"}, Spec: &meridianv1.DeploymentSpec{MinReadySeconds: 1}}
	b := &meridianv1.Deployment{Metadata: &meridianv1.ObjectMeta{Name: "a", ResourceVersion: "9"}, Spec: &meridianv1.DeploymentSpec{MinReadySeconds: 1},
		Status: &meridianv1.DeploymentStatus{Replicas: 3}}
	if !DesiredEqual(a, b) {
		t.Fatal("metadata/status difference counted as a desired-state change")
	}
	b.Spec.MinReadySeconds = 2
	if DesiredEqual(a, b) {
		t.Fatal("spec difference not seen")
	}
	// Presence counts, as in proto.Equal: no spec is not an empty spec.
	if DesiredEqual(&meridianv1.Deployment{}, &meridianv1.Deployment{Spec: &meridianv1.DeploymentSpec{}}) {
		t.Fatal("an unset spec equals an empty one")
	}
	// A kind whose desired state is not under spec (a ConfigMap's data).
	c1 := &meridianv1.ConfigMap{Metadata: &meridianv1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}}
	c2 := &meridianv1.ConfigMap{Metadata: &meridianv1.ObjectMeta{Name: "c", Labels: map[string]string{"x": "y"}}, Data: map[string]string{"k": "v"}}
	if !DesiredEqual(c1, c2) {
		t.Fatal("a label counted as a data change")
	}
	c2.Data["k"] = "w"
	if DesiredEqual(c1, c2) {
		t.Fatal("data difference not seen")
	}
	if DesiredEqual(c1, &meridianv1.Secret{Metadata: &meridianv1.ObjectMeta{Name: "c"}}) {
		t.Fatal("objects of two kinds compared equal")
	}
}
