package runtime

import (
	"errors"
	"fmt"
	"strings"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Phase computes a pod's phase from its containers' statuses the way the
// kubelet does:
//
//   - Pending while any container waits to run for the first time;
//   - Running while any container runs, or while stopped containers will
//     be restarted (Always, or OnFailure with a failure);
//   - Succeeded when every container terminated with status 0 and none
//     will be restarted;
//   - Failed when every container terminated, one of them with a failure,
//     and the policy is Never.
//
// A Waiting container that has run before (it has a finishedAt time or a
// restart count) counts as stopped, not pending: it is in back-off.
func Phase(restartPolicy string, statuses []*meridianv1.ContainerStatus) string {
	var waiting, running, stopped, succeeded int
	for _, cs := range statuses {
		switch cs.GetState() {
		case StateRunning:
			running++
		case StateTerminated:
			stopped++
			if cs.GetExitCode() == 0 {
				succeeded++
			}
		default:
			if cs.GetRestartCount() > 0 || cs.GetFinishedAt() != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case len(statuses) == 0 || waiting > 0:
		return PhasePending
	case running > 0:
		return PhaseRunning
	case stopped == len(statuses):
		switch {
		case normalPolicy(restartPolicy) == RestartAlways:
			return PhaseRunning
		case stopped == succeeded:
			return PhaseSucceeded
		case normalPolicy(restartPolicy) == RestartNever:
			return PhaseFailed
		default:
			return PhaseRunning
		}
	default:
		return PhasePending
	}
}

// ShouldRestart reports whether a container that exited with exitCode is
// restarted under restartPolicy (empty means Always).
func ShouldRestart(restartPolicy string, exitCode int32) bool {
	switch normalPolicy(restartPolicy) {
	case RestartNever:
		return false
	case RestartOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

func normalPolicy(p string) string {
	if p == "" {
		return RestartAlways
	}
	return p
}

// Backoff is the crash-loop back-off: the first restart after a run is
// immediate, the second waits Base, and each later one twice as long as the
// one before, up to Cap (the kubelet's 10 s doubling to 5 min).
type Backoff struct {
	// Base is the delay before the second consecutive restart.
	Base time.Duration
	// Cap is the longest delay.
	Cap time.Duration
}

// Delay returns the wait before the n-th consecutive restart (1-based).
func (b Backoff) Delay(n int) time.Duration {
	if n <= 1 || b.Base <= 0 {
		return 0
	}
	d := b.Base
	for i := 2; i < n; i++ {
		d *= 2
		if b.Cap > 0 && d >= b.Cap {
			return b.Cap
		}
	}
	if b.Cap > 0 && d > b.Cap {
		return b.Cap
	}
	return d
}

// ValidateRequest checks what every driver needs of a PodRequest: a UID and
// container names that are single path elements, at least one container, and
// container names unique across init and regular containers. Errors wrap
// ErrInvalidPod.
func ValidateRequest(p *PodRequest) error {
	if p == nil || p.Spec == nil {
		return fmt.Errorf("%w: missing spec", ErrInvalidPod)
	}
	if err := checkPathElement(p.UID); err != nil {
		return fmt.Errorf("%w: uid: %w", ErrInvalidPod, err)
	}
	if len(p.Spec.GetContainers()) == 0 {
		return fmt.Errorf("%w: pod %s has no containers", ErrInvalidPod, p.UID)
	}
	switch normalPolicy(p.Spec.GetRestartPolicy()) {
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		return fmt.Errorf("%w: restartPolicy %q is not Always, OnFailure or Never", ErrInvalidPod, p.Spec.GetRestartPolicy())
	}
	seen := make(map[string]bool)
	all := append(append([]*meridianv1.Container(nil), p.Spec.GetInitContainers()...), p.Spec.GetContainers()...)
	for _, c := range all {
		if err := checkPathElement(c.GetName()); err != nil {
			return fmt.Errorf("%w: container name: %w", ErrInvalidPod, err)
		}
		if seen[c.GetName()] {
			return fmt.Errorf("%w: container name %q is used twice", ErrInvalidPod, c.GetName())
		}
		seen[c.GetName()] = true
	}
	return nil
}

// CheckName reports whether s can name a pod (its UID) or a container on
// disk: drivers use both as one element of a file path.
func CheckName(s string) error { return checkPathElement(s) }

// checkPathElement accepts names that are safe as one element of a file path.
func checkPathElement(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case s == "." || s == "..":
		return fmt.Errorf("%q is not allowed", s)
	case strings.ContainsAny(s, "/\\\x00"):
		return fmt.Errorf("%q contains a path separator or NUL", s)
	case len(s) > 253:
		return fmt.Errorf("longer than 253 characters")
	}
	return nil
}

// Conditions returns the Initialized, ContainersReady and Ready conditions of
// a pod. readySince is when readiness last changed; zero leaves
// lastTransitionTime unset.
func Conditions(initialized, ready bool, readySince time.Time) []*meridianv1.Condition {
	var ts *timestamppb.Timestamp
	if !readySince.IsZero() {
		ts = timestamppb.New(readySince)
	}
	cond := func(typ string, ok bool, t *timestamppb.Timestamp) *meridianv1.Condition {
		status := "False"
		if ok {
			status = "True"
		}
		return &meridianv1.Condition{Type: typ, Status: status, LastTransitionTime: t}
	}
	return []*meridianv1.Condition{
		cond(ConditionInitialized, initialized, nil),
		cond(ConditionContainersReady, ready, ts),
		cond(ConditionReady, ready, ts),
	}
}
