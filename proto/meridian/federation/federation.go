// Package federation holds the names and rules the hub and its members
// share about Works: which kinds the hub hands to members, how a Work is
// named and labelled, how a member summarises a workload's status for the
// hub (Summarize), and how the hub folds the members' summaries into the
// workload's federation-wide status (Aggregate).
//
// The wire contract is meridian.v1.FederationService; docs/federation.md
// describes the protocol.
package federation

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const (
	// ClusterNamespacePrefix starts the hub namespace that holds the Works
	// of one cluster: "meridian-cluster-<cluster>".
	ClusterNamespacePrefix = "meridian-cluster-"

	// LabelCluster is on every Work: the cluster it is for.
	LabelCluster = "meridian.io/cluster"
	// LabelSourceUID is on every Work: the uid of the hub object it was
	// made from, so that every Work of a workload is one List away.
	LabelSourceUID = "meridian.io/source-uid"
	// LabelSourceKind is on every Work: the kind of the hub object.
	LabelSourceKind = "meridian.io/source-kind"

	// LabelManagedBy marks an object on a member that the hub manages
	// (value ManagedByHub); the member deletes such an object when its Work
	// goes away, and never touches objects without it.
	LabelManagedBy = "meridian.io/managed-by"
	// ManagedByHub is LabelManagedBy's value.
	ManagedByHub = "hub"
	// AnnotationWork is on a hub-managed object on a member: the name of
	// its Work.
	AnnotationWork = "meridian.io/work"
	// AnnotationWorkGeneration is on a hub-managed object on a member: the
	// generation of the Work it was last applied from.
	AnnotationWorkGeneration = "meridian.io/work-generation"
)

// propagated are the kinds the hub hands to members, in apply order.
var propagated = map[string]bool{
	"Namespace": true, "ConfigMap": true, "Secret": true, "Service": true,
	"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Job": true, "CronJob": true,
}

// Propagated reports whether objects of kind k go from the hub to members.
// Cluster, policies, Works, and what members make themselves (Pod,
// ReplicaSet, Node, Event) do not.
func Propagated(k *resource.Kind) bool { return propagated[k.Kind] }

// PropagatedKinds lists the propagated kinds in apply order.
func PropagatedKinds() []*resource.Kind {
	var out []*resource.Kind
	for _, k := range resource.All() {
		if Propagated(k) {
			out = append(out, k)
		}
	}
	return out
}

// IsWorkload reports whether objects of kind k run pods (and so have
// replicas to place and a status to aggregate).
func IsWorkload(k *resource.Kind) bool {
	switch k.Kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob":
		return true
	}
	return false
}

// ClusterNamespace is the hub namespace of a cluster's Works.
func ClusterNamespace(cluster string) string { return ClusterNamespacePrefix + cluster }

// ClusterOfNamespace returns the cluster whose Works a namespace holds.
func ClusterOfNamespace(ns string) (string, bool) {
	c, ok := strings.CutPrefix(ns, ClusterNamespacePrefix)
	return c, ok && c != ""
}

// WorkName names the Work of an object: "<kind>.<namespace>.<name>", or
// "<kind>.<name>" for a cluster-scoped one. Namespaces cannot contain dots,
// so names never collide.
func WorkName(k *resource.Kind, namespace, name string) string {
	kind := strings.ToLower(k.Kind)
	if !k.Namespaced {
		return kind + "." + name
	}
	return kind + "." + namespace + "." + name
}

// ParseWorkName is WorkName's inverse.
func ParseWorkName(work string) (k *resource.Kind, namespace, name string, err error) {
	kind, rest, ok := strings.Cut(work, ".")
	if !ok {
		return nil, "", "", fmt.Errorf("work name %q: want <kind>.<namespace>.<name>", work)
	}
	k, ok = resource.Lookup(kind)
	if !ok || !Propagated(k) {
		return nil, "", "", fmt.Errorf("work name %q: %q is not a propagated kind", work, kind)
	}
	if !k.Namespaced {
		return k, "", rest, nil
	}
	namespace, name, ok = strings.Cut(rest, ".")
	if !ok || namespace == "" || name == "" {
		return nil, "", "", fmt.Errorf("work name %q: want <kind>.<namespace>.<name>", work)
	}
	return k, namespace, name, nil
}

// MemberObject returns the object a member stores for a Work: a copy of the
// Work's workload with the hub-managed label and the work annotations set.
// The Work is not modified.
func MemberObject(w *meridianv1.Work) (resource.Object, *resource.Kind, error) {
	obj, k, err := resource.Unwrap(proto.Clone(w.GetSpec().GetWorkload()).(*meridianv1.Object))
	if err != nil {
		return nil, nil, fmt.Errorf("work %s: %w", w.GetMetadata().GetName(), err)
	}
	md := resource.Meta(obj)
	if md.Labels == nil {
		md.Labels = map[string]string{}
	}
	md.Labels[LabelManagedBy] = ManagedByHub
	if md.Annotations == nil {
		md.Annotations = map[string]string{}
	}
	md.Annotations[AnnotationWork] = w.GetMetadata().GetName()
	md.Annotations[AnnotationWorkGeneration] = fmt.Sprint(w.GetMetadata().GetGeneration())
	md.Uid, md.ResourceVersion, md.Generation = "", "", 0
	md.CreationTimestamp, md.DeletionTimestamp = nil, nil
	resource.ClearStatus(obj)
	return obj, k, nil
}

// IsManagedByHub reports whether a member object is managed by the hub.
func IsManagedByHub(obj resource.Object) bool {
	return obj.GetMetadata().GetLabels()[LabelManagedBy] == ManagedByHub
}

// EnvFencingEpoch is the environment variable a singleton's containers get
// their fencing epoch in: storage they write to can refuse a writer whose
// epoch is older than one it has seen.
const EnvFencingEpoch = "MERIDIAN_FENCING_EPOCH"

// AnnotationSingleton marks a workload that must never run twice at once
// (StatefulSets always are): failover fences it.
const AnnotationSingleton = "meridian.io/singleton"

// IsSingleton reports whether obj is fenced: a StatefulSet, or a workload
// annotated meridian.io/singleton: "true".
func IsSingleton(obj resource.Object) bool {
	if _, ok := obj.(*meridianv1.StatefulSet); ok {
		return true
	}
	return obj.GetMetadata().GetAnnotations()[AnnotationSingleton] == "true"
}

// SetFencingEpoch sets EnvFencingEpoch in every container (and init
// container) of obj's pod template.
func SetFencingEpoch(obj resource.Object, epoch int64) {
	var spec *meridianv1.PodSpec
	switch o := obj.(type) {
	case *meridianv1.Deployment:
		spec = o.GetSpec().GetTemplate().GetSpec()
	case *meridianv1.StatefulSet:
		spec = o.GetSpec().GetTemplate().GetSpec()
	case *meridianv1.DaemonSet:
		spec = o.GetSpec().GetTemplate().GetSpec()
	case *meridianv1.Job:
		spec = o.GetSpec().GetTemplate().GetSpec()
	case *meridianv1.CronJob:
		spec = o.GetSpec().GetJobTemplate().GetSpec().GetTemplate().GetSpec()
	}
	if spec == nil {
		return
	}
	v := strconv.FormatInt(epoch, 10)
	for _, cs := range [][]*meridianv1.Container{spec.GetContainers(), spec.GetInitContainers()} {
		for _, c := range cs {
			set := false
			for _, e := range c.Env {
				if e.GetName() == EnvFencingEpoch {
					e.Value, e.ValueFrom, set = v, nil, true
				}
			}
			if !set {
				c.Env = append(c.Env, &meridianv1.EnvVar{Name: EnvFencingEpoch, Value: v})
			}
		}
	}
}
