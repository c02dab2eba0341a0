package drill

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// execution is one drill being carried out by its goroutine.
type execution struct {
	r      *Runner
	name   string
	spec   *meridianv1.DrillSpec
	status *meridianv1.DrillStatus
	dirty  bool
	last   time.Time // last status write
	// mu guards the timeline and dirty against the goroutines of each
	// (step); everything else of the status is the drill goroutine's.
	mu sync.Mutex

	scope     map[string]bool
	survivors []*framework.Cluster
	ws        []*workload
	rto, rpo  time.Duration // objectives (0: none)
}

// stopError ends a drill early: aborted by request or by a guard.
type stopError struct{ reason string }

func (s *stopError) Error() string { return s.reason }

func (r *Runner) newExecution(d *meridianv1.Drill) *execution {
	st, _ := proto.Clone(d.GetStatus()).(*meridianv1.DrillStatus)
	if st == nil {
		st = &meridianv1.DrillStatus{}
	}
	return &execution{r: r, name: d.GetMetadata().GetName(), spec: d.GetSpec(), status: st}
}

func (e *execution) now() time.Time { return e.r.cfg.Now() }

// step appends a step to the timeline.
func (e *execution) step(step, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.status.Timeline = append(e.status.Timeline, &meridianv1.DrillStep{Time: ts(e.now()), Step: step, Detail: detail})
	e.dirty = true
	e.mu.Unlock()
	e.r.log.Info("drill step", "drill", e.name, "step", step, "detail", detail)
}

// flush writes the status and returns the drill as stored.
func (e *execution) flush(ctx context.Context) (*meridianv1.Drill, error) {
	st := proto.Clone(e.status).(*meridianv1.DrillStatus)
	st.Workloads = nil
	for _, w := range e.ws {
		st.Workloads = append(st.Workloads, proto.Clone(w.result).(*meridianv1.DrillWorkloadResult))
	}
	if len(e.ws) == 0 {
		st.Workloads = e.status.GetWorkloads()
	}
	d, err := e.r.updateDrill(ctx, e.name, st)
	if err != nil {
		return nil, err
	}
	e.dirty, e.last = false, e.now()
	return d, nil
}

// admit checks the guards and, if they pass, marks the drill Running; a
// refused drill is marked Refused (refusal says why).
func (r *Runner) admit(ctx context.Context, d *meridianv1.Drill, all []*meridianv1.Drill) (*execution, string, error) {
	e := r.newExecution(d)
	e.status = &meridianv1.DrillStatus{Phase: PhaseRunning, StartTime: ts(r.cfg.Now())}
	refusal, err := e.prepare(ctx, d, all)
	if err != nil {
		return nil, "", err
	}
	if refusal != "" {
		e.step("Refused", "%s", refusal)
		e.finishWith(ctx, PhaseRefused, VerdictFail, refusal)
		return e, refusal, nil
	}
	if _, err := e.flush(ctx); err != nil {
		return nil, "", err
	}
	return e, "", nil
}

// prepare resolves the scope and the workloads and checks the guards.
func (e *execution) prepare(ctx context.Context, d *meridianv1.Drill, all []*meridianv1.Drill) (string, error) {
	r, spec := e.r, d.GetSpec()
	var err error
	if e.rto, err = objective(spec.GetRto()); err != nil {
		return "rto: " + err.Error(), nil
	}
	if e.rpo, err = objective(spec.GetRpo()); err != nil {
		return "rpo: " + err.Error(), nil
	}
	switch spec.GetMode() {
	case ModeTest, ModePlanned, ModeUnplanned:
	default:
		return fmt.Sprintf("mode %q is not test, planned or unplanned", spec.GetMode()), nil
	}
	if spec.GetMode() != ModeTest && r.cfg.Engine == nil {
		return "this hub runs drills without a placement engine: only test drills", nil
	}
	clusters, err := r.clusters(ctx)
	if err != nil {
		return "", err
	}
	e.scope = scopeClusters(spec.GetScope(), clusters)
	if len(e.scope) == 0 {
		return fmt.Sprintf("no cluster is in scope %s", ScopeString(spec.GetScope())), nil
	}
	for _, o := range all {
		if o.GetMetadata().GetName() == d.GetMetadata().GetName() || o.GetStatus().GetPhase() != PhaseRunning {
			continue
		}
		for c := range scopeClusters(o.GetSpec().GetScope(), clusters) {
			if e.scope[c] {
				return fmt.Sprintf("drill %s is running on scope %s (cluster %s): one drill per scope at a time",
					o.GetMetadata().GetName(), ScopeString(o.GetSpec().GetScope()), c), nil
			}
		}
	}
	if bad := notReady(clusters); len(bad) > 0 {
		return "a real failure is under way: " + strings.Join(bad, ", "), nil
	}
	for _, c := range clusters {
		if !e.scope[c.Name] {
			e.survivors = append(e.survivors, c)
		}
	}
	if len(e.survivors) == 0 {
		return fmt.Sprintf("no cluster survives scope %s", ScopeString(spec.GetScope())), nil
	}
	if e.ws, err = r.affected(ctx, spec, e.scope); err != nil {
		return "", err
	}
	if spec.GetMode() == ModeTest && !spec.GetIncludeSingletons() {
		e.skipSingletons()
	}
	if short := capacityShortfall(e.ws, e.survivors); short != "" {
		return short, nil
	}
	if spec.GetMode() != ModeTest && r.cfg.Fence != nil && slices.ContainsFunc(e.ws, func(w *workload) bool { return w.singleton }) {
		if _, ok := r.cfg.Fence.(Revoker); !ok {
			return "singletons: " + errNoRevoker.Error(), nil
		}
	}
	if spec.GetMode() != ModeTest {
		if refusal, err := e.placeAll(ctx, clusters); refusal != "" || err != nil {
			return refusal, err
		}
	}
	e.step("Start", "%s drill of %s (%s): %d workloads; survivors %s", spec.GetMode(), ScopeString(spec.GetScope()),
		strings.Join(slices.Sorted(maps.Keys(e.scope)), ", "), len(e.ws), clusterNames(e.survivors))
	if sk := e.status.GetSkipped(); len(sk) > 0 {
		names := make([]string, len(sk))
		for i, s := range sk {
			names[i] = s.GetWorkload().GetKind() + "/" + s.GetWorkload().GetNamespace() + "/" + s.GetWorkload().GetName()
		}
		e.step("Skipped", "%d singletons not copied (a copy could write to production's storage; --include-singletons copies them): %s",
			len(sk), strings.Join(firstN(names, 5), ", "))
	}
	return "", nil
}

// SkipSingletonReason is why a test drill skips a singleton by default.
const SkipSingletonReason = "a singleton (a StatefulSet, or annotated meridian.io/singleton): its copy could write to the same external storage as production; run the drill with --include-singletons (spec.includeSingletons) to copy it"

// skipSingletons takes the singletons out of a test drill's workloads and
// records each in status.skipped: a copy in the drill namespace is another
// workload with another fencing identity, so nothing would keep it from
// writing to whatever storage its pod template points at.
func (e *execution) skipSingletons() {
	kept := e.ws[:0]
	for _, w := range e.ws {
		if !w.singleton {
			kept = append(kept, w)
			continue
		}
		e.status.Skipped = append(e.status.Skipped, &meridianv1.DrillSkippedWorkload{
			Workload: proto.Clone(w.result.GetWorkload()).(*meridianv1.ObjectReference), Reason: SkipSingletonReason})
	}
	e.ws = kept
}

func clusterNames(cs []*framework.Cluster) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// objective parses an RTO or RPO objective ("": none).
func objective(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 30s", s)
	}
	return d, nil
}

// run carries the drill out and records its verdict.
func (e *execution) run(ctx context.Context) {
	var err error
	if len(e.ws) == 0 {
		if n := len(e.status.GetSkipped()); n > 0 {
			e.step("Verdict", "every selected workload in the scope was skipped (%d)", n)
			e.finish(ctx, PhaseSucceeded, fmt.Sprintf("every selected workload in the scope was skipped (%d singletons): nothing to rehearse", n))
			return
		}
		e.step("Verdict", "no selected workload runs in the scope")
		e.finish(ctx, PhaseSucceeded, "no selected workload runs in the scope: nothing to rehearse")
		return
	}
	switch e.spec.GetMode() {
	case ModeTest:
		err = e.runTest(ctx)
	case ModePlanned:
		err = e.runPlanned(ctx)
	case ModeUnplanned:
		err = e.runUnplanned(ctx)
	}
	if ctx.Err() != nil {
		return // the hub lost leadership or stops: the next leader undoes the drill
	}
	var stop *stopError
	switch {
	case errors.As(err, &stop):
		e.step("Abort", "%s", stop.reason)
		msg := "aborted: " + stop.reason + "; the state before the drill was restored"
		if rerr := e.restore(ctx, false); rerr != nil {
			msg = fmt.Sprintf("aborted: %s; failed to restore the state before the drill: %v", stop.reason, rerr)
		}
		e.finish(ctx, PhaseAborted, msg)
	case err != nil:
		e.step("Error", "%v", err)
		msg := err.Error()
		if rerr := e.restore(ctx, false); rerr != nil {
			msg = fmt.Sprintf("%v; failed to restore the state before the drill: %v", err, rerr)
		}
		e.finish(ctx, PhaseFailed, msg)
	default:
		e.verdict(ctx)
	}
}

// verdict judges the measurements against the objectives.
func (e *execution) verdict(ctx context.Context) {
	var worstRTO, worstRPO time.Duration
	var missed []string
	for _, w := range e.ws {
		res := w.result
		worstRTO = max(worstRTO, res.GetRto().AsDuration())
		worstRPO = max(worstRPO, res.GetRpo().AsDuration())
		if !res.GetRtoMet() || !res.GetRpoMet() {
			missed = append(missed, w.id())
		}
	}
	e.status.Rto = durationpb.New(worstRTO)
	if slices.ContainsFunc(e.ws, func(w *workload) bool { return w.result.GetRpo() != nil }) {
		e.status.Rpo = durationpb.New(worstRPO)
	}
	skipped := ""
	if n := len(e.status.GetSkipped()); n > 0 {
		skipped = fmt.Sprintf("; %d singletons skipped", n)
	}
	if len(missed) == 0 {
		msg := fmt.Sprintf("%d workloads recovered; worst RTO %s", len(e.ws), worstRTO.Round(time.Millisecond))
		if e.rto > 0 {
			msg += " (objective " + e.rto.String() + ")"
		}
		msg += skipped
		e.step("Verdict", "Pass: %s", msg)
		e.finish(ctx, PhaseSucceeded, msg)
		return
	}
	msg := fmt.Sprintf("%d of %d workloads missed an objective (%s); worst RTO %s", len(missed), len(e.ws), strings.Join(firstN(missed, 5), ", "), worstRTO.Round(time.Millisecond))
	msg += skipped
	e.step("Verdict", "Fail: %s", msg)
	e.finish(ctx, PhaseFailed, msg)
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("%d more", len(s)-n))
}

// finish ends the drill: Succeeded passes, anything else fails.
func (e *execution) finish(ctx context.Context, phase, msg string) {
	verdict := VerdictFail
	if phase == PhaseSucceeded {
		verdict = VerdictPass
	}
	e.finishWith(ctx, phase, verdict, msg)
}

func (e *execution) finishWith(ctx context.Context, phase, verdict, msg string) {
	e.status.Phase, e.status.Verdict, e.status.Message = phase, verdict, msg
	e.status.CompletionTime = ts(e.now())
	if _, err := e.flush(ctx); err != nil && ctx.Err() == nil {
		e.r.log.Error("failed to record the end of a drill", "drill", e.name, "err", err)
	}
}

// measureRPO reads a workload's replication lag at the disruption.
func (e *execution) measureRPO(w *workload) {
	w.result.RpoMet = true
	lag, ok := w.obj.GetMetadata().GetAnnotations()[AnnotationReplicationLag]
	if !ok {
		return
	}
	d, err := parseSeconds(lag)
	if err != nil {
		w.result.RpoMet = false
		w.result.Message = fmt.Sprintf("%s %q: %v", AnnotationReplicationLag, lag, err)
		return
	}
	w.result.Rpo = durationpb.New(d)
	w.result.RpoMet = e.rpo == 0 && e.spec.GetRpo() == "" || d <= e.rpo
}

// recovered records that w's replicas were ready at at.
func (e *execution) recovered(w *workload, rto time.Duration, at time.Time) {
	w.ready = true
	w.result.ReadyAt = ts(at)
	w.result.Rto = durationpb.New(rto)
	w.result.RtoMet = e.spec.GetRto() == "" || rto <= e.rto
	e.dirty = true
}

// deadline is when a disruption that began at start is given up: the
// hard cap, or ObjectiveFactor times the RTO objective when that comes
// first.
func (e *execution) deadline(start time.Time) time.Time {
	d := e.r.cfg.MaxDuration
	if e.rto > 0 {
		d = min(d, ObjectiveFactor*e.rto)
	}
	return start.Add(d)
}

// wait polls done until it reports true, checking the guards (abort, a
// real failure) and writing progress between polls; past deadline the
// drill is aborted.
func (e *execution) wait(ctx context.Context, what string, deadline time.Time, done func(context.Context) (bool, error)) error {
	t := time.NewTicker(e.r.cfg.Poll)
	defer t.Stop()
	for {
		ok, err := done(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := e.guards(ctx); err != nil {
			return err
		}
		if e.now().After(deadline) {
			return &stopError{reason: fmt.Sprintf("%s took longer than %s", what, deadline.Sub(e.start()).Round(time.Second))}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (e *execution) start() time.Time { return e.status.GetStartTime().AsTime() }

// guards writes progress and stops the drill if it was aborted or a
// cluster failed.
func (e *execution) guards(ctx context.Context) error {
	var d *meridianv1.Drill
	var err error
	if e.dirty || e.now().Sub(e.last) > time.Second {
		d, err = e.flush(ctx)
	} else {
		var o resource.Object
		if o, err = e.r.cfg.Store.Get(ctx, drillKind, "", e.name); err == nil {
			d = o.(*meridianv1.Drill)
		}
	}
	if err != nil {
		return fmt.Errorf("failed to read drill %s: %w", e.name, err)
	}
	if d.GetSpec().GetAbort() {
		return &stopError{reason: "requested by the operator (meridian drill abort)"}
	}
	clusters, err := e.r.clusters(ctx)
	if err != nil {
		return err
	}
	if bad := notReady(clusters); len(bad) > 0 {
		return &stopError{reason: "a real failure: " + strings.Join(bad, ", ")}
	}
	return nil
}
