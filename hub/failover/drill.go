package failover

import (
	"slices"
	"strings"
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Annotations an unplanned drill (hub/drill) puts on the ResourceBinding of
// each workload it selects, to have this controller fail it over for real.
// They mark clusters failed for that one binding, not for the federation:
// every other workload, and the health controller, still see the clusters
// Ready. The mark lives in the binding (not in the leader's memory), so a
// new hub leader sees it too, and the drill — or the next leader undoing it
// — removes it with the failover records (ClearDrillFailure).
//
//   - AnnotationDrillFailed: the clusters (comma-separated) to treat as
//     Unreachable for this binding;
//   - AnnotationDrillFailedSince: since when (RFC 3339, nanoseconds): the
//     simulated detection. The policy's toleration runs from then, as from
//     a real cluster's Unreachable transition.
//
// The mark counts only while the binding is held by a drill
// (placement.AnnotationDrill names it). A move off a drill-failed cluster
// differs from a real failover in two ways, both because the cluster is in
// fact healthy: its copy is purged at once whatever the policy's purgeMode
// (a kept Work would keep serving next to its replacement, where a failed
// cluster's copy would serve nothing), and a singleton is fenced with
// Revoke then Release (the cluster keeps renewing its lease, which a
// Release alone would wait out for ever).
const (
	AnnotationDrillFailed      = "meridian.io/drill-failed"
	AnnotationDrillFailedSince = "meridian.io/drill-failed-since"
)

// DrillFailure is the drill mark of a binding: the clusters it marks failed
// (nil when none, or when no drill holds the binding), since when, and the
// drill's name.
func DrillFailure(b *meridianv1.ResourceBinding) (clusters []string, since time.Time, drill string) {
	ann := b.GetMetadata().GetAnnotations()
	drill = ann[placement.AnnotationDrill]
	s := ann[AnnotationDrillFailed]
	if drill == "" || s == "" {
		return nil, time.Time{}, ""
	}
	since, err := time.Parse(time.RFC3339Nano, ann[AnnotationDrillFailedSince])
	if err != nil {
		return nil, time.Time{}, ""
	}
	for _, c := range strings.Split(s, ",") {
		if c != "" {
			clusters = append(clusters, c)
		}
	}
	return clusters, since, drill
}

// MarkDrillFailure sets the drill mark on b (its metadata; the caller
// writes it): clusters failed since since.
func MarkDrillFailure(b *meridianv1.ResourceBinding, clusters []string, since time.Time) {
	if b.Metadata == nil {
		b.Metadata = &meridianv1.ObjectMeta{}
	}
	if b.Metadata.Annotations == nil {
		b.Metadata.Annotations = map[string]string{}
	}
	cs := slices.Clone(clusters)
	slices.Sort(cs)
	b.Metadata.Annotations[AnnotationDrillFailed] = strings.Join(cs, ",")
	b.Metadata.Annotations[AnnotationDrillFailedSince] = since.UTC().Format(time.RFC3339Nano)
}

// ClearDrillFailure removes the drill mark from b and what failover
// recorded for the clusters it marked (their evictions and failedOver
// records): the drill restores the placement before it itself, so
// failback has nothing left to bring back. It returns the clusters that
// were marked.
func ClearDrillFailure(b *meridianv1.ResourceBinding) []string {
	ann := b.GetMetadata().GetAnnotations()
	var marked []string
	for _, c := range strings.Split(ann[AnnotationDrillFailed], ",") {
		if c != "" {
			marked = append(marked, c)
		}
	}
	delete(ann, AnnotationDrillFailed)
	delete(ann, AnnotationDrillFailedSince)
	if b.Spec != nil && len(marked) > 0 {
		b.Spec.Evicting = slices.DeleteFunc(b.Spec.Evicting, func(e *meridianv1.GracefulEviction) bool { return slices.Contains(marked, e.GetCluster()) })
		b.Spec.FailedOver = slices.DeleteFunc(b.Spec.FailedOver, func(f *meridianv1.FailedOver) bool { return slices.Contains(marked, f.GetCluster()) })
	}
	return marked
}

// applyDrillFailure overlays the binding's drill mark on the clusters'
// health: a marked cluster is Unreachable since the mark's time, for this
// workload only. It returns the marked clusters and the drill.
func applyDrillFailure(w *workload) {
	clusters, since, drill := DrillFailure(w.binding)
	if len(clusters) == 0 {
		return
	}
	w.drill = drill
	w.drillFailed = map[string]bool{}
	overlay := make(map[string]clusterHealth, len(w.clusters))
	for n, h := range w.clusters {
		overlay[n] = h
	}
	for _, c := range clusters {
		h, ok := overlay[c]
		if !ok {
			continue
		}
		// A real failure of the cluster (not Ready) is left as it is: the
		// drill is aborted by it, and failover treats it as ever.
		if h.health != framework.HealthReady {
			continue
		}
		h.health, h.since = framework.HealthUnreachable, since
		overlay[c] = h
		w.drillFailed[c] = true
	}
	w.clusters = overlay
}

// drillMark is b's drill mark as written (every annotation it consists of),
// to tell whether it changed.
func drillMark(b *meridianv1.ResourceBinding) string {
	ann := b.GetMetadata().GetAnnotations()
	if ann[AnnotationDrillFailed] == "" {
		return ""
	}
	return ann[placement.AnnotationDrill] + "\x00" + ann[AnnotationDrillFailed] + "\x00" + ann[AnnotationDrillFailedSince]
}
