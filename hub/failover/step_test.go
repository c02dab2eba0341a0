package failover

import (
	"fmt"
	"testing"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func tg(pairs ...any) []framework.Target {
	var out []framework.Target
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, framework.Target{Cluster: pairs[i].(string), Replicas: int32(pairs[i+1].(int))})
	}
	return out
}

func TestStepToward(t *testing.T) {
	tests := []struct {
		name             string
		current, desired []framework.Target
		limit            int32
		want             string
		ok               bool
	}{
		{"one step of two", tg("a", 0, "b", 8), tg("a", 4, "b", 4), 2, "[{a 2} {b 6}]", true},
		{"the last step", tg("a", 2, "b", 6), tg("a", 4, "b", 4), 2, "[{a 4} {b 4}]", true},
		{"largest gaps first", tg("b", 6, "c", 3), tg("a", 3, "b", 3, "c", 3), 2, "[{a 2} {b 4} {c 3}]", true},
		{"nothing to move", tg("a", 4, "b", 4), tg("a", 4, "b", 4), 2, "[{a 4} {b 4}]", true},
		{"a scale under way waits", tg("a", 4), tg("a", 2, "b", 3), 2, "[]", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := StepToward(tc.current, tc.desired, false, tc.limit)
			if ok != tc.ok || (ok && fmt.Sprint(got) != tc.want) {
				t.Fatalf("StepToward = %v, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if got, _ := StepToward(tg("b", 1), tg("a", 1, "b", 1), true, 1); fmt.Sprint(got) != "[{a 1} {b 1}]" {
		t.Errorf("duplicated step = %v, want the desired placement", got)
	}
	for replicas, want := range map[int32]int32{0: 1, 1: 1, 4: 1, 5: 2, 8: 2, 9: 3, 100: 25} {
		if got := MaxStep(replicas); got != want {
			t.Errorf("MaxStep(%d) = %d, want %d", replicas, got, want)
		}
	}
}

func TestValidTargets(t *testing.T) {
	snap := &framework.Snapshot{
		Workload:  &framework.Workload{Replicas: 4, Divisible: true},
		Placement: &meridianv1.Placement{ReplicaScheduling: &meridianv1.ReplicaSchedulingStrategy{ReplicaSchedulingType: "Divided"}},
		Clusters:  []*framework.Cluster{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		Failed:    []string{"a"},
	}
	for _, tc := range []struct {
		targets []framework.Target
		ok      bool
	}{
		{tg("b", 2, "c", 2), true},
		{tg("b", 4), true},
		{tg("a", 2, "b", 2), false},  // failed
		{tg("b", 2, "zz", 2), false}, // unknown
		{tg("b", 3), false},          // sum
		{tg("b", 2, "b", 2), false},  // twice
		{nil, false},
	} {
		if err := validTargets(snap, tc.targets); (err == nil) != tc.ok {
			t.Errorf("validTargets(%v) = %v, want ok=%v", tc.targets, err, tc.ok)
		}
	}
}

func TestBehaviorDefaults(t *testing.T) {
	b := BehaviorOf(nil)
	if b.Disabled || b.Toleration != DefaultToleration || b.Immediately || b.GracePeriod != DefaultGracePeriod || b.Manual || b.Stabilization != DefaultStabilization {
		t.Errorf("defaults = %+v", b)
	}
	zero, manual := int32(0), "Manual"
	p := &placement.Policy{Spec: &meridianv1.PropagationSpec{Failover: &meridianv1.FailoverBehavior{
		TolerationSeconds: &zero, PurgeMode: PurgeImmediately, Failback: manual, StabilizationSeconds: &zero}}}
	b = BehaviorOf(p)
	if b.Toleration != 0 || !b.Immediately || !b.Manual || b.Stabilization != 0 || b.GracePeriod != DefaultGracePeriod {
		t.Errorf("policy = %+v", b)
	}
}
