package drill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// copyPolicyName is the PropagationPolicy that places a test drill's
// copies.
const copyPolicyName = "drill"

// runTest is a test drill: copies of the workloads in the drill's own
// namespace, placed off the scope by an ordinary PropagationPolicy, timed
// from their creation to their replicas ready as the members report them,
// then deleted with the namespace.
func (e *execution) runTest(ctx context.Context) error {
	ns := Namespace(e.name)
	if err := e.createNamespace(ctx, ns); err != nil {
		return err
	}
	e.step("Namespace", "created %s with a PropagationPolicy that excludes %s", ns, ScopeString(e.spec.GetScope()))
	start := e.now()
	err := each(e.ws, func(w *workload) error {
		e.measureRPO(w)
		cp, err := copyOf(w, e.name, ns)
		if err != nil {
			return err
		}
		w.copyName = cp.GetMetadata().GetName()
		if _, err := e.r.cfg.Store.Create(ctx, cp); err != nil {
			return fmt.Errorf("failed to create the copy of %s: %w", w.id(), err)
		}
		w.result.DisruptedAt = ts(e.now())
		return nil
	})
	if err != nil {
		return err
	}
	e.step("Disruption", "%d copies created in %s", len(e.ws), ns)
	err = e.wait(ctx, "the copies' readiness", e.deadline(start), func(ctx context.Context) (bool, error) {
		objs, err := e.objects(ctx, ns)
		if err != nil {
			return false, err
		}
		now := e.now()
		pending := 0
		for _, w := range e.ws {
			if w.ready {
				continue
			}
			o := objs[w.kind.Kind+"/"+ns+"/"+w.copyName]
			if o != nil && readyOutside(o, e.scope) >= w.replicas {
				w.result.To = reportedTargets(o)
				e.recovered(w, now.Sub(w.result.GetDisruptedAt().AsTime()), now)
				continue
			}
			pending++
		}
		return pending == 0, nil
	})
	if err != nil {
		return err
	}
	e.step("Ready", "every copy is ready on the survivors")
	if err := e.cleanupTest(ctx); err != nil {
		return err
	}
	return nil
}

// createNamespace makes the drill's namespace and the policy that keeps
// its copies off the scope.
func (e *execution) createNamespace(ctx context.Context, ns string) error {
	nso := &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace",
		Metadata: &meridianv1.ObjectMeta{Name: ns, Labels: map[string]string{LabelDrill: e.name}}}
	if _, err := e.r.cfg.Store.Create(ctx, nso); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("failed to create namespace %s: %w", ns, err)
	}
	sel := &meridianv1.LabelSelector{MatchLabels: map[string]string{LabelDrill: e.name}}
	pp := &meridianv1.PropagationPolicy{ApiVersion: resource.MeridianAPIVersion, Kind: "PropagationPolicy",
		Metadata: &meridianv1.ObjectMeta{Name: copyPolicyName, Namespace: ns, Labels: map[string]string{LabelDrill: e.name}},
		Spec: &meridianv1.PropagationSpec{
			// Above any ClusterPropagationPolicy that may select the copies.
			Priority: 1 << 20,
			ResourceSelectors: []*meridianv1.ResourceSelector{
				{ApiVersion: "apps/v1", Kind: "Deployment", LabelSelector: sel},
				{ApiVersion: "apps/v1", Kind: "StatefulSet", LabelSelector: sel},
			},
			Placement: &meridianv1.Placement{
				ClusterAffinity:   &meridianv1.ClusterAffinity{Exclude: sortedKeys(e.scope)},
				ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Divided", ReplicaDivisionPreference: "Weighted"},
			},
		}}
	if _, err := e.r.cfg.Store.Create(ctx, pp); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("failed to create the drill's PropagationPolicy: %w", err)
	}
	return nil
}

// cleanupTest deletes the drill's namespace (and so its copies).
func (e *execution) cleanupTest(ctx context.Context) error {
	ns := Namespace(e.name)
	_, err := e.r.cfg.Store.Delete(ctx, namespaceKind, "", ns, "")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to delete namespace %s: %w", ns, err)
	}
	e.step("Cleanup", "deleted namespace %s and its copies", ns)
	return nil
}

// copyOf is the test-mode copy of w: same pod template, the replicas the
// scope ran, in namespace ns, with a selector and pod labels of its own so
// that no production Service or controller ever selects its pods.
func copyOf(w *workload, drill, ns string) (resource.Object, error) {
	name := truncate(w.ns()+"-"+w.name(), 63)
	labels := map[string]string{LabelDrill: drill, LabelCopy: name}
	md := &meridianv1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{LabelDrill: drill, LabelCopy: name},
		Annotations: map[string]string{AnnotationSource: w.id()}}
	for k, v := range w.obj.GetMetadata().GetLabels() {
		if _, ok := md.Labels[k]; !ok {
			md.Labels[k] = v
		}
	}
	sel := &meridianv1.LabelSelector{MatchLabels: labels}
	n := w.replicas
	switch o := w.obj.(type) {
	case *meridianv1.Deployment:
		spec := proto.Clone(o.GetSpec()).(*meridianv1.DeploymentSpec)
		spec.Replicas, spec.Selector = &n, sel
		spec.Template = podTemplate(spec.GetTemplate(), labels)
		return &meridianv1.Deployment{ApiVersion: o.GetApiVersion(), Kind: o.GetKind(), Metadata: md, Spec: spec}, nil
	case *meridianv1.StatefulSet:
		spec := proto.Clone(o.GetSpec()).(*meridianv1.StatefulSetSpec)
		spec.Replicas, spec.Selector = &n, sel
		spec.Template = podTemplate(spec.GetTemplate(), labels)
		return &meridianv1.StatefulSet{ApiVersion: o.GetApiVersion(), Kind: o.GetKind(), Metadata: md, Spec: spec}, nil
	}
	return nil, fmt.Errorf("%s: a %s cannot be copied", w.id(), w.kind.Kind)
}

// podTemplate is t with only the copy's labels: a Service of the
// workload's namespace (or one that selects across namespaces by label)
// does not select the copy's pods.
func podTemplate(t *meridianv1.PodTemplateSpec, labels map[string]string) *meridianv1.PodTemplateSpec {
	if t == nil {
		t = &meridianv1.PodTemplateSpec{}
	}
	if t.Metadata == nil {
		t.Metadata = &meridianv1.ObjectMeta{}
	}
	t.Metadata.Labels = map[string]string{}
	for k, v := range labels {
		t.Metadata.Labels[k] = v
	}
	return t
}

// parseSeconds reads a decimal number of seconds.
func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a number of seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}
