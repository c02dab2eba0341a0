package cronjob

import (
	"fmt"
	"slices"
	"testing"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// t0 is 10:00 UTC on a Sunday; the tests run from there.
var t0 = time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)

func clock(hhmm string, sec int) time.Time {
	d, err := time.ParseDuration(hhmm)
	if err != nil {
		panic(err)
	}
	return t0.Add(d + time.Duration(sec)*time.Second)
}

func TestCronJobFiresOnSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clock("2m", 0))
	h.create(newCronJob("report", "*/5 * * * *"))

	h.syncNow("report", clock("4m", 59))
	h.wantJobs("report")

	h.syncNow("report", clock("5m", 10))
	h.wantJobs("report", clock("5m", 0))
	cj := h.cronJob("report")
	if got := cj.GetStatus().GetLastScheduleTime().AsTime(); !got.Equal(clock("5m", 0)) {
		t.Fatalf("lastScheduleTime = %v, want 10:05", got)
	}
	if a := cj.GetStatus().GetActive(); len(a) != 1 || a[0].GetName() != h.jobs("report")[0] {
		t.Fatalf("status.active = %v", a)
	}

	// The Job is built from the template and owned by the CronJob.
	o, err := h.st.Get(h.ctx, jobKind, ns, h.jobs("report")[0])
	if err != nil {
		t.Fatal(err)
	}
	j := o.(*meridianv1.Job)
	md := j.GetMetadata()
	if md.GetLabels()["app"] != "report" || md.GetAnnotations()["team"] != "batch" ||
		md.GetAnnotations()[AnnotationScheduledTimestamp] != "2026-02-01T10:05:00Z" {
		t.Fatalf("job metadata labels=%v annotations=%v", md.GetLabels(), md.GetAnnotations())
	}
	if refs := md.GetOwnerReferences(); len(refs) != 1 || refs[0].GetUid() != cj.GetMetadata().GetUid() || !refs[0].GetController() {
		t.Fatalf("job owner references = %v", refs)
	}
	if j.GetSpec().GetTemplate().GetSpec().GetContainers()[0].GetCommand()[0] != "date" {
		t.Fatalf("job spec = %v", j.GetSpec())
	}

	// Nothing new before the next time...
	h.syncNow("report", clock("9m", 0))
	h.wantJobs("report", clock("5m", 0))
	// ...and after a long gap only the most recent missed time runs.
	h.syncNow("report", clock("31m", 0))
	h.wantJobs("report", clock("5m", 0), clock("30m", 0))
	if a := h.cronJob("report").GetStatus().GetActive(); len(a) != 2 {
		t.Fatalf("Allow: %d active jobs, want 2", len(a))
	}
}

func TestCronJobTimeZone(t *testing.T) {
	t.Parallel()
	// 09:00 in Tokyo is 00:00 UTC.
	start := time.Date(2026, 2, 1, 23, 0, 0, 0, time.UTC)
	h := newHarness(t, start)
	cj := newCronJob("morning", "0 9 * * *")
	cj.Spec.TimeZone = "Asia/Tokyo"
	h.create(cj)
	h.syncNow("morning", start.Add(59*time.Minute))
	h.wantJobs("morning")
	h.syncNow("morning", start.Add(61*time.Minute))
	h.wantJobs("morning", time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC))
}

func TestCronJobForbidSkipsWhileActive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t0)
	cj := newCronJob("nightly", "* * * * *")
	cj.Spec.ConcurrencyPolicy = ForbidConcurrent
	cj.Spec.StartingDeadlineSeconds = ptr[int64](30)
	h.create(cj)

	h.syncNow("nightly", clock("1m", 5))
	h.wantJobs("nightly", clock("1m", 0))

	h.syncNow("nightly", clock("2m", 10))
	h.wantJobs("nightly", clock("1m", 0))
	if !slices.Contains(h.eventReasons("nightly"), "JobAlreadyActive") {
		t.Fatalf("no JobAlreadyActive event: %v", h.eventReasons("nightly"))
	}

	// The first Job ends after the skipped time's deadline: it stays skipped.
	h.clk.set(clock("2m", 45))
	h.finishJob(h.jobs("nightly")[0], true)
	h.syncNow("nightly", clock("2m", 45))
	h.wantJobs("nightly", clock("1m", 0))
	st := h.cronJob("nightly").GetStatus()
	if len(st.GetActive()) != 0 || !st.GetLastSuccessfulTime().AsTime().Equal(clock("2m", 45)) {
		t.Fatalf("status active=%v lastSuccessfulTime=%v", st.GetActive(), st.GetLastSuccessfulTime())
	}

	h.syncNow("nightly", clock("3m", 5))
	h.wantJobs("nightly", clock("1m", 0), clock("3m", 0))
}

func TestCronJobReplace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t0)
	cj := newCronJob("sweep", "* * * * *")
	cj.Spec.ConcurrencyPolicy = ReplaceConcurrent
	h.create(cj)

	h.syncNow("sweep", clock("1m", 5))
	h.wantJobs("sweep", clock("1m", 0))
	h.syncNow("sweep", clock("2m", 5))
	h.wantJobs("sweep", clock("2m", 0))
	// The replaced Job's deletion reaches the controller's cache after the
	// sync that deleted it; the status lists only the new Job once the
	// sync that follows has run.
	waitFor(t, "status.active to list only the new job", func() (bool, string) {
		a := h.cronJob("sweep").GetStatus().GetActive()
		return len(a) == 1 && a[0].GetName() == h.jobs("sweep")[0], fmt.Sprint(a)
	})
}

func TestCronJobHistoryLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t0)
	cj := newCronJob("hist", "* * * * *")
	cj.Spec.SuccessfulJobsHistoryLimit = ptr[int32](2)
	h.create(cj) // failedJobsHistoryLimit defaults to 1

	outcomes := []bool{true, true, false, true, false} // minutes 1..5
	for i, ok := range outcomes {
		now := clock("1m", 5).Add(time.Duration(i) * time.Minute)
		h.syncNow("hist", now)
		h.finishJob(h.jobs("hist")[len(h.jobs("hist"))-1], ok)
	}
	h.syncNow("hist", clock("6m", 5))
	// Kept: the two latest successes (minutes 2 and 4), the latest failure
	// (5), and the new active Job (6).
	h.wantJobs("hist", clock("2m", 0), clock("4m", 0), clock("5m", 0), clock("6m", 0))
}

func TestCronJobSuspend(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clock("2m", 0))
	cj := newCronJob("held", "*/5 * * * *")
	cj.Spec.Suspend = true
	h.create(cj)
	h.syncNow("held", clock("5m", 10))
	h.wantJobs("held")

	// Resumed before the next time, the missed time runs (no deadline set).
	h.update("held", func(cj *meridianv1.CronJob) { cj.Spec.Suspend = false })
	h.syncNow("held", clock("7m", 0))
	h.wantJobs("held", clock("5m", 0))
}

func TestCronJobInvalidScheduleMakesAnEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t0)
	cj := newCronJob("broken", "* * * * *")
	cj.Spec.TimeZone = "Mars/Olympus_Mons"
	h.create(cj)
	h.syncNow("broken", clock("5m", 0))
	h.syncNow("broken", clock("6m", 0))
	h.wantJobs("broken")
	var n int
	for _, r := range h.eventReasons("broken") {
		if r == "InvalidSchedule" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d InvalidSchedule events, want exactly 1: %v", n, h.eventReasons("broken"))
	}
}

func TestDeletingACronJobDeletesItsJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t0)
	h.create(newCronJob("gone", "* * * * *"))
	h.syncNow("gone", clock("1m", 5))
	h.wantJobs("gone", clock("1m", 0))
	if _, err := h.st.Delete(h.ctx, cronJobKind, ns, "gone", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to be deleted", func() (bool, string) {
		return len(h.jobs("gone")) == 0, "still there"
	})
}
