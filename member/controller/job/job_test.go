package job_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/controller/job"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// fast is a controller config whose backoff does not slow tests down.
var fast = job.Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}

func TestJobCompletesWithParallelism(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	w := h.watchActive("pi")
	h.create(newJob("pi", ptr[int32](3), ptr[int32](2)))

	// Finish pods one at a time, as they come, until three have succeeded.
	for i := range 3 {
		var pods []*meridianv1.Pod
		waitFor(t, fmt.Sprintf("an active pod (round %d)", i), 10*time.Second, func() (bool, string) {
			pods = h.active("pi")
			return len(pods) > 0, "none"
		})
		if i == 0 && len(pods) == 1 {
			pods = h.waitActive("pi", 2)
		}
		h.setPhase(pods[0].GetMetadata().GetName(), "Succeeded", 0)
	}
	j := h.waitCondition("pi", job.ConditionComplete, 10*time.Second)

	st := j.GetStatus()
	if st.GetSucceeded() != 3 || st.GetActive() != 0 || st.GetFailed() != 0 {
		t.Fatalf("status succeeded=%d active=%d failed=%d, want 3/0/0", st.GetSucceeded(), st.GetActive(), st.GetFailed())
	}
	if st.GetStartTime() == nil || st.GetCompletionTime() == nil {
		t.Fatalf("status start=%v completion=%v; want both set", st.GetStartTime(), st.GetCompletionTime())
	}
	if c := cond(j, job.ConditionComplete); c.GetReason() != job.ReasonCompletionsReached {
		t.Fatalf("Complete reason = %q", c.GetReason())
	}
	w.settle(t, 3)
	maxActive, created := w.stats()
	if maxActive > 2 {
		t.Fatalf("%d pods were active at once; parallelism is 2", maxActive)
	}
	if created != 3 {
		t.Fatalf("%d pods were created, want 3", created)
	}
	// The pods carry the Job's labels and owner.
	for _, p := range h.pods("pi") {
		md := p.GetMetadata()
		if md.GetLabels()[job.LabelControllerUID] != j.GetMetadata().GetUid() || md.GetLabels()["app"] != "pi" {
			t.Fatalf("pod %s labels %v", md.GetName(), md.GetLabels())
		}
		if refs := md.GetOwnerReferences(); len(refs) != 1 || refs[0].GetUid() != j.GetMetadata().GetUid() || !refs[0].GetController() {
			t.Fatalf("pod %s owner references %v", md.GetName(), refs)
		}
	}
}

func TestJobReplacesFailedPodsWithBackoff(t *testing.T) {
	t.Parallel()
	const base = 300 * time.Millisecond
	h := newHarness(t, job.Config{BackoffBase: base, BackoffMax: 10 * base})
	h.create(newJob("retry", nil, nil))

	var failedAt time.Time
	for attempt := range 3 {
		pod := h.waitActive("retry", 1)[0]
		if attempt > 0 {
			// The n-th consecutive failure waits base * 2^(n-1).
			want := base << (attempt - 1)
			if gap := pod.GetMetadata().GetCreationTimestamp().AsTime().Sub(failedAt); gap < want {
				t.Fatalf("attempt %d: replacement created %v after the failure, want at least %v", attempt, gap, want)
			}
		}
		if attempt == 2 {
			h.setPhase(pod.GetMetadata().GetName(), "Succeeded", 0)
			break
		}
		failedAt = time.Now()
		h.setPhase(pod.GetMetadata().GetName(), "Failed", 0)
	}
	j := h.waitCondition("retry", job.ConditionComplete, 10*time.Second)
	if st := j.GetStatus(); st.GetFailed() != 2 || st.GetSucceeded() != 1 {
		t.Fatalf("status failed=%d succeeded=%d, want 2/1", st.GetFailed(), st.GetSucceeded())
	}
	if n := len(h.pods("retry")); n != 3 {
		t.Fatalf("%d pods, want 3 (failed pods are kept, as in Kubernetes)", n)
	}
}

func TestJobFailsWhenBackoffLimitExceeded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	j := newJob("doomed", nil, nil)
	j.Spec.BackoffLimit = ptr[int32](1)
	h.create(j)
	for range 2 {
		h.setPhase(h.waitActive("doomed", 1)[0].GetMetadata().GetName(), "Failed", 0)
	}
	got := h.waitCondition("doomed", job.ConditionFailed, 10*time.Second)
	if c := cond(got, job.ConditionFailed); c.GetReason() != job.ReasonBackoffLimitExceeded {
		t.Fatalf("Failed reason = %q, want %s", c.GetReason(), job.ReasonBackoffLimitExceeded)
	}
	if st := got.GetStatus(); st.GetFailed() != 2 || st.GetActive() != 0 {
		t.Fatalf("status failed=%d active=%d, want 2/0", st.GetFailed(), st.GetActive())
	}
	// No replacement comes after the Job failed.
	if n := len(h.pods("doomed")); n != 2 {
		t.Fatalf("%d pods, want 2", n)
	}
	if c := cond(got, job.ConditionComplete); c != nil {
		t.Fatalf("a failed job has condition Complete %v", c)
	}
}

func TestJobRestartsCountUnderOnFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	j := newJob("flaky", nil, nil)
	j.Spec.BackoffLimit = ptr[int32](2)
	j.Spec.Template.Spec.RestartPolicy = "OnFailure"
	h.create(j)
	pod := h.waitActive("flaky", 1)[0]
	h.setPhase(pod.GetMetadata().GetName(), "Running", 1)
	// One restart is within the limit of 2...
	h.setPhase(pod.GetMetadata().GetName(), "Running", 2)
	// ...the second reaches it: the Job fails and its pod is stopped.
	got := h.waitCondition("flaky", job.ConditionFailed, 10*time.Second)
	if c := cond(got, job.ConditionFailed); c.GetReason() != job.ReasonBackoffLimitExceeded {
		t.Fatalf("Failed reason = %q", c.GetReason())
	}
	waitFor(t, "the pod to be stopped", 10*time.Second, func() (bool, string) {
		left, _ := h.removeTerminating("flaky")
		n := len(h.pods("flaky"))
		return n == 0, fmt.Sprintf("%d pods, %d not marked", n, left)
	})
}

func TestJobActiveDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	j := newJob("slow", ptr[int32](4), ptr[int32](2))
	j.Spec.ActiveDeadlineSeconds = ptr[int64](1)
	created := h.create(j)
	for _, p := range h.waitActive("slow", 2) {
		h.setPhase(p.GetMetadata().GetName(), "Running", 0)
	}
	got := h.waitCondition("slow", job.ConditionFailed, 10*time.Second)
	c := cond(got, job.ConditionFailed)
	if c.GetReason() != job.ReasonDeadlineExceeded {
		t.Fatalf("Failed reason = %q, want %s", c.GetReason(), job.ReasonDeadlineExceeded)
	}
	if ran := c.GetLastTransitionTime().AsTime().Sub(created.GetMetadata().GetCreationTimestamp().AsTime()); ran < time.Second {
		t.Fatalf("job failed %v after creation, before its 1s deadline", ran)
	}
	// The pods run on a node: they are marked for deletion, for the node
	// agent to stop and remove.
	waitFor(t, "the running pods to be stopped", 10*time.Second, func() (bool, string) {
		left, _ := h.removeTerminating("slow")
		n := len(h.pods("slow"))
		return n == 0, fmt.Sprintf("%d pods, %d not marked", n, left)
	})
	if st := got.GetStatus(); st.GetActive() != 0 || st.GetFailed() != 2 {
		t.Fatalf("status active=%d failed=%d, want 0/2 (stopped pods count as failed)", st.GetActive(), st.GetFailed())
	}
}

func TestJobTTLAfterFinished(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	j := newJob("brief", nil, nil)
	j.Spec.TtlSecondsAfterFinished = ptr[int32](1)
	h.create(j)
	h.setPhase(h.waitActive("brief", 1)[0].GetMetadata().GetName(), "Succeeded", 0)
	done := h.waitCondition("brief", job.ConditionComplete, 10*time.Second)
	waitFor(t, "the job to be deleted", 10*time.Second, func() (bool, string) {
		_, ok := h.job("brief")
		return !ok, "still there"
	})
	if lived := time.Since(done.GetStatus().GetCompletionTime().AsTime()); lived < time.Second {
		t.Fatalf("job deleted %v after it finished, before its TTL of 1s", lived)
	}
	waitFor(t, "its pods to be deleted", 10*time.Second, func() (bool, string) {
		n := len(h.pods("brief"))
		return n == 0, fmt.Sprintf("%d pods", n)
	})
}

func TestJobWorkQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	w := h.watchActive("queue")
	h.create(newJob("queue", nil, ptr[int32](3)))
	pods := h.waitActive("queue", 3)
	// One worker finds the queue empty and succeeds: no new pod starts, and
	// the Job is done when the others are.
	h.setPhase(pods[0].GetMetadata().GetName(), "Succeeded", 0)
	h.setPhase(pods[1].GetMetadata().GetName(), "Succeeded", 0)
	if j, _ := h.job("queue"); cond(j, job.ConditionComplete) != nil {
		t.Fatal("work queue job complete while a pod still runs")
	}
	h.setPhase(pods[2].GetMetadata().GetName(), "Succeeded", 0)
	j := h.waitCondition("queue", job.ConditionComplete, 10*time.Second)
	if j.GetStatus().GetSucceeded() != 3 {
		t.Fatalf("succeeded = %d, want 3", j.GetStatus().GetSucceeded())
	}
	w.settle(t, 3)
	if _, created := w.stats(); created != 3 {
		t.Fatalf("%d pods created, want 3", created)
	}
}

func TestJobIndexed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	j := newJob("idx", ptr[int32](3), ptr[int32](3))
	j.Spec.CompletionMode = "Indexed"
	h.create(j)
	pods := h.waitActive("idx", 3)
	byIndex := map[string]*meridianv1.Pod{}
	for _, p := range pods {
		idx := p.GetMetadata().GetAnnotations()[job.AnnotationCompletionIndex]
		env := p.GetSpec().GetContainers()[0].GetEnv()
		if len(env) != 1 || env[0].GetName() != job.EnvCompletionIndex || env[0].GetValue() != idx {
			t.Fatalf("pod %s (index %q) env %v", p.GetMetadata().GetName(), idx, env)
		}
		byIndex[idx] = p
	}
	if len(byIndex) != 3 || byIndex["0"] == nil || byIndex["1"] == nil || byIndex["2"] == nil {
		t.Fatalf("indexes %v, want 0, 1 and 2", slices.Sorted(maps.Keys(byIndex)))
	}
	// Index 1 fails: its replacement takes index 1 again.
	h.setPhase(byIndex["0"].GetMetadata().GetName(), "Succeeded", 0)
	h.setPhase(byIndex["1"].GetMetadata().GetName(), "Failed", 0)
	h.setPhase(byIndex["2"].GetMetadata().GetName(), "Succeeded", 0)
	repl := h.waitActive("idx", 1)[0]
	if idx := repl.GetMetadata().GetAnnotations()[job.AnnotationCompletionIndex]; idx != "1" {
		t.Fatalf("replacement has index %q, want 1", idx)
	}
	h.setPhase(repl.GetMetadata().GetName(), "Succeeded", 0)
	got := h.waitCondition("idx", job.ConditionComplete, 10*time.Second)
	if st := got.GetStatus(); st.GetSucceeded() != 3 || st.GetFailed() != 1 {
		t.Fatalf("status succeeded=%d failed=%d, want 3/1", st.GetSucceeded(), st.GetFailed())
	}
}

func TestJobSuspendAndResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	j := newJob("paused", ptr[int32](2), ptr[int32](2))
	j.Spec.Suspend = true
	h.create(j)
	h.waitCondition("paused", job.ConditionSuspended, 10*time.Second)
	if n := len(h.pods("paused")); n != 0 {
		t.Fatalf("a suspended job has %d pods", n)
	}

	h.setSuspend("paused", false)
	h.waitActive("paused", 2)
	h.setSuspend("paused", true)
	waitFor(t, "the pods of the suspended job to stop", 10*time.Second, func() (bool, string) {
		n := len(h.pods("paused"))
		return n == 0, fmt.Sprintf("%d pods", n)
	})
	got := h.waitCondition("paused", job.ConditionSuspended, 10*time.Second)
	if got.GetStatus().GetActive() != 0 {
		t.Fatalf("suspended job status.active = %d", got.GetStatus().GetActive())
	}
}

func TestDeletingAJobDeletesItsPods(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fast)
	h.create(newJob("gone", ptr[int32](2), ptr[int32](2)))
	h.waitActive("gone", 2)
	if _, err := h.st.Delete(h.ctx, jobKind, ns, "gone", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pods to be deleted", 10*time.Second, func() (bool, string) {
		n := len(h.pods("gone"))
		return n == 0, fmt.Sprintf("%d pods", n)
	})
}
