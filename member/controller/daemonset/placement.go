package daemonset

import (
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Taint effects.
const (
	EffectNoSchedule       = "NoSchedule"
	EffectPreferNoSchedule = "PreferNoSchedule"
	EffectNoExecute        = "NoExecute"
)

// Taints the node lifecycle puts on nodes that stop answering. Daemon pods
// tolerate them, as in Kubernetes: a node's own agents (log shippers,
// network daemons) must stay on a node that is having trouble.
const (
	TaintNodeNotReady    = "node.kubernetes.io/not-ready"
	TaintNodeUnreachable = "node.kubernetes.io/unreachable"
)

// defaultTolerations are added to every daemon pod.
var defaultTolerations = []*meridianv1.Toleration{
	{Key: TaintNodeNotReady, Operator: "Exists", Effect: EffectNoExecute},
	{Key: TaintNodeUnreachable, Operator: "Exists", Effect: EffectNoExecute},
}

// Placement is what a DaemonSet may do on one node.
type Placement struct {
	// Run: a daemon pod should run there; one is created if missing.
	Run bool
	// Keep: a daemon pod already there may stay. Keep without Run is a node
	// that was cordoned or given a NoSchedule taint after the pod started:
	// as in Kubernetes, that keeps new pods away but evicts nobody.
	Keep bool
	// Reason says why not, when Run is false.
	Reason string
}

// Place decides whether the DaemonSet's template belongs on node:
//
//   - the template's nodeSelector must match the node's labels, or the pod
//     neither runs nor stays;
//   - an untolerated NoExecute taint keeps pods off and evicts them;
//   - an untolerated NoSchedule taint, or spec.unschedulable (a cordon),
//     keeps new pods off but lets running ones stay;
//   - PreferNoSchedule taints are preferences for the scheduler and do not
//     matter here.
func Place(template *meridianv1.PodTemplateSpec, node *meridianv1.Node) Placement {
	sel := labels.SelectorFromSet(template.GetSpec().GetNodeSelector())
	if !sel.Matches(labels.Set(node.GetMetadata().GetLabels())) {
		return Placement{Reason: "node selector does not match"}
	}
	p := Placement{Run: true, Keep: true}
	tols := append(slices.Clone(template.GetSpec().GetTolerations()), defaultTolerations...)
	for _, t := range node.GetSpec().GetTaints() {
		if t.GetEffect() != EffectNoSchedule && t.GetEffect() != EffectNoExecute {
			continue
		}
		if slices.ContainsFunc(tols, func(tol *meridianv1.Toleration) bool { return Tolerates(tol, t) }) {
			continue
		}
		p.Run, p.Reason = false, "untolerated taint "+t.GetKey()+":"+t.GetEffect()
		if t.GetEffect() == EffectNoExecute {
			p.Keep = false
			return p
		}
	}
	if p.Run && node.GetSpec().GetUnschedulable() {
		p.Run, p.Reason = false, "node is unschedulable"
	}
	return p
}

// Tolerates reports whether tol tolerates taint, as Kubernetes'
// ToleratesTaint: an empty effect matches every effect; operator Exists
// matches any value (and, with an empty key, any key); Equal (the default)
// needs the same key and value.
func Tolerates(tol *meridianv1.Toleration, taint *meridianv1.Taint) bool {
	if tol.GetEffect() != "" && tol.GetEffect() != taint.GetEffect() {
		return false
	}
	if tol.GetKey() != "" && tol.GetKey() != taint.GetKey() {
		return false
	}
	switch tol.GetOperator() {
	case "Exists":
		return true
	case "", "Equal":
		return tol.GetKey() != "" && tol.GetValue() == taint.GetValue()
	}
	return false
}

// withDefaultTolerations returns tols plus the daemon pod defaults it lacks.
func withDefaultTolerations(tols []*meridianv1.Toleration) []*meridianv1.Toleration {
	out := slices.Clone(tols)
	for _, d := range defaultTolerations {
		if !slices.ContainsFunc(out, func(t *meridianv1.Toleration) bool {
			return t.GetKey() == d.GetKey() && t.GetEffect() == d.GetEffect()
		}) {
			out = append(out, &meridianv1.Toleration{Key: d.GetKey(), Operator: d.GetOperator(), Effect: d.GetEffect()})
		}
	}
	return out
}
