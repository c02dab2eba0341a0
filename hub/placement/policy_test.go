package placement

import (
	"testing"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func deploy(ns, name string, labels map[string]string) *meridianv1.Deployment {
	return &meridianv1.Deployment{ApiVersion: "apps/v1", Kind: "Deployment", Metadata: &meridianv1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Uid: "u-" + name}}
}

func pp(kind, ns, name string, prio int32, sels ...*meridianv1.ResourceSelector) *Policy {
	return &Policy{Kind: kind, Namespace: ns, Name: name, UID: name, Spec: &meridianv1.PropagationSpec{Priority: prio, ResourceSelectors: sels}}
}

func TestSelectPolicy(t *testing.T) {
	byKind := &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment"}
	byName := &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	byLabel := &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment", LabelSelector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}}
	otherKind := &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "StatefulSet"}
	web := deploy("shop", "web", map[string]string{"tier": "front"})
	for _, tc := range []struct {
		name     string
		policies []*Policy
		want     string
	}{
		{"none", nil, ""},
		{"other kind", []*Policy{pp("PropagationPolicy", "shop", "sts", 0, otherKind)}, ""},
		{"other namespace", []*Policy{pp("PropagationPolicy", "other", "all", 0, byKind)}, ""},
		{"cluster policy", []*Policy{pp("ClusterPropagationPolicy", "", "global", 0, byKind)}, "global"},
		{"name beats label beats kind", []*Policy{pp("PropagationPolicy", "shop", "a-kind", 0, byKind), pp("PropagationPolicy", "shop", "b-name", 0, byName), pp("PropagationPolicy", "shop", "c-label", 0, byLabel)}, "b-name"},
		{"label beats kind", []*Policy{pp("PropagationPolicy", "shop", "a-kind", 0, byKind), pp("PropagationPolicy", "shop", "c-label", 0, byLabel)}, "c-label"},
		{"priority beats specificity", []*Policy{pp("PropagationPolicy", "shop", "b-name", 0, byName), pp("PropagationPolicy", "shop", "z-kind", 5, byKind)}, "z-kind"},
		{"namespaced beats cluster", []*Policy{pp("ClusterPropagationPolicy", "", "a-global", 0, byName), pp("PropagationPolicy", "shop", "z-local", 0, byName)}, "z-local"},
		{"name order breaks ties", []*Policy{pp("PropagationPolicy", "shop", "zeta", 0, byKind), pp("PropagationPolicy", "shop", "alpha", 0, byKind)}, "alpha"},
		{"label mismatch", []*Policy{pp("PropagationPolicy", "shop", "back", 0, &meridianv1.ResourceSelector{ApiVersion: "apps/v1", Kind: "Deployment", LabelSelector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"tier": "back"}}})}, ""},
		{"apiVersion mismatch", []*Policy{pp("PropagationPolicy", "shop", "v", 0, &meridianv1.ResourceSelector{ApiVersion: "apps/v2", Kind: "Deployment"})}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SelectPolicy(web, tc.policies)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Fatalf("selected %q, want %q", name, tc.want)
			}
		})
	}
}
