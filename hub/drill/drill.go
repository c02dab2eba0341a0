// Package drill runs disaster-recovery drills (the Drill kind) on the hub
// leader: one goroutine per running drill, owned by the Runner and stopped
// with its context. The Drill object in the store is the drill's state and,
// once it ends, its report: the runner writes the timeline, the per-workload
// measurements and the verdict into its status as the drill progresses.
//
// Modes:
//   - test: copies of the affected workloads start in an isolated drill
//     namespace, placed on the surviving clusters by an ordinary
//     PropagationPolicy; production is not touched.
//   - planned: a switchover — the replicas come up at the targets first,
//     then the source drains; the original placement is restored the same
//     way at the end.
//   - unplanned: the scope's clusters are marked failed on the affected
//     workloads' bindings (failover.MarkDrillFailure) and the failover
//     controller moves them as off an Unreachable cluster (toleration, rate
//     limit, placement, plugins, purge, fencing, events, metrics, history);
//     at the end the drill removes the marks and restores the placement
//     before it. Test mode skips singletons unless spec.includeSingletons.
//
// A singleton (federation.IsSingleton) never runs two copies: every move a
// planned or unplanned drill makes of one — the switchover, the failback,
// an abort — stops the old copy first (Config.Fence: Revoke, then Release
// until it answers with an epoch) and then moves the binding with the new
// fencing epoch (singleton.go); an unplanned drill's disruption is the
// failover controller's move, fenced the same way.
//
// While a drill holds a ResourceBinding it carries the annotations
// AnnotationDrill and AnnotationOriginal; the placement controller leaves
// such a binding alone. See docs/drills.md.
package drill

import (
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// Modes of a drill.
const (
	ModeTest      = "test"
	ModePlanned   = "planned"
	ModeUnplanned = "unplanned"
)

// Phases of a drill (status.phase).
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"
	PhaseAborted   = "Aborted"
	PhaseRefused   = "Refused"
)

// Verdicts of a drill (status.verdict).
const (
	VerdictPass = "Pass"
	VerdictFail = "Fail"
)

// Labels and annotations the runner puts on what it makes or holds.
const (
	// LabelDrill is on a drill's namespace and copies (test mode): the
	// drill's name.
	LabelDrill = "meridian.io/drill"
	// LabelCopy is a test-mode copy's own selector label.
	LabelCopy = "meridian.io/drill-copy"
	// AnnotationSource on a copy names the production workload it copies
	// (KIND/NAMESPACE/NAME).
	AnnotationSource = "meridian.io/drill-source"
	// AnnotationDrill on a ResourceBinding names the drill that holds it
	// (placement leaves it alone meanwhile).
	AnnotationDrill = placement.AnnotationDrill
	// AnnotationOriginal on a held binding is the placement before the
	// drill, "cluster=replicas,...", which the drill restores.
	AnnotationOriginal = "meridian.io/drill-original"
	// AnnotationReplicationLag is the RPO convention: a workload that
	// replicates data keeps its current replication lag, in seconds (a
	// decimal number), in this annotation; the drill reads it at the
	// disruption and reports it as the workload's RPO.
	AnnotationReplicationLag = "meridian.io/replication-lag-seconds"
)

// Ended reports whether a drill in phase p has ended.
func Ended(p string) bool {
	switch p {
	case PhaseSucceeded, PhaseFailed, PhaseAborted, PhaseRefused:
		return true
	}
	return false
}

// Namespace is the isolated namespace of drill name's test-mode copies.
func Namespace(name string) string { return truncate("drill-"+name, 63) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

var (
	drillKind     = resource.MustLookup("Drill")
	clusterKind   = resource.MustLookup("Cluster")
	bindingKind   = resource.MustLookup("ResourceBinding")
	namespaceKind = resource.MustLookup("Namespace")
	ppKind        = resource.MustLookup("PropagationPolicy")
	cppKind       = resource.MustLookup("ClusterPropagationPolicy")
	workKind      = resource.MustLookup("Work")
)

// Defaults of Config.
const (
	DefaultPoll        = 50 * time.Millisecond
	DefaultMaxDuration = 10 * time.Minute
	// ObjectiveFactor is how far past its RTO objective a drill may run
	// before it is aborted.
	ObjectiveFactor = 10
)
