// Package runtime defines how a member's node agent runs pods: the Driver
// interface that every runtime implements, the request it takes, and the
// vocabulary (phases, container states, reasons) the drivers report in
// meridianv1.PodStatus.
//
// Two drivers implement it: member/runtime/exec runs each container's command
// as a real process, member/runtime/sim simulates pods without processes for
// scale tests. member/runtime/ipam hands out the pod addresses the agent puts
// in PodRequest.PodIP. See README.md for a diagram.
package runtime

import (
	"context"
	"errors"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Driver runs pods on one node.
//
// Concurrency: implementations must be safe for concurrent use by multiple
// goroutines. No method blocks on a pod's processes except Stop (which waits
// for them to exit, bounded by its context) and Close.
type Driver interface {
	// Name is the runtime's name, such as "exec" or "sim".
	Name() string

	// Start begins running the pod's containers and returns at once; the
	// driver keeps them running per the pod's restartPolicy until Stop. ctx
	// bounds only the setup work done before Start returns, never the pod's
	// lifetime. Starting a UID the driver already runs fails with
	// ErrPodExists; an invalid request fails with ErrInvalidPod.
	Start(ctx context.Context, p *PodRequest) error

	// Stop asks the pod's containers to terminate (SIGTERM, or the simulated
	// equivalent), waits up to grace, then kills them, and forgets the pod.
	// A negative grace means the pod's terminationGracePeriodSeconds (30 s when
	// unset). Stop returns when every container has exited, or with ctx's
	// error if ctx ends first (termination then goes on in the background).
	// Stopping a pod the driver does not run is not an error.
	Stop(ctx context.Context, uid string, grace time.Duration) error

	// Status returns the latest observed status of a pod, and false if the
	// driver does not run it. The returned message is a fresh copy owned by
	// the caller.
	Status(uid string) (*meridianv1.PodStatus, bool)

	// Pods lists the UIDs of the pods the driver runs, sorted. An agent that
	// restarts calls it to adopt what is still running.
	Pods() []string

	// Close stops every pod and releases the driver's resources; no process
	// it started outlives it. Calls after the first return nil.
	Close() error
}

// ChangeFunc is told that the status of the pod with this UID may have
// changed. Drivers call it from their own goroutines, possibly concurrently
// and never while holding a lock, so it may call Status. It must not block:
// the expected implementation adds the UID to a work queue.
type ChangeFunc func(uid string)

// PodRequest is what a driver needs to run one pod. The agent resolves
// everything that needs the API (ConfigMaps, Secrets, Services) before it
// calls Start; drivers read nothing but this.
type PodRequest struct {
	// UID identifies the pod; it names the pod's directory, so it must be a
	// single path element.
	UID       string
	Namespace string
	Name      string
	// Spec is the pod's spec. Drivers copy what they keep; the caller may
	// reuse it after Start returns.
	Spec *meridianv1.PodSpec
	// PodIP is the pod's own address (from ipam), exported as POD_IP.
	PodIP string
	// Env is extra environment for every container, as NAME=value: service
	// variables and the like. Container-specific variables override it.
	Env []string
	// ContainerEnv holds resolved environment per container name, as
	// NAME=value: the values of the container's envFrom sources and of its
	// env entries that use valueFrom. An env entry with valueFrom that has no
	// value here is left unset (fieldRef to the pod's own name, namespace and
	// IP is resolved by the driver).
	ContainerEnv map[string][]string
	// Files maps a path relative to the pod's directory to the content to
	// write there before any container starts (ConfigMap and Secret volumes).
	Files map[string][]byte
}

// Errors callers can test for with errors.Is.
var (
	// ErrPodExists means Start was called for a UID the driver already runs.
	ErrPodExists = errors.New("pod already running")
	// ErrInvalidPod means a PodRequest cannot be run as given.
	ErrInvalidPod = errors.New("invalid pod request")
	// ErrClosed means the driver has been closed.
	ErrClosed = errors.New("runtime driver closed")
)

// Pod phases, as in PodStatus.phase.
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"
)

// Container states, as in ContainerStatus.state.
const (
	StateWaiting    = "Waiting"
	StateRunning    = "Running"
	StateTerminated = "Terminated"
)

// Restart policies, as in PodSpec.restart_policy. The empty string means
// Always.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"
)

// Reasons drivers report in ContainerStatus.reason and PodStatus.reason.
const (
	// ReasonContainerCreating: the container has not been started yet.
	ReasonContainerCreating = "ContainerCreating"
	// ReasonPodInitializing: the pod's init containers have not all completed.
	ReasonPodInitializing = "PodInitializing"
	// ReasonCrashLoopBackOff: the container exited and waits out its back-off
	// before the next restart.
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	// ReasonImageNotSupported: the container names only an image, which the
	// exec runtime cannot run.
	ReasonImageNotSupported = "ImageNotSupported"
	// ReasonStartError: the container's process could not be started.
	ReasonStartError = "StartError"
	// ReasonCompleted: the container exited with status 0.
	ReasonCompleted = "Completed"
	// ReasonError: the container exited with a non-zero status.
	ReasonError = "Error"
	// ReasonUnhealthy: the container was killed because its liveness or
	// startup probe failed.
	ReasonUnhealthy = "Unhealthy"
	// ReasonInitFailed: an init container failed and the pod will not retry.
	ReasonInitFailed = "InitContainerFailed"
)

// Pod condition types a driver reports.
const (
	ConditionInitialized     = "Initialized"
	ConditionContainersReady = "ContainersReady"
	ConditionReady           = "Ready"
)

// DefaultGracePeriod is the termination grace period of a pod that sets none,
// as in Kubernetes.
const DefaultGracePeriod = 30 * time.Second

// GracePeriod returns the grace period to use when stopping a pod: grace if it
// is not negative, else the spec's terminationGracePeriodSeconds, else
// DefaultGracePeriod.
func GracePeriod(spec *meridianv1.PodSpec, grace time.Duration) time.Duration {
	if grace >= 0 {
		return grace
	}
	if spec != nil && spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds >= 0 {
		return time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	return DefaultGracePeriod
}
