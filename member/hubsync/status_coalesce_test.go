package hubsync_test

import (
	"testing"
	"time"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestStatusAfterQuietGoesSoon: with an interval of an hour, the first
// change after the stream's full report (a quiet spell: no report of
// changes yet) is still reported, once changes pause for StatusQuiet.
func TestStatusAfterQuietGoesSoon(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.StatusInterval, cfg.StatusQuiet = time.Hour, 10*time.Millisecond
	_, s, _ := e.start(t, cfg)
	s.sendSnapshot(t, 5, 500, work(namespace("demo", false), 1), work(deployment("demo", "web", false, 2), 7))
	s.waitAck(t, 5)
	s.waitReport(t, 0, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetObservedGeneration() == 7
	})
}

// TestStatusUnderChurnEveryInterval: changes that keep coming are reported
// together, at most one report per StatusInterval, however short
// StatusQuiet is (a failover of many workloads must not become a report
// per change).
func TestStatusUnderChurnEveryInterval(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cfg := e.config()
	cfg.StatusInterval, cfg.StatusQuiet = 200*time.Millisecond, time.Microsecond
	_, s, _ := e.start(t, cfg)
	s.sendSnapshot(t, 5, 500, work(namespace("demo", false), 1), work(deployment("demo", "web", false, 2), 7))
	s.waitAck(t, 5)
	i := s.waitReport(t, 0, "deployment.demo.web", func(_ *meridianv1.StatusReport, w *meridianv1.WorkStatusReport) bool {
		return w.GetStatus().GetWorkload().GetObservedGeneration() == 7
	})
	const changes = 40
	start := time.Now()
	for n := 1; n <= changes; n++ {
		if _, err := e.st.Update(ctx, kDeployment, "demo", "web", func(o resource.Object) error {
			o.(*meridianv1.Deployment).Status = &meridianv1.DeploymentStatus{ObservedGeneration: 1, Replicas: changes, ReadyReplicas: int32(n)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
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
