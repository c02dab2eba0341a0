package hubsync_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestStatusAfterQuietGoesSoon: with an interval of an hour, the first
// change after the stream's full report (a quiet spell: no report of
// changes yet) is still reported, once changes pause for StatusQuiet.
func TestStatusAfterQuietGoesSoon(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.StatusInterval, cfg.StatusQuiet = time.Hour, 10*time.Millisecond
	e.startWithDeployments(t, cfg) // waits for the report of web
}

// TestStatusUnderChurnEveryInterval: changes that keep coming are reported
// together, at most one report per StatusInterval, however short
// StatusQuiet is (a failover of many workloads must not become a report
// per change).
func TestStatusUnderChurnEveryInterval(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.StatusInterval, cfg.StatusQuiet = 200*time.Millisecond, time.Microsecond
	s, i := e.startWithDeployments(t, cfg)
	const changes = 40
	start := time.Now()
	for n := 1; n <= changes; n++ {
		e.setStatus(t, "web", &meridianv1.DeploymentStatus{ObservedGeneration: 1, Replicas: changes, ReadyReplicas: int32(n)})
	}
	elapsed := time.Since(start)
	j := s.waitReport(t, i+1, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetReadyReplicas() == changes
	})
	// One report per interval, and one for the last window.
	if got, most := j-i, int(elapsed/cfg.StatusInterval)+2; got > most {
		t.Errorf("%d changes over %s made %d reports, want at most %d", changes, elapsed.Round(time.Millisecond), got, most)
	}
}

// TestStatusNotSentForNewConditionTimesAlone: a status change that only
// restamps a condition (same status, reason and message) is not reported
// on its own; the new time goes with the next change that says something.
func TestStatusNotSentForNewConditionTimesAlone(t *testing.T) {
	e := newEnv(t)
	s, i := e.startWithDeployments(t, e.config())
	setProgressing := func(name string, at time.Time, ready int32) {
		t.Helper()
		e.setStatus(t, name, &meridianv1.DeploymentStatus{
			ObservedGeneration: 1, Replicas: 2, ReadyReplicas: ready,
			Conditions: []*meridianv1.Condition{{Type: "Progressing", Status: "True", Reason: "ReplicaSetUpdated",
				Message: "progressing", LastTransitionTime: timestamppb.New(at)}},
		})
	}
	t0 := time.Unix(1_700_000_000, 0)
	setProgressing("web", t0, 1)
	i = s.waitReport(t, i+1, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetReadyReplicas() == 1
	})
	// Restamped alone, then a change of api: web must not be in a report
	// up to api's.
	setProgressing("web", t0.Add(time.Second), 1)
	e.setStatus(t, "api", &meridianv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1})
	j := s.waitReport(t, i+1, "deployment.demo.api", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetReadyReplicas() == 1
	})
	s.notReported(t, i+1, j, "deployment.demo.web", "a report of web whose conditions were only restamped")
	// The next real change carries the new time.
	setProgressing("web", t0.Add(2*time.Second), 2)
	k := s.waitReport(t, j+1, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetReadyReplicas() == 2
	})
	for _, w := range s.reportsCopy()[k].GetWorks() {
		if w.GetWork() != "deployment.demo.web" {
			continue
		}
		if c := w.GetStatus().GetWorkload().GetConditions(); len(c) != 1 || !c[0].GetLastTransitionTime().AsTime().Equal(t0.Add(2*time.Second)) {
			t.Errorf("conditions reported with the change: %v, want Progressing at %s", c, t0.Add(2*time.Second))
		}
	}
}
