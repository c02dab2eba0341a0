// Package framework is the contract between the placement engine and the
// policies that decide placement: the snapshot a placement reads, the three
// ordered extension points (Filter → Score → Divide) and the status codes
// every plugin answers with. Built-in policies (one package each under
// policies/) and out-of-process plugins (plugins/host) implement these
// interfaces; the engine (hub/placement) runs them in the order its
// configuration gives.
//
// A placement is a pure function of a Snapshot: plugins must not keep
// state between calls that changes their answers, must not change what the
// snapshot holds, and must be safe for concurrent use (the engine places
// many workloads at once).
package framework

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Code is the outcome of one plugin call.
type Code int

const (
	// Success: the cluster passes (Filter), the score is valid (Score), or
	// the stage produced its result (Divide).
	Success Code = iota
	// Unschedulable: the cluster cannot take the workload now, for a reason
	// that may change with the inputs (capacity, health, cordon). The
	// placement is retried when any input changes.
	Unschedulable
	// UnschedulableAndUnresolvable: the cluster can never take the workload
	// under this policy (affinity, residency); no point retrying for it.
	UnschedulableAndUnresolvable
	// Error: the plugin failed (a bug, a crashed or hung out-of-process
	// plugin). The engine counts the cluster as rejected with the error as
	// reason; an out-of-process plugin's host turns errors into Success or
	// Unschedulable first, per its failure mode.
	Error
	// Skip: the plugin has nothing to say about this workload (its policy
	// does not use the feature); the engine ignores the plugin for it.
	Skip
)

var codeNames = [...]string{"Success", "Unschedulable", "UnschedulableAndUnresolvable", "Error", "Skip"}

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Status is a plugin's answer. A nil *Status means Success.
type Status struct {
	Code Code
	// Plugin is the name of the plugin that answered (the engine fills it
	// in when the plugin leaves it empty).
	Plugin string
	// Reason says why, for users: it shows in `meridian describe`.
	Reason string
	// Err is the failure behind an Error status.
	Err error
}

// NewStatus returns a status with a user-facing reason.
func NewStatus(code Code, format string, args ...any) *Status {
	return &Status{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// AsStatus wraps err in an Error status (nil for a nil err).
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{Code: Error, Reason: err.Error(), Err: err}
}

// CodeOf returns the status' code: Success for nil.
func (s *Status) CodeOf() Code {
	if s == nil {
		return Success
	}
	return s.Code
}

// IsSuccess reports whether s is nil or Success.
func (s *Status) IsSuccess() bool { return s.CodeOf() == Success }

// IsSkip reports whether s is Skip.
func (s *Status) IsSkip() bool { return s.CodeOf() == Skip }

// Rejects reports whether s keeps a cluster out: Unschedulable,
// UnschedulableAndUnresolvable or Error.
func (s *Status) Rejects() bool {
	switch s.CodeOf() {
	case Unschedulable, UnschedulableAndUnresolvable, Error:
		return true
	}
	return false
}

// AsError returns the status as an error (nil unless it rejects).
func (s *Status) AsError() error {
	if !s.Rejects() {
		return nil
	}
	if s.Err != nil {
		return fmt.Errorf("%s: %w", s.Plugin, s.Err)
	}
	return fmt.Errorf("%s: %s: %s", s.Plugin, s.Code, s.Reason)
}

// ErrUnschedulable is the error a placement that found no feasible result
// wraps.
var ErrUnschedulable = errors.New("unschedulable")

// Health is a cluster's health as the hub sees it (gossip + heartbeats).
type Health string

// Health values, as in the Cluster's Ready condition.
const (
	HealthReady       Health = "Ready"
	HealthSuspect     Health = "Suspect"
	HealthUnreachable Health = "Unreachable"
	HealthUnknown     Health = "Unknown"
)

// Resources is an amount of compute: CPU in millicores, memory in bytes,
// and pods.
type Resources struct {
	MilliCPU int64
	Memory   int64
	Pods     int64
}

// Cluster is the read-only view of one member cluster a placement sees.
type Cluster struct {
	Name       string
	Region     string
	Datacenter string
	// Provider is the cluster's "provider" field (label
	// meridian.io/provider), for field selectors; often empty.
	Provider string
	Labels   map[string]string
	Taints   []*meridianv1.Taint
	// Unschedulable is set on a cordoned cluster.
	Unschedulable bool
	Health        Health
	Allocatable   Resources
	// Available is what is free now (allocatable minus what runs).
	Available Resources
}

// Field returns the value of a cluster field a selector or spread
// constraint may name: "cluster", "region", "datacenter" or "provider".
func (c *Cluster) Field(name string) (string, bool) {
	switch name {
	case "cluster":
		return c.Name, true
	case "region":
		return c.Region, true
	case "datacenter":
		return c.Datacenter, true
	case "provider":
		return c.Provider, true
	}
	return "", false
}

// Workload is the object being placed.
type Workload struct {
	Kind        string
	Namespace   string
	Name        string
	UID         string
	Generation  int64
	Labels      map[string]string
	Annotations map[string]string
	// Replicas is the desired replica count; 0 for kinds without replicas
	// (ConfigMap, Service...) and DaemonSets.
	Replicas int32
	// Divisible is whether the replicas may be divided over clusters
	// (Deployment, StatefulSet); the others are always duplicated.
	Divisible bool
	// PerReplica is what one replica requests (the sum of its containers'
	// requests); zero when it requests nothing.
	PerReplica Resources
	// Tolerations are the pod template's tolerations (cluster taints are
	// tolerated by the policy's clusterTolerations, not these).
	Tolerations []*meridianv1.Toleration
}

// Target is one cluster of a placement and its replicas.
type Target struct {
	Cluster  string
	Replicas int32
}

// Snapshot is everything one placement reads. The engine builds it; no
// plugin may change it.
type Snapshot struct {
	Workload *Workload
	// Placement is the selected policy's placement; nil when no policy
	// selects the workload (then: duplicated to every feasible cluster).
	Placement *meridianv1.Placement
	// Affinity is the cluster affinity in force for this attempt: the
	// policy's clusterAffinity, or the clusterAffinities term being tried
	// (nil: every cluster).
	Affinity *meridianv1.ClusterAffinity
	// Clusters is every cluster of the federation, sorted by name.
	Clusters []*Cluster
	// Previous is the current placement, sorted by cluster (empty for a
	// first placement). Divide keeps it as far as the policy allows.
	Previous []Target
	// Fresh asks for a placement that ignores Previous (the policy
	// changed): replicas go where the policy prefers, whatever moves.
	Fresh bool
	// Failed are clusters failover is moving the workload off: no filter
	// keeps them, and their replicas go to the survivors (same datacenter,
	// then same region, first).
	Failed []string
}

// IsFailed reports whether failover is moving the workload off cluster.
func (s *Snapshot) IsFailed(cluster string) bool {
	for _, f := range s.Failed {
		if f == cluster {
			return true
		}
	}
	return false
}

// PreviousReplicas returns the replicas the current placement gives cluster
// (0 if none).
func (s *Snapshot) PreviousReplicas(cluster string) int32 {
	for _, t := range s.Previous {
		if t.Cluster == cluster {
			return t.Replicas
		}
	}
	return 0
}

// Duplicated reports whether every target runs all the replicas: the
// workload is not divisible, or no policy asks to divide it.
func (s *Snapshot) Duplicated() bool {
	if !s.Workload.Divisible {
		return true
	}
	return s.Placement.GetReplicaScheduling().GetReplicaSchedulingType() != "Divided"
}

// Capacity is how many replicas of the workload cluster c can run: what
// its free resources fit, plus what the current placement already runs
// there (those are counted as used in Available). A workload that
// requests nothing fits without bound (MaxReplicas).
func (s *Snapshot) Capacity(c *Cluster) int32 {
	fit := int64(MaxReplicas)
	per, free := s.Workload.PerReplica, c.Available
	for _, r := range []struct{ need, have int64 }{{per.MilliCPU, free.MilliCPU}, {per.Memory, free.Memory}, {1, free.Pods}} {
		if r.need <= 0 {
			continue
		}
		if r.have <= 0 {
			fit = 0
			break
		}
		fit = min(fit, r.have/r.need)
	}
	if c.Allocatable.Pods == 0 && free.Pods == 0 && c.Allocatable.MilliCPU == 0 && c.Allocatable.Memory == 0 {
		fit = MaxReplicas // a cluster that reports no capacity yet is not limited
	}
	return int32(min(fit+int64(s.PreviousReplicas(c.Name)), MaxReplicas))
}

// MaxReplicas bounds every replica count the engine computes.
const MaxReplicas = 1 << 30

// Scored is a feasible cluster and its total score.
type Scored struct {
	Cluster *Cluster
	// Score is the weighted sum of the scorers' normalized scores.
	Score int64
}

// MaxScore is the highest score a ScorePlugin may return; 0 is the lowest.
const MaxScore = 100

// Plugin is what every plugin has: a name, unique in the engine, used in
// configuration and in reasons.
type Plugin interface {
	Name() string
}

// FilterPlugin decides whether a cluster may run the workload. Called once
// per (workload, cluster); nil or Success lets the cluster through.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, s *Snapshot, c *Cluster) *Status
}

// ScorePlugin rates a feasible cluster for the workload from 0 to
// MaxScore (higher is better). A rejecting status counts as score 0.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, s *Snapshot, c *Cluster) (int64, *Status)
}

// DivideResult is what one Divide plugin made of the candidates.
type DivideResult struct {
	// Candidates are the clusters left for the next Divide plugin (a
	// plugin that narrows, such as spread constraints, returns fewer).
	Candidates []Scored
	// Targets, when not nil, is the placement: it ends the Divide stage.
	Targets []Target
}

// DividePlugin turns the scored feasible clusters into a placement. Divide
// plugins run in order: each sees the candidates the one before left, and
// the first that returns Targets ends the stage. Unschedulable means no
// placement satisfies the policy with these candidates.
type DividePlugin interface {
	Plugin
	Divide(ctx context.Context, s *Snapshot, candidates []Scored) (DivideResult, *Status)
}

// TieBreak is the deterministic order between equal clusters for one
// workload: a hash of the workload's UID and the cluster's name. Sorting
// equal candidates by it spreads workloads over clusters while keeping
// every decision replayable.
func TieBreak(workloadUID, cluster string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(workloadUID))
	h.Write([]byte{0})
	h.Write([]byte(cluster))
	return h.Sum64()
}

// FailoverDecision is a FailoverPlugin's answer.
type FailoverDecision struct {
	// Veto keeps the workload where it is (on the failed clusters) for now.
	Veto bool
	// Targets, when not nil, replaces the proposed placement.
	Targets []Target
	// Reason says why, for events and `meridian describe`.
	Reason string
}

// FailoverPlugin is consulted before the hub moves a workload's replicas
// off failed clusters: it sees the proposed new placement and may accept it
// (zero decision), veto the move, or choose other targets.
type FailoverPlugin interface {
	Plugin
	Failover(ctx context.Context, s *Snapshot, failed []string, proposed []Target) (FailoverDecision, *Status)
}

// BatchFilterPlugin is a FilterPlugin that can judge every cluster in one
// call; the engine prefers it when a plugin has it (an out-of-process
// plugin pays one round trip per workload instead of one per cluster).
// The statuses are in the order of clusters.
type BatchFilterPlugin interface {
	FilterPlugin
	FilterAll(ctx context.Context, s *Snapshot, clusters []*Cluster) []*Status
}

// BatchScorePlugin is a ScorePlugin that can score every cluster in one
// call, as BatchFilterPlugin. The scores are in the order of clusters; a
// rejecting status fails the whole call (every cluster scores 0).
type BatchScorePlugin interface {
	ScorePlugin
	ScoreAll(ctx context.Context, s *Snapshot, clusters []*Cluster) ([]int64, *Status)
}
