package sdk

import (
	"fmt"
)

// Code is a Filter verdict on one cluster. The zero value is Success, so
// `return sdk.Result{}` lets a cluster through.
type Code int

const (
	// Success: the cluster passes.
	Success Code = iota
	// Unschedulable: the cluster cannot take the workload now, for a reason
	// that may change (capacity, a maintenance window); the hub retries the
	// placement when its inputs change.
	Unschedulable
	// UnschedulableAndUnresolvable: the cluster can never take the workload
	// under this plugin's policy (residency, compliance).
	UnschedulableAndUnresolvable
	// Skip: the plugin has nothing to say about this workload; the hub
	// ignores the plugin for it. Answer it for every cluster of the batch.
	Skip
	// Error: the plugin could not judge this cluster; the hub applies the
	// plugin's failure mode (fail-open or fail-closed) to it.
	Error
)

var codeNames = [...]string{"Success", "Unschedulable", "UnschedulableAndUnresolvable", "Skip", "Error"}

// String returns the code's name ("Unschedulable").
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Result is a Filter verdict on one cluster.
type Result struct {
	Code Code
	// Reason says why, for users: it shows in `meridian describe`. Set it
	// for every code but Success.
	Reason string
}

// NewResult returns a result with a formatted reason.
func NewResult(code Code, format string, args ...any) Result {
	return Result{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Resources is an amount of compute: CPU in millicores, memory in bytes,
// and pods.
type Resources struct {
	MilliCPU int64
	Memory   int64
	Pods     int64
}

// Health is a cluster's health as the hub sees it.
type Health string

// Health values.
const (
	HealthReady       Health = "Ready"
	HealthSuspect     Health = "Suspect"
	HealthUnreachable Health = "Unreachable"
	HealthUnknown     Health = "Unknown"
)

// Taint keeps workloads off a cluster unless they tolerate it.
type Taint struct {
	Key   string
	Value string
	// Effect is NoSchedule, PreferNoSchedule or NoExecute.
	Effect string
}

// Toleration lets a workload run where a matching taint is.
type Toleration struct {
	Key string
	// Operator is Equal (default) or Exists.
	Operator string
	Value    string
	// Effect to match; empty matches every effect.
	Effect string
	// TolerationSeconds bounds how long a NoExecute taint is tolerated
	// (nil: forever).
	TolerationSeconds *int64
}

// Workload is the object being placed. Plugins must not change it: the SDK
// hands the same value to every cluster of a batch.
type Workload struct {
	// Kind is Deployment, StatefulSet, DaemonSet, Job, CronJob, ...
	Kind        string
	Namespace   string
	Name        string
	UID         string
	Generation  int64
	Labels      map[string]string
	Annotations map[string]string
	// Replicas is the desired replica count; 0 for kinds without replicas.
	Replicas int32
	// Divisible is whether the replicas may be divided over clusters.
	Divisible bool
	// PerReplica is what one replica requests.
	PerReplica  Resources
	Tolerations []Toleration
}

// Cluster is one member cluster. Plugins must not change it.
type Cluster struct {
	Name       string
	Region     string
	Datacenter string
	// Provider is the cluster's provider (label meridian.io/provider);
	// often empty.
	Provider string
	Labels   map[string]string
	Taints   []Taint
	// Unschedulable is set on a cordoned cluster.
	Unschedulable bool
	Health        Health
	Allocatable   Resources
	// Available is what is free now (allocatable minus what runs).
	Available Resources
}

// Target is one cluster of a placement and its replicas.
type Target struct {
	Cluster  string
	Replicas int32
}

// FailoverRequest is what a Failover function decides about: a workload
// about to move off failed clusters.
type FailoverRequest struct {
	Workload *Workload
	// Failed are the clusters the replicas leave.
	Failed []string
	// Proposed is the placement the hub would apply, sorted by cluster.
	Proposed []Target
	// Clusters is every cluster of the federation, sorted by name.
	Clusters []*Cluster
}

// Decision is a Failover answer. The zero Decision accepts the proposal.
type Decision struct {
	// Veto keeps the workload where it is for now.
	Veto bool
	// Targets, when not empty, replace the proposed placement (ignored
	// when Veto is set).
	Targets []Target
	// Reason says why, for events and `meridian describe`.
	Reason string
}
