package federation

import (
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestSetFencingEpoch(t *testing.T) {
	sts := &meridianv1.StatefulSet{Metadata: &meridianv1.ObjectMeta{Name: "db"}, Spec: &meridianv1.StatefulSetSpec{Template: &meridianv1.PodTemplateSpec{Spec: &meridianv1.PodSpec{
		InitContainers: []*meridianv1.Container{{Name: "init"}},
		Containers:     []*meridianv1.Container{{Name: "main", Env: []*meridianv1.EnvVar{{Name: EnvFencingEpoch, Value: "1"}, {Name: "X", Value: "y"}}}},
	}}}}
	if !IsSingleton(sts) {
		t.Fatal("a StatefulSet is a singleton")
	}
	SetFencingEpoch(sts, 7)
	for _, c := range append(sts.Spec.Template.Spec.InitContainers, sts.Spec.Template.Spec.Containers...) {
		n := 0
		for _, e := range c.Env {
			if e.GetName() == EnvFencingEpoch {
				n++
				if e.GetValue() != "7" {
					t.Errorf("%s: epoch %q, want 7", c.GetName(), e.GetValue())
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d epoch variables, want 1", c.GetName(), n)
		}
	}
	d := &meridianv1.Deployment{Metadata: &meridianv1.ObjectMeta{Name: "web"}}
	if IsSingleton(d) {
		t.Error("a plain Deployment is not a singleton")
	}
	d.Metadata.Annotations = map[string]string{AnnotationSingleton: "true"}
	if !IsSingleton(d) {
		t.Error("an annotated Deployment is a singleton")
	}
	SetFencingEpoch(d, 3) // no template: nothing to do, no panic
}
