package override

import (
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func policy(ns, name string, sels ...*meridianv1.ResourceSelector) *meridianv1.OverridePolicy {
	return &meridianv1.OverridePolicy{
		ApiVersion: "meridian.io/v1", Kind: "OverridePolicy",
		Metadata: &meridianv1.ObjectMeta{Namespace: ns, Name: name},
		Spec:     &meridianv1.OverrideSpec{ResourceSelectors: sels},
	}
}

func deploySel(name string, ls *meridianv1.LabelSelector) *meridianv1.ResourceSelector {
	return &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment", Name: name, LabelSelector: ls}
}

func names(ps []*meridianv1.OverridePolicy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.GetMetadata().GetName())
	}
	return out
}

func TestSelect(t *testing.T) {
	web := &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web", "tier": "front"}},
	}
	frontend := &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}
	backend := &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "back"}}
	tests := []struct {
		name     string
		policies []*meridianv1.OverridePolicy
		obj      *meridianv1.Deployment
		want     []string
	}{
		{name: "no policies", want: nil},
		{name: "empty selectors select all of the namespace", policies: []*meridianv1.OverridePolicy{policy("shop", "all")}, want: []string{"all"}},
		{name: "other namespace", policies: []*meridianv1.OverridePolicy{policy("other", "all")}, want: nil},
		{name: "by name", policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("web", nil))}, want: []string{"p"}},
		{name: "other name", policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("api", nil))}, want: nil},
		{name: "by labels", policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("", frontend))}, want: []string{"p"}},
		{name: "labels do not match", policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("", backend))}, want: nil},
		{name: "name wins over labels", policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("web", backend))}, want: []string{"p"}},
		{name: "kind only", policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("", nil))}, want: []string{"p"}},
		{
			name:     "other kind",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "StatefulSet"})},
			want:     nil,
		},
		{
			name:     "other apiVersion",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", &meridianv1.ResourceSelector{ApiVersion: "apps/v1beta1", Kind: "Deployment"})},
			want:     nil,
		},
		{
			name:     "selector namespace must be the object's",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment", Namespace: "other"})},
			want:     nil,
		},
		{
			name:     "selector namespace equal",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment", Namespace: "shop"})},
			want:     []string{"p"},
		},
		{
			name:     "any selector suffices",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("api", nil), deploySel("", frontend))},
			want:     []string{"p"},
		},
		{
			name: "invalid label selector selects nothing",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("", &meridianv1.LabelSelector{
				MatchExpressions: []*meridianv1.LabelSelectorRequirement{{Key: "tier", Operator: "Like"}},
			}))},
			want: nil,
		},
		{
			name: "sorted by name, nil ignored",
			policies: []*meridianv1.OverridePolicy{
				policy("shop", "zeta"), nil, policy("shop", "alpha", deploySel("web", nil)), policy("other", "beta"), policy("shop", "mid", deploySel("", frontend)),
			},
			want: []string{"alpha", "mid", "zeta"},
		},
		{
			name:     "object without apiVersion matches an accepted one",
			policies: []*meridianv1.OverridePolicy{policy("shop", "p", deploySel("web", nil))},
			obj:      &meridianv1.Deployment{Metadata: &meridianv1.ObjectMeta{Namespace: "shop", Name: "web"}},
			want:     []string{"p"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := web
			if tt.obj != nil {
				obj = tt.obj
			}
			got := names(Select(tt.policies, obj))
			if len(got) != len(tt.want) {
				t.Fatalf("Select() = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Select() = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestSelectOtherKinds(t *testing.T) {
	cm := &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap", Metadata: &meridianv1.ObjectMeta{Namespace: "shop", Name: "cfg"}}
	ps := []*meridianv1.OverridePolicy{
		policy("shop", "all"),
		policy("shop", "deployments", deploySel("", nil)),
		policy("shop", "configmaps", &meridianv1.ResourceSelector{ApiVersion: "v1", Kind: "ConfigMap", Name: "cfg"}),
	}
	if got := names(Select(ps, cm)); len(got) != 2 || got[0] != "all" || got[1] != "configmaps" {
		t.Fatalf("Select(configmap) = %v, want [all configmaps]", got)
	}
	if got := Select(ps, nil); got != nil {
		t.Fatalf("Select(nil) = %v", got)
	}
}
