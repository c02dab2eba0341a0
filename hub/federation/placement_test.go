package federation_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meridian-fed/meridian/member"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// replicasOn is the replicas of a member's copy of a Deployment (-1 if it
// has none) and its first container's image.
func replicasOn(m *member.Member, name string) (int32, string) {
	o, err := memberGet(m, "deploy", "demo", name)
	if err != nil {
		return -1, ""
	}
	d := o.(*meridianv1.Deployment)
	return d.GetSpec().GetReplicas(), d.GetSpec().GetTemplate().GetSpec().GetContainers()[0].GetImage()
}

// TestPlacementDividesAndOverrides: a policy divides a Deployment's
// replicas over the members by weight, an OverridePolicy changes one
// datacenter's copy, a scale up moves only the new replicas, and the
// binding records all of it.
func TestPlacementDividesAndOverrides(t *testing.T) {
	f := startHub(t, nil)
	members := map[string]*member.Member{
		"dc-a1": f.join(f.memberConfig("dc-a1", "region-a", "dc-a1", 0)),
		"dc-a2": f.join(f.memberConfig("dc-a2", "region-a", "dc-a2", 1)),
		"dc-b1": f.join(f.memberConfig("dc-b1", "region-b", "dc-b1", 2)),
	}
	eventually(t, "three Ready clusters", func() (bool, string) {
		var hs []string
		for n := range members {
			hs = append(hs, health(f.cluster(n)))
		}
		return strings.Count(strings.Join(hs, ","), "Ready") == 3, strings.Join(hs, ",")
	})
	// Karmada's apiVersion, static weights 2:1 between the regions' clusters.
	f.apply(nsYAML + `---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: weighted, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement:
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
        - targetCluster: {fieldSelector: {matchExpressions: [{key: region, operator: In, values: [region-a]}]}}
          weight: 2
        - targetCluster: {fieldSelector: {matchExpressions: [{key: region, operator: In, values: [region-b]}]}}
          weight: 1
---
apiVersion: meridian.io/v1
kind: OverridePolicy
metadata: {name: standby-registry, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  overrideRules:
  - targetCluster: {fieldSelector: {matchExpressions: [{key: datacenter, operator: In, values: [dc-b1]}]}}
    overriders:
      imageOverrider: [{component: Registry, operator: replace, value: registry.b.example}]
---
` + deployYAML("web", 10, "registry.a.example/app:1"))
	want := func(counts map[string]int32) {
		t.Helper()
		eventually(t, fmt.Sprintf("web divided %v", counts), func() (bool, string) {
			got := map[string]int32{}
			for n, m := range members {
				got[n], _ = replicasOn(m, "web")
			}
			return fmt.Sprint(got) == fmt.Sprint(counts), fmt.Sprint(got)
		})
	}
	// 10 replicas, weights 2, 2, 1: 4, 4, 2.
	want(map[string]int32{"dc-a1": 4, "dc-a2": 4, "dc-b1": 2})
	if _, img := replicasOn(members["dc-b1"], "web"); img != "registry.b.example/app:1" {
		t.Errorf("dc-b1 runs image %q, want the overridden registry", img)
	}
	if _, img := replicasOn(members["dc-a1"], "web"); img != "registry.a.example/app:1" {
		t.Errorf("dc-a1 runs image %q, want it unchanged", img)
	}
	b := f.get("resourcebindings", "demo", "deployment.web").(*meridianv1.ResourceBinding)
	if b.GetSpec().GetPolicy().GetName() != "weighted" || b.GetSpec().GetReplicas() != 10 || len(b.GetSpec().GetClusters()) != 3 {
		t.Errorf("binding %v", b.GetSpec())
	}

	// Scale up by 5: the new replicas go where the shares are short.
	f.apply(deployYAML("web", 15, "registry.a.example/app:1"))
	want(map[string]int32{"dc-a1": 6, "dc-a2": 6, "dc-b1": 3})

	// A workload no policy selects still goes everywhere, whole.
	f.apply(deployYAML("plain", 2, "app:1"))
	eventually(t, "plain duplicated", func() (bool, string) {
		var got []string
		for n, m := range members {
			if r, _ := replicasOn(m, "plain"); r == 2 {
				got = append(got, n)
			}
		}
		return len(got) == 3, strings.Join(got, ",")
	})

	// Config goes everywhere, unless a policy says otherwise.
	// The policy is stored first (as `meridian apply` orders them); the
	// secret must never reach region-a, even before the caches catch up.
	f.apply(`apiVersion: meridian.io/v1
kind: ClusterPropagationPolicy
metadata: {name: secrets-to-b}
spec:
  resourceSelectors: [{apiVersion: v1, kind: Secret, name: only-b}]
  placement:
    clusterAffinity: {fieldSelector: {matchExpressions: [{key: region, operator: In, values: [region-b]}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: everywhere, namespace: demo}
---
apiVersion: v1
kind: Secret
metadata: {name: only-b, namespace: demo}
stringData: {k: v}
`)
	eventually(t, "the config map on every member and the secret on dc-b1", func() (bool, string) {
		var got []string
		for n, m := range members {
			if _, err := memberGet(m, "configmap", "demo", "everywhere"); err == nil {
				got = append(got, "cm@"+n)
			}
		}
		_, err := memberGet(members["dc-b1"], "secret", "demo", "only-b")
		return len(got) == 3 && err == nil, fmt.Sprint(got, err)
	})
	for _, n := range []string{"dc-a1", "dc-a2"} {
		if _, err := memberGet(members[n], "secret", "demo", "only-b"); err == nil {
			t.Errorf("%s got the secret its policy keeps in region-b", n)
		}
	}

	// A policy nothing fits says why, and leaves what runs alone.
	f.apply(`apiVersion: meridian.io/v1
kind: PropagationPolicy
metadata: {name: nowhere, namespace: demo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: plain}]
  placement:
    clusterAffinity: {clusterNames: [dc-zz]}
`)
	eventually(t, "plain unschedulable", func() (bool, string) {
		b := f.get("resourcebindings", "demo", "deployment.plain").(*meridianv1.ResourceBinding)
		for _, c := range b.GetStatus().GetConditions() {
			if c.GetType() == "Scheduled" && c.GetStatus() == "False" && strings.Contains(c.GetMessage(), `cluster "dc-a1" is not in clusterNames [dc-zz]`) {
				return len(b.GetSpec().GetClusters()) == 3, fmt.Sprint(b.GetSpec().GetClusters())
			}
		}
		return false, fmt.Sprint(b.GetStatus())
	})
	if r, _ := replicasOn(members["dc-b1"], "plain"); r != 2 {
		t.Errorf("a failed placement removed plain from dc-b1 (replicas %d)", r)
	}
}
