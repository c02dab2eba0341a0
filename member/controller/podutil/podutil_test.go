package podutil

import (
	"errors"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/labels"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestSelector(t *testing.T) {
	req := func(key, op string, values ...string) *meridianv1.LabelSelectorRequirement {
		return &meridianv1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name    string
		sel     *meridianv1.LabelSelector
		match   map[string]string
		noMatch map[string]string
		wantErr bool
	}{
		{name: "nil selects nothing", sel: nil, noMatch: map[string]string{}},
		{name: "empty selects everything", sel: &meridianv1.LabelSelector{}, match: map[string]string{"x": "y"}},
		{name: "matchLabels", sel: &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "fe"}},
			match: map[string]string{"app": "web", "tier": "fe", "x": "1"}, noMatch: map[string]string{"app": "web"}},
		{name: "In", sel: &meridianv1.LabelSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{req("env", OpIn, "a", "b")}},
			match: map[string]string{"env": "b"}, noMatch: map[string]string{"env": "c"}},
		{name: "NotIn", sel: &meridianv1.LabelSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{req("env", OpNotIn, "a")}},
			match: map[string]string{}, noMatch: map[string]string{"env": "a"}},
		{name: "Exists", sel: &meridianv1.LabelSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{req("gpu", OpExists)}},
			match: map[string]string{"gpu": ""}, noMatch: map[string]string{}},
		{name: "DoesNotExist and matchLabels", sel: &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "web"},
			MatchExpressions: []*meridianv1.LabelSelectorRequirement{req("canary", OpDoesNotExist)}},
			match: map[string]string{"app": "web"}, noMatch: map[string]string{"app": "web", "canary": "1"}},
		{name: "unknown operator", sel: &meridianv1.LabelSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{req("a", "Gt", "1")}}, wantErr: true},
		{name: "In without values", sel: &meridianv1.LabelSelector{MatchExpressions: []*meridianv1.LabelSelectorRequirement{req("a", OpIn)}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Selector(tc.sel)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if tc.match != nil && !sel.Matches(labels.Set(tc.match)) {
				t.Errorf("%s does not match %v", sel, tc.match)
			}
			if tc.noMatch != nil && sel.Matches(labels.Set(tc.noMatch)) {
				t.Errorf("%s matches %v", sel, tc.noMatch)
			}
		})
	}
}

func TestWorkloadSelector(t *testing.T) {
	tmpl := &meridianv1.PodTemplateSpec{Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "web"}}}
	if _, err := WorkloadSelector(&meridianv1.LabelSelector{}, tmpl); !errors.Is(err, ErrEmptySelector) {
		t.Errorf("empty selector: %v, want ErrEmptySelector", err)
	}
	if _, err := WorkloadSelector(&meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, tmpl); err == nil {
		t.Error("a selector that does not match the template was accepted")
	}
	if _, err := WorkloadSelector(&meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, tmpl); err != nil {
		t.Error(err)
	}
}

func TestFenceposts(t *testing.T) {
	for _, tc := range []struct {
		surge, unavail     *meridianv1.IntOrString
		desired            int
		wantSurge, wantUna int
		wantErr            bool
	}{
		{nil, nil, 4, 1, 1, false},
		{nil, nil, 10, 3, 2, false}, // 2.5 rounds up for surge, down for unavailable
		{nil, nil, 1, 1, 0, false},
		{Int(0), Int(0), 5, 0, 1, false}, // both zero: one may be unavailable
		{Percent(0), Percent(0), 5, 0, 1, false},
		{Int(2), Percent(50), 3, 2, 1, false},
		{nil, Int(9), 3, 1, 3, false}, // never more unavailable than desired
		{&meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: "2"}}, nil, 4, 2, 1, false},
		{&meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: "x%"}}, nil, 4, 0, 0, true},
	} {
		s, u, err := Fenceposts(tc.surge, tc.unavail, tc.desired)
		if (err != nil) != tc.wantErr || (err == nil && (s != tc.wantSurge || u != tc.wantUna)) {
			t.Errorf("Fenceposts(%v, %v, %d) = %d, %d, %v; want %d, %d (error %v)", tc.surge, tc.unavail, tc.desired, s, u, err, tc.wantSurge, tc.wantUna, tc.wantErr)
		}
	}
}

func pod(name, node, phase string, readySince time.Time, created time.Time) *meridianv1.Pod {
	p := &meridianv1.Pod{
		Metadata: &meridianv1.ObjectMeta{Name: name, CreationTimestamp: timestamppb.New(created)},
		Spec:     &meridianv1.PodSpec{NodeName: node},
		Status:   &meridianv1.PodStatus{Phase: phase},
	}
	if !readySince.IsZero() {
		p.Status.Conditions = []*meridianv1.Condition{{Type: ConditionReady, Status: ConditionTrue, LastTransitionTime: timestamppb.New(readySince)}}
	}
	return p
}

func TestSortForDeletion(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	pods := []*meridianv1.Pod{
		pod("ready-long", "n", PodRunning, t0, t0),
		pod("ready-short", "n", PodRunning, t0.Add(time.Minute), t0),
		pod("running-notready", "n", PodRunning, time.Time{}, t0),
		pod("pending-old", "n", PodPending, time.Time{}, t0),
		pod("pending-new", "n", PodPending, time.Time{}, t0.Add(time.Second)),
		pod("unscheduled", "", "", time.Time{}, t0),
	}
	SortForDeletion(pods)
	var got []string
	for _, p := range pods {
		got = append(got, p.GetMetadata().GetName())
	}
	want := []string{"unscheduled", "pending-new", "pending-old", "running-notready", "ready-short", "ready-long"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}

func TestAvailability(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	p := pod("p", "n", PodRunning, now.Add(-3*time.Second), now)
	if !IsPodReady(p) || !IsPodAvailable(p, 0, now) || !IsPodAvailable(p, 3, now) || IsPodAvailable(p, 5, now) {
		t.Error("availability of a pod ready for 3 s is wrong")
	}
	if d, ok := AvailableIn(p, 5, now); !ok || d != 2*time.Second {
		t.Errorf("AvailableIn = %v, %v; want 2s", d, ok)
	}
	c := Count([]*meridianv1.Pod{p, pod("q", "n", PodPending, time.Time{}, now), pod("r", "n", PodFailed, time.Time{}, now)}, 5, now)
	if c.Replicas != 2 || c.Ready != 1 || c.Available != 0 || c.NextAvailable != 2*time.Second {
		t.Errorf("Count = %+v", c)
	}
}

func TestTemplateHash(t *testing.T) {
	a := &meridianv1.PodTemplateSpec{
		Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "fe"}},
		Spec:     &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "c", Image: "img:1"}}},
	}
	h1, err := TemplateHash(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // map order must not matter
		if h, _ := TemplateHash(a, nil); h != h1 {
			t.Fatalf("hash changed: %s then %s", h1, h)
		}
	}
	if !regexp.MustCompile(`^[bcdfghjklmnpqrstvwxz2456789]{1,10}$`).MatchString(h1) {
		t.Errorf("hash %q is not a short safe string", h1)
	}
	b := TemplateWithLabel(a, "app", "web")
	b.Spec.Containers[0].Image = "img:2"
	if h, _ := TemplateHash(b, nil); h == h1 {
		t.Error("a different template has the same hash")
	}
	if h, _ := TemplateHash(a, new(int32(1))); h == h1 {
		t.Error("a collision count does not change the hash")
	}
	labelled := TemplateWithLabel(a, PodTemplateHashLabel, h1)
	if !TemplatesEqual(labelled, a, PodTemplateHashLabel) || TemplatesEqual(labelled, a, "") {
		t.Error("TemplatesEqual does not ignore exactly the label it is told to")
	}
	if !TemplatesEqual(&meridianv1.PodTemplateSpec{Metadata: &meridianv1.ObjectMeta{}}, &meridianv1.PodTemplateSpec{}, "") {
		t.Error("empty metadata differs from none")
	}
}

func TestGenerateName(t *testing.T) {
	re := regexp.MustCompile(`^web-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	seen := map[string]bool{}
	for range 100 {
		n := GenerateName("web")
		if !re.MatchString(n) {
			t.Fatalf("name %q", n)
		}
		seen[n] = true
	}
	if len(seen) < 95 {
		t.Errorf("only %d distinct names of 100", len(seen))
	}
	long := GenerateName(string(make([]byte, 100)))
	if len(long) != 63 {
		t.Errorf("long prefix gives a %d-character name, want 63", len(long))
	}
}

func TestExpectations(t *testing.T) {
	e := NewExpectations(time.Minute)
	now := time.Unix(1_000_000, 0)
	e.now = func() time.Time { return now }
	if ok, _ := e.Satisfied("k"); !ok {
		t.Fatal("nothing expected, yet not satisfied")
	}
	e.ExpectCreations("k", "a", "b")
	e.ExpectDeletions("k", "c")
	e.CreationObserved("k", "a")
	e.CreationObserved("k", "a") // twice is harmless
	e.DeletionObserved("k", "b") // deleted before its creation was seen
	if ok, wait := e.Satisfied("k"); ok || wait != time.Minute {
		t.Fatalf("Satisfied = %v, %v; want false, 1m", ok, wait)
	}
	e.DeletionObserved("k", "c")
	if ok, _ := e.Satisfied("k"); !ok {
		t.Fatal("all observed, yet not satisfied")
	}
	e.ExpectCreations("k", "d")
	now = now.Add(2 * time.Minute)
	if ok, _ := e.Satisfied("k"); !ok {
		t.Fatal("expectations did not lapse")
	}
}

func TestSlowStartBatch(t *testing.T) {
	var calls atomic.Int32
	done, failed, err := SlowStartBatch(10, 1, func(int) error { calls.Add(1); return nil })
	if done != 10 || failed != 0 || err != nil || calls.Load() != 10 {
		t.Fatalf("all succeed: done %d failed %d err %v calls %d", done, failed, err, calls.Load())
	}
	calls.Store(0)
	done, failed, err = SlowStartBatch(10, 1, func(i int) error {
		calls.Add(1)
		if i >= 1 {
			return errors.New("quota")
		}
		return nil
	})
	// Batches 1 (ok) and 2 (both fail): the rest is skipped.
	if done != 1 || failed != 2 || err == nil || calls.Load() != 3 {
		t.Fatalf("failures: done %d failed %d err %v calls %d", done, failed, err, calls.Load())
	}
	if done, failed, err := SlowStartBatch(0, 1, func(int) error { return nil }); done != 0 || failed != 0 || err != nil {
		t.Fatal("zero calls")
	}
}

func TestSetCondition(t *testing.T) {
	t0, t1 := time.Unix(100, 0), time.Unix(200, 0)
	conds := SetCondition(nil, &meridianv1.Condition{Type: "A", Status: ConditionTrue}, t0)
	conds = SetCondition(conds, &meridianv1.Condition{Type: "A", Status: ConditionTrue, Message: "m"}, t1)
	if len(conds) != 1 || !conds[0].GetLastTransitionTime().AsTime().Equal(t0) || conds[0].GetMessage() != "m" {
		t.Fatalf("same status: %v", conds)
	}
	conds = SetCondition(conds, &meridianv1.Condition{Type: "A", Status: ConditionFalse}, t1)
	if !conds[0].GetLastTransitionTime().AsTime().Equal(t1) {
		t.Fatalf("new status keeps the old time: %v", conds)
	}
	if len(RemoveCondition(conds, "A")) != 0 {
		t.Fatal("RemoveCondition")
	}
}
