package override

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The federation of the tests: two regions, three datacenters.
var (
	a1 = &framework.Cluster{Name: "a1", Region: "region-a", Datacenter: "dc-a1", Labels: map[string]string{"env": "prod"}}
	a2 = &framework.Cluster{Name: "a2", Region: "region-a", Datacenter: "dc-a2", Labels: map[string]string{"env": "standby"}}
	b1 = &framework.Cluster{Name: "b1", Region: "region-b", Datacenter: "dc-b1", Labels: map[string]string{"env": "standby"}}
)

func podSpecFixture() *meridianv1.PodSpec {
	return &meridianv1.PodSpec{
		Containers: []*meridianv1.Container{
			{
				Name: "main", Image: "reg.a/app:1.1", Command: []string{"/app"}, Args: []string{"--port=80", "--v=1"},
				Env: []*meridianv1.EnvVar{{Name: "DB", Value: "db.a"}, {Name: "MODE", Value: "prod"}},
			},
			{Name: "sidecar", Image: "envoy:1.30"},
		},
		InitContainers: []*meridianv1.Container{{Name: "init", Image: "reg.a/init:1"}},
	}
}

func webDeployment() *meridianv1.Deployment {
	return &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{
			Namespace: "shop", Name: "web",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "hello"},
		},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: proto.Int32(3),
			Selector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: &meridianv1.PodTemplateSpec{
				Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:     podSpecFixture(),
			},
		},
	}
}

func rule(target *meridianv1.ClusterAffinity, o *meridianv1.Overriders) *meridianv1.RuleWithCluster {
	return &meridianv1.RuleWithCluster{TargetCluster: target, Overriders: o}
}

func withRules(name string, rules ...*meridianv1.RuleWithCluster) *meridianv1.OverridePolicy {
	p := policy("shop", name)
	p.Spec.OverrideRules = rules
	return p
}

// container returns the named container or init container of d.
func container(d *meridianv1.Deployment, name string) *meridianv1.Container {
	for _, c := range allContainers(d.Spec.Template.Spec) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestApplyOverriders(t *testing.T) {
	tests := []struct {
		name    string
		o       *meridianv1.Overriders
		want    func(d *meridianv1.Deployment) // what the result is, as a change of webDeployment()
		changes []string
	}{
		{
			name:    "image of one container, whole",
			o:       &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{{Operator: "replace", Value: "registry.b/app:1.2", ContainerName: "main"}}},
			want:    func(d *meridianv1.Deployment) { container(d, "main").Image = "registry.b/app:1.2" },
			changes: []string{"op/p: image of container main → registry.b/app:1.2"},
		},
		{
			name: "registry of all containers, init containers included",
			o:    &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{{Component: "Registry", Operator: "replace", Value: "mirror.b"}}},
			want: func(d *meridianv1.Deployment) {
				container(d, "main").Image = "mirror.b/app:1.1"
				container(d, "sidecar").Image = "mirror.b/envoy:1.30"
				container(d, "init").Image = "mirror.b/init:1"
			},
			changes: []string{
				"op/p: image of container main → mirror.b/app:1.1",
				"op/p: image of container sidecar → mirror.b/envoy:1.30",
				"op/p: image of container init → mirror.b/init:1",
			},
		},
		{
			name: "registry remove changes only images with one",
			o:    &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{{Component: "Registry", Operator: "remove"}}},
			want: func(d *meridianv1.Deployment) {
				container(d, "main").Image = "app:1.1"
				container(d, "init").Image = "init:1"
			},
			changes: []string{"op/p: image of container main → app:1.1", "op/p: image of container init → init:1"},
		},
		{
			name:    "tag of an init container",
			o:       &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{{Component: "Tag", Operator: "add", Value: "-debug", ContainerName: "init"}}},
			want:    func(d *meridianv1.Deployment) { container(d, "init").Image = "reg.a/init:1-debug" },
			changes: []string{"op/p: image of container init → reg.a/init:1-debug"},
		},
		{
			name: "repository replace then tag replace, in order",
			o: &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{
				{Component: "Repository", Operator: "replace", Value: "team/app", ContainerName: "main"},
				{Component: "Tag", Operator: "replace", Value: "2.0", ContainerName: "main"},
			}},
			want: func(d *meridianv1.Deployment) { container(d, "main").Image = "reg.a/team/app:2.0" },
			changes: []string{
				"op/p: image of container main → reg.a/team/app:1.1",
				"op/p: image of container main → reg.a/team/app:2.0",
			},
		},
		{
			name:    "command add",
			o:       &meridianv1.Overriders{CommandOverrider: []*meridianv1.CommandArgsOverrider{{ContainerName: "main", Operator: "add", Value: []string{"--debug"}}}},
			want:    func(d *meridianv1.Deployment) { container(d, "main").Command = []string{"/app", "--debug"} },
			changes: []string{`op/p: command of container main → ["/app" "--debug"]`},
		},
		{
			name:    "command remove",
			o:       &meridianv1.Overriders{CommandOverrider: []*meridianv1.CommandArgsOverrider{{ContainerName: "main", Operator: "remove", Value: []string{"/app"}}}},
			want:    func(d *meridianv1.Deployment) { container(d, "main").Command = []string{} },
			changes: []string{`op/p: command of container main → []`},
		},
		{
			name:    "args add on a container without args",
			o:       &meridianv1.Overriders{ArgsOverrider: []*meridianv1.CommandArgsOverrider{{ContainerName: "sidecar", Operator: "add", Value: []string{"-l", "info"}}}},
			want:    func(d *meridianv1.Deployment) { container(d, "sidecar").Args = []string{"-l", "info"} },
			changes: []string{`op/p: args of container sidecar → ["-l" "info"]`},
		},
		{
			name:    "args remove every match",
			o:       &meridianv1.Overriders{ArgsOverrider: []*meridianv1.CommandArgsOverrider{{ContainerName: "main", Operator: "remove", Value: []string{"--v=1", "--absent"}}}},
			want:    func(d *meridianv1.Deployment) { container(d, "main").Args = []string{"--port=80"} },
			changes: []string{`op/p: args of container main → ["--port=80"]`},
		},
		{
			name: "args remove of absent values changes nothing",
			o:    &meridianv1.Overriders{ArgsOverrider: []*meridianv1.CommandArgsOverrider{{ContainerName: "main", Operator: "remove", Value: []string{"--absent"}}}},
			want: func(d *meridianv1.Deployment) {},
		},
		{
			name: "env add appends a new name, replaces an existing one",
			o: &meridianv1.Overriders{EnvOverrider: []*meridianv1.EnvOverrider{{ContainerName: "main", Operator: "add", Value: []*meridianv1.EnvVar{
				{Name: "REGION", Value: "b"}, {Name: "DB", Value: "db.b"},
			}}}},
			want: func(d *meridianv1.Deployment) {
				c := container(d, "main")
				c.Env[0].Value = "db.b"
				c.Env = append(c.Env, &meridianv1.EnvVar{Name: "REGION", Value: "b"})
			},
			changes: []string{"op/p: env REGION of container main set", "op/p: env DB of container main set"},
		},
		{
			name: "env replace only existing names, valueFrom included",
			o: &meridianv1.Overriders{EnvOverrider: []*meridianv1.EnvOverrider{{ContainerName: "main", Operator: "replace", Value: []*meridianv1.EnvVar{
				{Name: "DB", ValueFrom: &meridianv1.EnvVarSource{ConfigMapKeyRef: &meridianv1.KeySelector{Name: "db", Key: "host"}}},
				{Name: "ABSENT", Value: "x"},
			}}}},
			want: func(d *meridianv1.Deployment) {
				container(d, "main").Env[0] = &meridianv1.EnvVar{Name: "DB", ValueFrom: &meridianv1.EnvVarSource{ConfigMapKeyRef: &meridianv1.KeySelector{Name: "db", Key: "host"}}}
			},
			changes: []string{"op/p: env DB of container main replaced"},
		},
		{
			name: "env remove by name",
			o: &meridianv1.Overriders{EnvOverrider: []*meridianv1.EnvOverrider{{ContainerName: "main", Operator: "remove", Value: []*meridianv1.EnvVar{
				{Name: "MODE"}, {Name: "ABSENT"},
			}}}},
			want:    func(d *meridianv1.Deployment) { container(d, "main").Env = container(d, "main").Env[:1] },
			changes: []string{"op/p: env MODE of container main removed"},
		},
		{
			name:    "labels add, on the object only",
			o:       &meridianv1.Overriders{LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"zone": "b", "app": "web"}}}},
			want:    func(d *meridianv1.Deployment) { d.Metadata.Labels["zone"] = "b" },
			changes: []string{"op/p: label zone → b"},
		},
		{
			name:    "labels replace only existing keys",
			o:       &meridianv1.Overriders{LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "replace", Value: map[string]string{"app": "web-b", "zone": "b"}}}},
			want:    func(d *meridianv1.Deployment) { d.Metadata.Labels["app"] = "web-b" },
			changes: []string{"op/p: label app → web-b"},
		},
		{
			name:    "labels remove by key",
			o:       &meridianv1.Overriders{LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "remove", Value: map[string]string{"app": "", "zone": ""}}}},
			want:    func(d *meridianv1.Deployment) { delete(d.Metadata.Labels, "app") },
			changes: []string{"op/p: label app removed"},
		},
		{
			name: "annotations add, replace, remove",
			o: &meridianv1.Overriders{AnnotationsOverrider: []*meridianv1.LabelAnnotationOverrider{
				{Operator: "add", Value: map[string]string{"owner": "team-b", "long": strings.Repeat("x", 70)}},
				{Operator: "replace", Value: map[string]string{"note": "bye"}},
				{Operator: "remove", Value: map[string]string{"owner": ""}},
			}},
			want: func(d *meridianv1.Deployment) {
				d.Metadata.Annotations["note"] = "bye"
				d.Metadata.Annotations["long"] = strings.Repeat("x", 70)
			},
			changes: []string{
				"op/p: annotation long → " + strings.Repeat("x", 64) + "…",
				"op/p: annotation owner → team-b",
				"op/p: annotation note → bye",
				"op/p: annotation owner removed",
			},
		},
		{
			name:    "replicas",
			o:       &meridianv1.Overriders{Replicas: proto.Int32(5)},
			want:    func(d *meridianv1.Deployment) { d.Spec.Replicas = proto.Int32(5) },
			changes: []string{"op/p: replicas → 5"},
		},
		{
			name: "replicas unchanged",
			o:    &meridianv1.Overriders{Replicas: proto.Int32(3)},
			want: func(d *meridianv1.Deployment) {},
		},
		{
			name: "every overrider of one rule",
			o: &meridianv1.Overriders{
				ImageOverrider:   []*meridianv1.ImageOverrider{{Component: "Tag", Operator: "replace", Value: "1.2", ContainerName: "main"}},
				CommandOverrider: []*meridianv1.CommandArgsOverrider{{ContainerName: "main", Operator: "add", Value: []string{"-x"}}},
				ArgsOverrider:    []*meridianv1.CommandArgsOverrider{{ContainerName: "main", Operator: "add", Value: []string{"-y"}}},
				LabelsOverrider:  []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"l": "1"}}},
				AnnotationsOverrider: []*meridianv1.LabelAnnotationOverrider{
					{Operator: "add", Value: map[string]string{"a": "1"}},
				},
				EnvOverrider: []*meridianv1.EnvOverrider{{ContainerName: "main", Operator: "add", Value: []*meridianv1.EnvVar{{Name: "E", Value: "1"}}}},
				Replicas:     proto.Int32(1),
			},
			want: func(d *meridianv1.Deployment) {
				c := container(d, "main")
				c.Image = "reg.a/app:1.2"
				c.Command = append(c.Command, "-x")
				c.Args = append(c.Args, "-y")
				c.Env = append(c.Env, &meridianv1.EnvVar{Name: "E", Value: "1"})
				d.Metadata.Labels["l"] = "1"
				d.Metadata.Annotations["a"] = "1"
				d.Spec.Replicas = proto.Int32(1)
			},
			changes: []string{
				"op/p: image of container main → reg.a/app:1.2",
				`op/p: command of container main → ["/app" "-x"]`,
				`op/p: args of container main → ["--port=80" "--v=1" "-y"]`,
				"op/p: label l → 1",
				"op/p: annotation a → 1",
				"op/p: env E of container main set",
				"op/p: replicas → 1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := webDeployment()
			got, changes, err := Apply(obj, []*meridianv1.OverridePolicy{withRules("p", rule(nil, tt.o))}, a1)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := webDeployment()
			tt.want(want)
			if !proto.Equal(got, want) {
				t.Errorf("Apply() =\n%v\nwant\n%v", got, want)
			}
			if !slices.Equal(changes, tt.changes) {
				t.Errorf("changes =\n%q\nwant\n%q", changes, tt.changes)
			}
			if !proto.Equal(obj, webDeployment()) {
				t.Errorf("Apply changed its input: %v", obj)
			}
			if !proto.Equal(got.(*meridianv1.Deployment).Spec.Template.Metadata, webDeployment().Spec.Template.Metadata) {
				t.Errorf("the pod template's metadata changed: %v", got.(*meridianv1.Deployment).Spec.Template.Metadata)
			}
		})
	}
}

// TestApplyTargets checks per-cluster, per-datacenter, per-region and
// by-label targeting, and rules without a target.
func TestApplyTargets(t *testing.T) {
	registry := func(r string) *meridianv1.Overriders {
		return &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{{Component: "Registry", Operator: "replace", Value: r, ContainerName: "main"}}}
	}
	field := func(key, op string, values ...string) *meridianv1.ClusterAffinity {
		return &meridianv1.ClusterAffinity{FieldSelector: &meridianv1.FieldSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}}
	}
	tests := []struct {
		name   string
		target *meridianv1.ClusterAffinity
		want   map[string]bool // cluster → rule applies
	}{
		{name: "no target: every cluster", target: nil, want: map[string]bool{"a1": true, "a2": true, "b1": true}},
		{name: "by cluster name", target: &meridianv1.ClusterAffinity{ClusterNames: []string{"a2"}}, want: map[string]bool{"a2": true}},
		{name: "by datacenter", target: field("datacenter", "In", "dc-a1", "dc-b1"), want: map[string]bool{"a1": true, "b1": true}},
		{name: "by region NotIn", target: field("region", "NotIn", "region-a"), want: map[string]bool{"b1": true}},
		{name: "by labels, minus excluded", target: &meridianv1.ClusterAffinity{
			LabelSelector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"env": "standby"}}, Exclude: []string{"b1"},
		}, want: map[string]bool{"a2": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := []*meridianv1.OverridePolicy{withRules("p", rule(tt.target, registry("reg.b")))}
			for _, c := range []*framework.Cluster{a1, a2, b1} {
				got, changes, err := Apply(webDeployment(), ps, c)
				if err != nil {
					t.Fatalf("Apply(%s): %v", c.Name, err)
				}
				image := container(got.(*meridianv1.Deployment), "main").Image
				if applied := image == "reg.b/app:1.1"; applied != tt.want[c.Name] {
					t.Errorf("cluster %s: image %q, applied = %v, want %v", c.Name, image, applied, tt.want[c.Name])
				}
				if len(changes) > 0 != tt.want[c.Name] {
					t.Errorf("cluster %s: changes %q", c.Name, changes)
				}
			}
		})
	}
}

// TestApplyOrder checks that policies apply in Select's order (by name)
// and rules in their order: the last change wins.
func TestApplyOrder(t *testing.T) {
	label := func(v string) *meridianv1.Overriders {
		return &meridianv1.Overriders{LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"tier": v}}}}
	}
	tag := func(v string) *meridianv1.Overriders {
		return &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{{Component: "Tag", Operator: "replace", Value: v, ContainerName: "main"}}}
	}
	policies := []*meridianv1.OverridePolicy{
		withRules("zz-last", rule(nil, label("zz"))),
		withRules("aa-first", rule(nil, label("aa")), rule(nil, tag("2.0"))),
		withRules("mm-middle", rule(nil, label("mm")), rule(&meridianv1.ClusterAffinity{ClusterNames: []string{"b1"}}, tag("3.0"))),
	}
	obj := webDeployment()
	selected := Select(policies, obj)
	if got := names(selected); !slices.Equal(got, []string{"aa-first", "mm-middle", "zz-last"}) {
		t.Fatalf("Select() = %v", got)
	}
	for _, tt := range []struct {
		cluster *framework.Cluster
		tag     string
		changes []string
	}{
		{a1, "2.0", []string{"op/aa-first: label tier → aa", "op/aa-first: image of container main → reg.a/app:2.0", "op/mm-middle: label tier → mm", "op/zz-last: label tier → zz"}},
		{b1, "3.0", []string{"op/aa-first: label tier → aa", "op/aa-first: image of container main → reg.a/app:2.0", "op/mm-middle: label tier → mm", "op/mm-middle: image of container main → reg.a/app:3.0", "op/zz-last: label tier → zz"}},
	} {
		got, changes, err := Apply(obj, selected, tt.cluster)
		if err != nil {
			t.Fatalf("Apply(%s): %v", tt.cluster.Name, err)
		}
		d := got.(*meridianv1.Deployment)
		if d.Metadata.Labels["tier"] != "zz" || container(d, "main").Image != "reg.a/app:"+tt.tag {
			t.Errorf("Apply(%s): labels %v, image %q", tt.cluster.Name, d.Metadata.Labels, container(d, "main").Image)
		}
		if !slices.Equal(changes, tt.changes) {
			t.Errorf("Apply(%s): changes =\n%q\nwant\n%q", tt.cluster.Name, changes, tt.changes)
		}
	}
	if !proto.Equal(obj, webDeployment()) {
		t.Error("Apply changed its input")
	}
}

func TestApplyErrors(t *testing.T) {
	envOn := func(name string) *meridianv1.Overriders {
		return &meridianv1.Overriders{EnvOverrider: []*meridianv1.EnvOverrider{
			{ContainerName: "main", Operator: "add", Value: []*meridianv1.EnvVar{{Name: "OK", Value: "1"}}},
			{ContainerName: name, Operator: "add", Value: []*meridianv1.EnvVar{{Name: "X", Value: "1"}}},
		}}
	}
	ok := &meridianv1.Overriders{LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"x": "y"}}}}
	tests := []struct {
		name   string
		rules  []*meridianv1.RuleWithCluster
		is     error
		rule   int
		substr string
	}{
		{
			name:  "env on a missing container",
			rules: []*meridianv1.RuleWithCluster{rule(nil, ok), rule(nil, envOn("app"))}, is: ErrContainerNotFound, rule: 1,
			substr: `overridepolicy shop/p: overrideRules[1]: envOverrider[1]: container "app": no such container in the pod template (it has: main, sidecar, init)`,
		},
		{
			name: "image on a missing container",
			rules: []*meridianv1.RuleWithCluster{rule(nil, &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{
				{Operator: "replace", Value: "x:1", ContainerName: "web"},
			}})},
			is: ErrContainerNotFound, substr: `imageOverrider[0]: container "web"`,
		},
		{
			name: "command on a missing container",
			rules: []*meridianv1.RuleWithCluster{rule(nil, &meridianv1.Overriders{CommandOverrider: []*meridianv1.CommandArgsOverrider{
				{Operator: "add", Value: []string{"x"}, ContainerName: "web"},
			}})},
			is: ErrContainerNotFound, substr: `commandOverrider[0]: container "web"`,
		},
		{
			name: "args on a missing container",
			rules: []*meridianv1.RuleWithCluster{rule(nil, &meridianv1.Overriders{ArgsOverrider: []*meridianv1.CommandArgsOverrider{
				{Operator: "remove", Value: []string{"x"}, ContainerName: "web"},
			}})},
			is: ErrContainerNotFound, substr: `argsOverrider[0]: container "web"`,
		},
		{
			name: "an image the override breaks",
			rules: []*meridianv1.RuleWithCluster{rule(nil, &meridianv1.Overriders{ImageOverrider: []*meridianv1.ImageOverrider{
				{Component: "Repository", Operator: "remove", ContainerName: "main"},
			}})},
			is: ErrInvalidImage, substr: `imageOverrider[0]: container "main": invalid image: Repository remove on "reg.a/app:1.1" makes "reg.a/:1.1"`,
		},
		{
			name: "a missing container on a cluster the rule does not target is no error",
			rules: []*meridianv1.RuleWithCluster{
				rule(&meridianv1.ClusterAffinity{ClusterNames: []string{"b1"}}, envOn("app")),
			},
		},
		{
			name: "a target that cannot be evaluated",
			rules: []*meridianv1.RuleWithCluster{rule(&meridianv1.ClusterAffinity{FieldSelector: &meridianv1.FieldSelector{
				MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "zone", Operator: "In", Values: []string{"z"}}},
			}}, ok)},
			substr: "overrideRules[0]: failed to match targetCluster",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := webDeployment()
			got, changes, err := Apply(obj, []*meridianv1.OverridePolicy{withRules("p", tt.rules...)}, a1)
			if tt.substr == "" {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Apply() = %v, %q; want an error", got, changes)
			}
			if got != nil || changes != nil {
				t.Errorf("Apply() returned %v, %q with its error", got, changes)
			}
			var re *RuleError
			if !errors.As(err, &re) || re.Policy != "p" || re.Namespace != "shop" || re.Rule != tt.rule {
				t.Errorf("error %v is not a RuleError of shop/p rule %d: %#v", err, tt.rule, re)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q does not contain %q", err, tt.substr)
			}
			if !proto.Equal(obj, webDeployment()) {
				t.Error("Apply changed its input")
			}
		})
	}
}

func TestApplyNilInputs(t *testing.T) {
	if _, _, err := Apply(nil, nil, a1); err == nil {
		t.Error("Apply(nil object) succeeded")
	}
	if _, _, err := Apply(webDeployment(), nil, nil); err == nil {
		t.Error("Apply(nil cluster) succeeded")
	}
	got, changes, err := Apply(webDeployment(), []*meridianv1.OverridePolicy{nil, withRules("empty")}, a1)
	if err != nil || changes != nil || !proto.Equal(got, webDeployment()) {
		t.Errorf("Apply(no rules) = %v, %q, %v", got, changes, err)
	}
}

// TestApplyKinds checks that the pod template is found in every workload
// kind, that replicas only change Deployments and StatefulSets, and that
// container overriders leave kinds without containers alone.
func TestApplyKinds(t *testing.T) {
	tmpl := func() *meridianv1.PodTemplateSpec { return &meridianv1.PodTemplateSpec{Spec: podSpecFixture()} }
	meta := func() *meridianv1.ObjectMeta { return &meridianv1.ObjectMeta{Namespace: "shop", Name: "x"} }
	objects := []resource.Object{
		&meridianv1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet", Metadata: meta(), Spec: &meridianv1.StatefulSetSpec{Replicas: proto.Int32(1), Template: tmpl()}},
		&meridianv1.DaemonSet{ApiVersion: "apps/v1", Kind: "DaemonSet", Metadata: meta(), Spec: &meridianv1.DaemonSetSpec{Template: tmpl()}},
		&meridianv1.Job{ApiVersion: "batch/v1", Kind: "Job", Metadata: meta(), Spec: &meridianv1.JobSpec{Template: tmpl()}},
		&meridianv1.CronJob{ApiVersion: "batch/v1", Kind: "CronJob", Metadata: meta(), Spec: &meridianv1.CronJobSpec{
			Schedule: "* * * * *", JobTemplate: &meridianv1.JobTemplateSpec{Spec: &meridianv1.JobSpec{Template: tmpl()}},
		}},
		&meridianv1.Pod{ApiVersion: "v1", Kind: "Pod", Metadata: meta(), Spec: podSpecFixture()},
		&meridianv1.ReplicaSet{ApiVersion: "apps/v1", Kind: "ReplicaSet", Metadata: meta(), Spec: &meridianv1.ReplicaSetSpec{Template: tmpl()}},
	}
	o := &meridianv1.Overriders{
		ImageOverrider: []*meridianv1.ImageOverrider{{Component: "Registry", Operator: "replace", Value: "reg.b", ContainerName: "main"}},
		EnvOverrider:   []*meridianv1.EnvOverrider{{ContainerName: "sidecar", Operator: "add", Value: []*meridianv1.EnvVar{{Name: "E", Value: "1"}}}},
		Replicas:       proto.Int32(4),
	}
	ps := []*meridianv1.OverridePolicy{withRules("p", rule(nil, o))}
	for _, obj := range objects {
		t.Run(obj.GetKind(), func(t *testing.T) {
			before := proto.Clone(obj)
			got, changes, err := Apply(obj, ps, a1)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			spec, ok := podSpec(got)
			if !ok || spec == nil {
				t.Fatalf("no pod spec in %v", got)
			}
			if img := spec.Containers[0].Image; img != "reg.b/app:1.1" {
				t.Errorf("image = %q", img)
			}
			if env := spec.Containers[1].Env; len(env) != 1 || env[0].Name != "E" {
				t.Errorf("sidecar env = %v", env)
			}
			wantChanges := 2
			if obj.GetKind() == "StatefulSet" {
				wantChanges = 3
				if r := got.(*meridianv1.StatefulSet).Spec.GetReplicas(); r != 4 {
					t.Errorf("replicas = %d", r)
				}
			}
			if len(changes) != wantChanges {
				t.Errorf("changes = %q, want %d", changes, wantChanges)
			}
			if !proto.Equal(obj, before) {
				t.Error("Apply changed its input")
			}
		})
	}

	t.Run("ConfigMap", func(t *testing.T) {
		cm := &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap", Metadata: meta(), Data: map[string]string{"k": "v"}}
		o := proto.Clone(o).(*meridianv1.Overriders)
		o.LabelsOverrider = []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"region": "b"}}}
		got, changes, err := Apply(cm, []*meridianv1.OverridePolicy{withRules("p", rule(nil, o))}, a1)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		want := proto.Clone(cm).(*meridianv1.ConfigMap)
		want.Metadata.Labels = map[string]string{"region": "b"}
		if !proto.Equal(got, want) || !slices.Equal(changes, []string{"op/p: label region → b"}) {
			t.Errorf("Apply(configmap) = %v, %q", got, changes)
		}
		if cm.Metadata.Labels != nil {
			t.Error("Apply changed its input")
		}
	})

	t.Run("Deployment without spec gets replicas", func(t *testing.T) {
		d := &meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment", Metadata: meta()}
		got, _, err := Apply(d, []*meridianv1.OverridePolicy{withRules("p", rule(nil, &meridianv1.Overriders{Replicas: proto.Int32(2)}))}, a1)
		if err != nil || got.(*meridianv1.Deployment).GetSpec().GetReplicas() != 2 || d.Spec != nil {
			t.Errorf("Apply() = %v, %v (input %v)", got, err, d)
		}
	})
}

// TestApplyConcurrent runs Apply on one object and one policy list from
// many goroutines (for -race): Apply must only read its inputs.
func TestApplyConcurrent(t *testing.T) {
	obj := webDeployment()
	ps := []*meridianv1.OverridePolicy{withRules("p", rule(nil, &meridianv1.Overriders{
		ImageOverrider:  []*meridianv1.ImageOverrider{{Component: "Registry", Operator: "replace", Value: "reg.b"}},
		LabelsOverrider: []*meridianv1.LabelAnnotationOverrider{{Operator: "add", Value: map[string]string{"x": "y"}}},
		EnvOverrider:    []*meridianv1.EnvOverrider{{ContainerName: "main", Operator: "remove", Value: []*meridianv1.EnvVar{{Name: "DB"}}}},
	}))}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			c := []*framework.Cluster{a1, a2, b1}[i%3]
			_, changes, err := Apply(obj, ps, c)
			if err == nil && len(changes) != 5 {
				err = fmt.Errorf("changes = %q", changes)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if !proto.Equal(obj, webDeployment()) {
		t.Error("Apply changed its input")
	}
}
