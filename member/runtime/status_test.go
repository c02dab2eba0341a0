package runtime

import (
	"errors"
	"testing"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestPhase(t *testing.T) {
	run := &meridianv1.ContainerStatus{State: StateRunning}
	fresh := &meridianv1.ContainerStatus{State: StateWaiting, Reason: ReasonContainerCreating}
	backoff := &meridianv1.ContainerStatus{State: StateWaiting, Reason: ReasonCrashLoopBackOff, FinishedAt: timestamppb.Now()}
	ok := &meridianv1.ContainerStatus{State: StateTerminated, ExitCode: 0}
	bad := &meridianv1.ContainerStatus{State: StateTerminated, ExitCode: 2}
	tests := []struct {
		name   string
		policy string
		cs     []*meridianv1.ContainerStatus
		want   string
	}{
		{"no containers", "", nil, PhasePending},
		{"one waiting", RestartAlways, []*meridianv1.ContainerStatus{run, fresh}, PhasePending},
		{"running", "", []*meridianv1.ContainerStatus{run}, PhaseRunning},
		{"running and done", RestartNever, []*meridianv1.ContainerStatus{run, ok}, PhaseRunning},
		{"back-off is not pending", RestartAlways, []*meridianv1.ContainerStatus{backoff}, PhaseRunning},
		{"all done, Always restarts", RestartAlways, []*meridianv1.ContainerStatus{ok}, PhaseRunning},
		{"all succeeded, Never", RestartNever, []*meridianv1.ContainerStatus{ok, ok}, PhaseSucceeded},
		{"all succeeded, OnFailure", RestartOnFailure, []*meridianv1.ContainerStatus{ok}, PhaseSucceeded},
		{"one failed, Never", RestartNever, []*meridianv1.ContainerStatus{ok, bad}, PhaseFailed},
		{"one failed, OnFailure restarts", RestartOnFailure, []*meridianv1.ContainerStatus{bad}, PhaseRunning},
	}
	for _, tt := range tests {
		if got := Phase(tt.policy, tt.cs); got != tt.want {
			t.Errorf("%s: Phase = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestShouldRestart(t *testing.T) {
	tests := []struct {
		policy string
		code   int32
		want   bool
	}{
		{"", 0, true}, {RestartAlways, 1, true},
		{RestartOnFailure, 0, false}, {RestartOnFailure, 137, true},
		{RestartNever, 0, false}, {RestartNever, 1, false},
	}
	for _, tt := range tests {
		if got := ShouldRestart(tt.policy, tt.code); got != tt.want {
			t.Errorf("ShouldRestart(%q, %d) = %v, want %v", tt.policy, tt.code, got, tt.want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 10 * time.Second, Cap: 5 * time.Minute}
	want := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for n, w := range want {
		if got := b.Delay(n); got != w {
			t.Errorf("Delay(%d) = %s, want %s", n, got, w)
		}
	}
	if got := b.Delay(1000); got != 5*time.Minute {
		t.Errorf("Delay(1000) = %s, want the cap", got)
	}
	if got := (Backoff{}).Delay(5); got != 0 {
		t.Errorf("zero Backoff delays %s", got)
	}
}

func TestValidateRequest(t *testing.T) {
	c := func(name string) *meridianv1.Container { return &meridianv1.Container{Name: name} }
	good := &meridianv1.PodSpec{Containers: []*meridianv1.Container{c("a")}}
	tests := []struct {
		name string
		req  *PodRequest
		ok   bool
	}{
		{"good", &PodRequest{UID: "u", Spec: good}, true},
		{"nil", nil, false},
		{"no spec", &PodRequest{UID: "u"}, false},
		{"no uid", &PodRequest{Spec: good}, false},
		{"uid with NUL", &PodRequest{UID: "a\x00", Spec: good}, false},
		{"container ..", &PodRequest{UID: "u", Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{c("..")}}}, false},
		{"init and main share a name", &PodRequest{UID: "u", Spec: &meridianv1.PodSpec{
			InitContainers: []*meridianv1.Container{c("a")}, Containers: []*meridianv1.Container{c("a")},
		}}, false},
	}
	for _, tt := range tests {
		err := ValidateRequest(tt.req)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidPod)) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

func TestGracePeriod(t *testing.T) {
	five := int64(5)
	spec := &meridianv1.PodSpec{TerminationGracePeriodSeconds: &five}
	if got := GracePeriod(spec, -1); got != 5*time.Second {
		t.Errorf("from spec: %s", got)
	}
	if got := GracePeriod(spec, 0); got != 0 {
		t.Errorf("explicit 0: %s", got)
	}
	if got := GracePeriod(&meridianv1.PodSpec{}, -1); got != DefaultGracePeriod {
		t.Errorf("default: %s", got)
	}
}

func TestConditions(t *testing.T) {
	now := time.Now()
	conds := Conditions(true, false, now)
	got := map[string]string{}
	for _, c := range conds {
		got[c.GetType()] = c.GetStatus()
	}
	want := map[string]string{ConditionInitialized: "True", ConditionContainersReady: "False", ConditionReady: "False"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	if !conds[2].GetLastTransitionTime().AsTime().Equal(now) {
		t.Error("Ready lacks its transition time")
	}
}
