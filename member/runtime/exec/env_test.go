package exec

import (
	"strings"
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "alpha", "B": "beta", "EMPTY": ""}
	mapping := func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"$(A)", "alpha"},
		{"x$(A)y$(B)z", "xalphaybetaz"},
		{"$(EMPTY)-", "-"},
		{"$(UNSET)", "$(UNSET)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$alpha"},
		{"$$", "$"},
		{"$A", "$A"},
		{"$", "$"},
		{"a$", "a$"},
		{"$(A", "$(A"},
		{"$()", "$()"},
		{"$(A)$(A)", "alphaalpha"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, mapping); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestContainerEnvPrecedence(t *testing.T) {
	p := &podRequest{
		uid: "u1", name: "web-0", namespace: "prod", ip: "127.1.0.5",
		spec: &meridianv1.PodSpec{Hostname: "custom-host", NodeName: "node-a"},
		env:  []string{"SVC_HOST=10", "SHARED=pod"},
		containerEnv: map[string][]string{"c": {
			"FROM_CM=cm", "SHARED=envFrom", "REF=resolved",
		}},
	}
	c := &meridianv1.Container{Name: "c", Env: []*meridianv1.EnvVar{
		{Name: "USES_LATER", Value: "$(LATER)"},
		{Name: "REF", ValueFrom: &meridianv1.EnvVarSource{ConfigMapKeyRef: &meridianv1.KeySelector{Name: "x", Key: "y"}}},
		{Name: "NODE", ValueFrom: &meridianv1.EnvVarSource{FieldRef: &meridianv1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "MISSING", ValueFrom: &meridianv1.EnvVarSource{SecretKeyRef: &meridianv1.KeySelector{Name: "x", Key: "y"}}},
		{Name: "LATER", Value: "l"},
		{Name: "COMBO", Value: "$(SHARED)/$(REF)/$(SVC_HOST)"},
	}}
	env := containerEnv([]string{"PATH=/bin", "SHARED=base", "HOME=/root"}, p, "/pods/u1", c)
	want := map[string]string{
		"PATH": "/bin", "SVC_HOST": "10", "SHARED": "envFrom", "FROM_CM": "cm", "REF": "resolved",
		"NODE": "node-a", "USES_LATER": "$(LATER)", "LATER": "l", "COMBO": "envFrom/resolved/10",
		"HOSTNAME": "custom-host", "HOME": "/pods/u1", "POD_NAME": "web-0", "POD_NAMESPACE": "prod", "POD_IP": "127.1.0.5",
	}
	for k, v := range want {
		if got, _ := env.lookup(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, ok := env.lookup("MISSING"); ok {
		t.Error("an unresolved valueFrom was set")
	}
	if _, ok := env.lookup("PORT"); ok {
		t.Error("PORT set for a container without ports")
	}
	seen := map[string]bool{}
	for _, kv := range env.environ() {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] {
			t.Errorf("%s defined twice", name)
		}
		seen[name] = true
	}
}
