package deployment

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Errors of Rollback, for the CLI to tell apart with errors.Is.
var (
	// ErrRevisionNotFound: no ReplicaSet of the Deployment has the
	// revision asked for (or, for revision 0, there is no earlier one).
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrPaused: a paused Deployment is not rolled back; resume it first,
	// as kubectl requires.
	ErrPaused = errors.New("deployment is paused")
	// ErrUnchanged: the Deployment already runs that revision's template;
	// nothing was written (kubectl's "skipped rollback").
	ErrUnchanged = errors.New("deployment already runs the template of that revision")
)

// Store is what History and Rollback need from a store: a storage.Interface
// has it, and so does the CLI's view of a member's Admin API, which is how
// `meridian rollout` uses these functions.
type Store interface {
	Get(ctx context.Context, kind *resource.Kind, namespace, name string) (resource.Object, error)
	List(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector) ([]resource.Object, int64, error)
	Update(ctx context.Context, kind *resource.Kind, namespace, name string, mutate func(resource.Object) error) (resource.Object, error)
}

var _ Store = storage.Interface(nil)

// Revision is one entry of a Deployment's rollout history.
type Revision struct {
	// Number is the revision (the ReplicaSet's revision annotation).
	Number int64
	// ReplicaSet is the name of the ReplicaSet that runs it.
	ReplicaSet string
	// ChangeCause is the kubernetes.io/change-cause annotation, if any.
	ChangeCause string
	// Template is the pod template, without the pod-template-hash label.
	Template *meridianv1.PodTemplateSpec
}

// History returns the revisions of the Deployment namespace/name that
// still have a ReplicaSet, oldest first, read from the store. It is what
// `meridian rollout history` prints.
func History(ctx context.Context, st Store, namespace, name string) ([]Revision, error) {
	_, rss, err := readOwned(ctx, st, namespace, name)
	if err != nil {
		return nil, err
	}
	out := make([]Revision, 0, len(rss))
	for _, rs := range rss {
		n := revision(rs)
		if n == 0 {
			continue
		}
		out = append(out, Revision{
			Number:      n,
			ReplicaSet:  rs.GetMetadata().GetName(),
			ChangeCause: rs.GetMetadata().GetAnnotations()[ChangeCauseAnnotation],
			Template:    templateOf(rs),
		})
	}
	slices.SortFunc(out, func(a, b Revision) int { return int(a.Number - b.Number) })
	return out, nil
}

// Rollback sets the pod template of the Deployment namespace/name to the
// template of its ReplicaSet with revision toRevision (0: the revision
// before the current one), as `kubectl rollout undo` does, and returns the
// updated Deployment. The controller then rolls out to it like any other
// template change, reusing that ReplicaSet under a new revision number.
//
// It fails with ErrRevisionNotFound if there is no such revision, with
// ErrPaused for a paused Deployment, with ErrUnchanged if the Deployment
// already runs that template, and with storage.ErrNotFound if there is no
// such Deployment. The write is a compare-and-swap: a Deployment changed
// meanwhile is re-read and checked again.
func Rollback(ctx context.Context, st Store, namespace, name string, toRevision int64) (resource.Object, error) {
	d, rss, err := readOwned(ctx, st, namespace, name)
	if err != nil {
		return nil, err
	}
	if d.GetSpec().GetPaused() {
		return nil, fmt.Errorf("failed to roll back deployment %s: %w", name, ErrPaused)
	}
	target := toRevision
	if target == 0 {
		// The previous revision is the highest below the current one.
		cur := int64(0)
		for _, rs := range rss {
			cur = max(cur, revision(rs))
		}
		for _, rs := range rss {
			if r := revision(rs); r < cur {
				target = max(target, r)
			}
		}
		if target == 0 {
			return nil, fmt.Errorf("failed to roll back deployment %s: no revision before %d: %w", name, cur, ErrRevisionNotFound)
		}
	}
	i := slices.IndexFunc(rss, func(rs *meridianv1.ReplicaSet) bool { return revision(rs) == target })
	if i < 0 {
		return nil, fmt.Errorf("failed to roll back deployment %s to revision %d: %w", name, target, ErrRevisionNotFound)
	}
	tmpl := templateOf(rss[i])
	uid := d.GetMetadata().GetUid()
	got, err := st.Update(ctx, deployKind, namespace, name, func(o resource.Object) error {
		cur := o.(*meridianv1.Deployment)
		if cur.GetMetadata().GetUid() != uid {
			return storage.ErrNotFound
		}
		if cur.GetSpec().GetPaused() {
			return ErrPaused
		}
		if podutil.TemplatesEqual(cur.GetSpec().GetTemplate(), tmpl, "") {
			return ErrUnchanged
		}
		if cur.Spec == nil {
			cur.Spec = &meridianv1.DeploymentSpec{}
		}
		cur.Spec.Template = proto.Clone(tmpl).(*meridianv1.PodTemplateSpec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to roll back deployment %s to revision %d: %w", name, target, err)
	}
	return got, nil
}

// readOwned reads a Deployment and the ReplicaSets it controls from the
// store (not a cache: the CLI calls these once, and must see its writes).
func readOwned(ctx context.Context, st Store, namespace, name string) (*meridianv1.Deployment, []*meridianv1.ReplicaSet, error) {
	obj, err := st.Get(ctx, deployKind, namespace, name)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read deployment %s: %w", name, err)
	}
	d, ok := obj.(*meridianv1.Deployment)
	if !ok {
		return nil, nil, fmt.Errorf("failed to read deployment %s: the store returned a %s", name, obj.GetKind())
	}
	objs, _, err := st.List(ctx, rsKind, namespace, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list the replica sets of deployment %s: %w", name, err)
	}
	var rss []*meridianv1.ReplicaSet
	for _, o := range objs {
		if controller.IsControlledBy(o, d) {
			rss = append(rss, o.(*meridianv1.ReplicaSet))
		}
	}
	return d, rss, nil
}

// templateOf is a ReplicaSet's template without its pod-template-hash
// label: the template of the Deployment revision it runs.
func templateOf(rs *meridianv1.ReplicaSet) *meridianv1.PodTemplateSpec {
	t := proto.Clone(rs.GetSpec().GetTemplate()).(*meridianv1.PodTemplateSpec)
	if t == nil {
		return &meridianv1.PodTemplateSpec{}
	}
	if t.GetMetadata() != nil {
		delete(t.Metadata.Labels, podutil.PodTemplateHashLabel)
	}
	return t
}
