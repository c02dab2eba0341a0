// Package scheduler binds a member's pending pods to its nodes, the way the
// Kubernetes scheduler framework does: filter plugins remove the nodes a pod
// cannot run on, score plugins rank the rest, and the pod is bound to the
// best one by writing spec.nodeName. A pod no node can take gets condition
// PodScheduled=False with a message that says why, node by node, and is
// retried when nodes or pods change. See README.md for the picture.
package scheduler

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a plugin's verdict about one pod on one node.
type Code int

// Result codes, as in the Kubernetes scheduler framework.
const (
	// Success: the node passes (a filter) or was scored (a score plugin).
	Success Code = iota
	// Unschedulable: the node cannot take the pod now, but could once the
	// cluster changes (pods leave it and free resources).
	Unschedulable
	// UnschedulableAndUnresolvable: the node cannot take the pod until the
	// node itself changes (its labels, taints, or schedulability); no
	// amount of pods leaving helps.
	UnschedulableAndUnresolvable
	// Error: the plugin could not decide (bad input, a bug). The pod is
	// not placed on the node and the error is reported.
	Error
	// Skip: returned by PreFilter or PreScore, the plugin has nothing to
	// say about this pod (no nodeSelector, no owner to spread) and its
	// Filter or Score is not called for it.
	Skip
)

var codeNames = [...]string{"Success", "Unschedulable", "UnschedulableAndUnresolvable", "Error", "Skip"}

// String names the code.
func (c Code) String() string {
	if int(c) >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Status is a plugin's result: a code and the user-facing reasons behind it
// ("Insufficient cpu"). A nil *Status is Success. A Status is immutable
// once made, so plugins may return shared ones.
type Status struct {
	code    Code
	reasons []string
	err     error
}

// NewStatus returns a status with a code and reasons.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an error into an Error status.
func AsStatus(err error) *Status {
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code is the status's code; Success for a nil status.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// IsSuccess reports whether the status is Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsSkip reports whether the status is Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// Reasons are the user-facing reasons of a failure.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Err is the error of an Error status.
func (s *Status) Err() error {
	if s == nil {
		return nil
	}
	return s.err
}

// String renders the status for logs.
func (s *Status) String() string {
	if s == nil {
		return Success.String()
	}
	return fmt.Sprintf("%s(%s)", s.code, strings.Join(s.reasons, ", "))
}

// MaxNodeScore is the best score a score plugin gives a node; 0 is the worst.
const MaxNodeScore = 100

// Plugin is anything the framework runs. Name is the name configuration
// uses for it.
type Plugin interface {
	Name() string
}

// FilterPlugin decides whether a node can run a pod. Filter must not change
// the pod or the node, and must be fast: it runs for every node, for every
// pod, on the scheduler's single scheduling goroutine.
type FilterPlugin interface {
	Plugin
	Filter(pod *PodInfo, node *NodeInfo) *Status
}

// PreFilterPlugin is an optional part of a FilterPlugin: PreFilter runs once
// per pod before any Filter and may return Skip (the plugin has nothing to
// check for this pod) or a failure (the pod can run nowhere).
type PreFilterPlugin interface {
	PreFilter(pod *PodInfo) *Status
}

// ScorePlugin ranks a node that passed every filter, from 0 to
// MaxNodeScore (or on its own scale, if it also normalizes).
type ScorePlugin interface {
	Plugin
	Score(pod *PodInfo, node *NodeInfo) (int64, *Status)
}

// PreScorePlugin is an optional part of a ScorePlugin: PreScore runs once
// per pod and may return Skip (every node would score the same).
type PreScorePlugin interface {
	PreScore(pod *PodInfo) *Status
}

// ScoreNormalizer is an optional part of a ScorePlugin whose raw scores are
// not on the 0..MaxNodeScore scale: it rescales the scores of all feasible
// nodes (same order as nodes) in place.
type ScoreNormalizer interface {
	NormalizeScore(pod *PodInfo, nodes []*NodeInfo, scores []int64) *Status
}

// ErrNoNodes is the FitError reason when the member has no nodes at all.
var ErrNoNodes = errors.New("no nodes available to schedule pods")
