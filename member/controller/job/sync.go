package job

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// sync brings one Job's pods and status in line with its spec. It reads the
// informer caches, never changes what they hold, and writes through the
// store; it asks to be queued again (AddAfter) when a backoff, a deadline
// or a TTL will expire.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name := controller.SplitKey(key)
	obj, ok := c.jobs.Get(ns, name)
	if !ok {
		// The Job is gone: so must its pods be.
		err := c.deleteOrphans(ctx, key, ns, name, "")
		c.exp.forget(key)
		return err
	}
	job := obj.(*meridianv1.Job)
	if !c.exp.current(key, resourceVersion(job)) {
		return nil // the cache is behind our last status write; its event queues the Job again
	}
	settled := func(n string, add bool) bool {
		o, ok := c.pods.Get(ns, n)
		if add {
			return ok
		}
		return !ok || o.GetMetadata().GetDeletionTimestamp() != nil
	}
	if !c.exp.satisfied(key, settled) {
		// The informer event that settles it queues the Job again; the
		// timer covers an event lost for good.
		c.ctrl.Queue.AddAfter(key, expectationTTL)
		return nil
	}
	if err := c.deleteOrphans(ctx, key, ns, name, job.GetMetadata().GetUid()); err != nil {
		return err
	}
	pods, err := c.podsOf(job)
	if err != nil {
		return err
	}
	r := &run{c: c, ctx: ctx, key: key, job: job, now: c.cfg.Clock.Now(), pods: classify(pods)}
	r.status = &meridianv1.JobStatus{}
	if job.GetStatus() != nil {
		r.status = proto.Clone(job.GetStatus()).(*meridianv1.JobStatus)
	}
	err = r.reconcile()
	if werr := c.writeStatus(ctx, key, job, r.status); werr != nil {
		return errors.Join(err, werr)
	}
	if err != nil {
		return err
	}
	if r.finished() {
		return c.expire(ctx, key, job, r.status, r.now)
	}
	if r.requeue > 0 {
		c.ctrl.Queue.AddAfter(key, r.requeue)
	}
	return nil
}

// podsOf lists the pods job controls and labels as its own, from the
// cache's controller index.
func (c *Controller) podsOf(job *meridianv1.Job) ([]*meridianv1.Pod, error) {
	md := job.GetMetadata()
	objs, err := c.pods.ByIndex(controller.IndexController, controller.ControllerValue(md.GetNamespace(), md.GetUid()))
	if err != nil {
		return nil, err
	}
	var out []*meridianv1.Pod
	for _, o := range objs {
		if v, ok := o.GetMetadata().GetLabels()[LabelJobName]; ok && v == md.GetName() && controller.IsControlledBy(o, job) {
			out = append(out, o.(*meridianv1.Pod))
		}
	}
	return out, nil
}

// run is one sync of one Job: what it read and the status it builds.
type run struct {
	c       *Controller
	ctx     context.Context
	key     string
	job     *meridianv1.Job
	now     time.Time
	pods    podSet
	status  *meridianv1.JobStatus // the new status; written at the end
	requeue time.Duration         // when to look again; 0 for no timer
}

// reconcile decides what the Job needs, acts, and fills r.status.
func (r *run) reconcile() error {
	spec := r.job.GetSpec()
	r.count()
	if r.finished() {
		// Nothing may run for a finished Job (a deletion may have failed
		// when it finished).
		return r.stopActive(r.pods.active)
	}
	if spec.GetSuspend() {
		return r.suspend()
	}
	if c := condition(r.status.GetConditions(), ConditionSuspended); c != nil && c.GetStatus() == "True" {
		r.setCondition(ConditionSuspended, "False", ReasonResumed, "Job resumed")
		r.c.events.Eventf(r.ctx, r.job, controller.EventNormal, "Resumed", "Job resumed")
		r.status.StartTime = timestamppb.New(r.now) // the deadline counts from here
	}
	if r.status.StartTime == nil {
		r.status.StartTime = timestamppb.New(r.now)
	}

	if reason, msg := r.failure(); reason != "" {
		return r.fail(reason, msg)
	}
	if r.complete() {
		if err := r.stopActive(r.pods.active); err != nil {
			return err
		}
		r.setCondition(ConditionComplete, "True", ReasonCompletionsReached, "Reached expected number of succeeded pods")
		r.status.CompletionTime = timestamppb.New(r.now)
		r.c.events.Eventf(r.ctx, r.job, controller.EventNormal, "Completed", "Job completed")
		return nil
	}
	err := r.manage()
	if d := spec.ActiveDeadlineSeconds; d != nil {
		left := r.status.GetStartTime().AsTime().Add(time.Duration(*d) * time.Second).Sub(r.now)
		r.after(left)
	}
	return err
}

// count fills the status counters from the pods. succeeded and failed
// never go down: pods may be deleted after they were counted (a failed
// Job's stopped pods count as failed, as in Kubernetes).
func (r *run) count() {
	r.status.Active = int32(len(r.pods.active))
	r.status.Ready = ready(r.pods.active)
	r.status.Succeeded = max(r.status.GetSucceeded(), r.succeededCount())
	r.status.Failed = max(r.status.GetFailed(), int32(len(r.pods.failed)))
}

// succeededCount is the number of succeeded pods, or of succeeded indexes
// of an Indexed Job.
func (r *run) succeededCount() int32 {
	if !r.indexed() {
		return int32(len(r.pods.succeeded))
	}
	return int32(len(r.succeededIndexes()))
}

func (r *run) indexed() bool {
	return r.job.GetSpec().GetCompletionMode() == "Indexed" && r.job.GetSpec().Completions != nil
}

// succeededIndexes are the indexes in [0, completions) with a succeeded pod.
func (r *run) succeededIndexes() map[int]bool {
	out := map[int]bool{}
	n := int(r.job.GetSpec().GetCompletions())
	for _, p := range r.pods.succeeded {
		if i := podIndex(p); i >= 0 && i < n {
			out[i] = true
		}
	}
	return out
}

// finished reports whether the status says Complete or Failed.
func (r *run) finished() bool {
	for _, t := range []string{ConditionComplete, ConditionFailed} {
		if c := condition(r.status.GetConditions(), t); c != nil && c.GetStatus() == "True" {
			return true
		}
	}
	return false
}

// failure returns why the Job has failed, if it has.
func (r *run) failure() (reason, message string) {
	spec := r.job.GetSpec()
	limit := int32(DefaultBackoffLimit)
	if spec.BackoffLimit != nil {
		limit = *spec.BackoffLimit
	}
	if r.status.GetFailed() > limit {
		return ReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"
	}
	if spec.GetTemplate().GetSpec().GetRestartPolicy() == restartOnFailure {
		// Under OnFailure a failing container restarts in its pod; the
		// restarts count against the limit (Kubernetes' rule).
		n := restarts(r.pods.active)
		if (limit == 0 && n > 0) || (limit > 0 && n >= limit) {
			return ReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"
		}
	}
	if d := spec.ActiveDeadlineSeconds; d != nil {
		if !r.now.Before(r.status.GetStartTime().AsTime().Add(time.Duration(*d) * time.Second)) {
			return ReasonDeadlineExceeded, "Job was active longer than specified deadline"
		}
	}
	return "", ""
}

// fail stops the Job's pods and marks it Failed.
func (r *run) fail(reason, message string) error {
	stopped := len(r.pods.active)
	err := r.stopActive(r.pods.active)
	if err != nil {
		return err
	}
	r.status.Failed += int32(stopped)
	r.setCondition(ConditionFailed, "True", reason, message)
	r.c.events.Eventf(r.ctx, r.job, controller.EventWarning, reason, "%s", message)
	return nil
}

// complete reports whether enough pods have succeeded.
func (r *run) complete() bool {
	spec := r.job.GetSpec()
	switch {
	case spec.Completions == nil:
		// A work queue: done once a pod succeeded and the others stopped.
		return len(r.pods.succeeded) > 0 && len(r.pods.active) == 0
	case r.indexed():
		return len(r.succeededIndexes()) >= int(*spec.Completions)
	default:
		return r.status.GetSucceeded() >= *spec.Completions
	}
}

// suspend stops every pod of a suspended Job.
func (r *run) suspend() error {
	if err := r.stopActive(r.pods.active); err != nil {
		return err
	}
	if c := condition(r.status.GetConditions(), ConditionSuspended); c == nil || c.GetStatus() != "True" {
		r.setCondition(ConditionSuspended, "True", ReasonSuspended, "Job suspended")
		r.c.events.Eventf(r.ctx, r.job, controller.EventNormal, "Suspended", "Job suspended")
	}
	return nil
}

// stopActive deletes pods and counts them out of status.active.
func (r *run) stopActive(pods []*meridianv1.Pod) error {
	n, err := r.c.deletePods(r.ctx, r.job, r.key, pods)
	r.status.Active -= int32(n)
	r.status.Ready = max(0, r.status.Ready-int32(n))
	return err
}

// manage creates or deletes pods so that the right number are active.
func (r *run) manage() error {
	spec := r.job.GetSpec()
	parallelism := int32(DefaultParallelism)
	if spec.Parallelism != nil {
		parallelism = *spec.Parallelism
	}
	active := int32(len(r.pods.active))
	var want int32
	switch {
	case spec.Completions == nil && len(r.pods.succeeded) > 0:
		want = active // a work queue is draining: start nothing new
	case spec.Completions == nil:
		want = parallelism
	default:
		want = min(parallelism, max(0, *spec.Completions-r.succeededCount()))
	}
	if active > want {
		extra := append([]*meridianv1.Pod(nil), r.pods.active...)
		byDeletionPreference(extra)
		return r.stopActive(extra[:active-want])
	}
	if active == want {
		return nil
	}
	if n, last := consecutiveFailures(r.pods); n > 0 {
		if wait := last.Add(backoff(n, r.c.cfg.BackoffBase, r.c.cfg.BackoffMax)).Sub(r.now); wait > 0 {
			r.after(wait)
			return nil
		}
	}
	return r.create(r.newPods(int(want - active)))
}

// newPods builds n pods to create; an Indexed Job's take the lowest
// indexes that neither succeeded nor run.
func (r *run) newPods(n int) []*meridianv1.Pod {
	name := r.job.GetMetadata().GetName()
	out := make([]*meridianv1.Pod, 0, n)
	if !r.indexed() {
		for range n {
			out = append(out, newPod(r.job, podName(name, -1), -1))
		}
		return out
	}
	taken := r.succeededIndexes()
	for _, p := range r.pods.active {
		taken[podIndex(p)] = true
	}
	for i := 0; i < int(r.job.GetSpec().GetCompletions()) && len(out) < n; i++ {
		if !taken[i] {
			out = append(out, newPod(r.job, podName(name, i), i))
		}
	}
	return out
}

// create creates pods in batches of 1, 2, 4, ...: a Job whose pods cannot
// be created (a quota, a bad template) fails on one write, not on
// hundreds. The goroutines of a batch end before the next one starts.
func (r *run) create(pods []*meridianv1.Pod) error {
	for batch := 1; len(pods) > 0; batch *= 2 {
		n := min(batch, len(pods))
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, p := range pods[:n] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.createPod(p); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		r.status.Active += int32(n - len(errs))
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		pods = pods[n:]
	}
	return nil
}

func (r *run) createPod(p *meridianv1.Pod) error {
	name := p.GetMetadata().GetName()
	r.c.exp.expect(r.key, name, true)
	if _, err := r.c.store.Create(r.ctx, p); err != nil {
		r.c.exp.observed(r.key, name, true)
		return fmt.Errorf("failed to create pod %s: %w", name, err)
	}
	r.c.events.Eventf(r.ctx, r.job, controller.EventNormal, "SuccessfulCreate", "Created pod: %s", name)
	return nil
}

// after asks for the Job to be synced again in d (the earliest wins).
func (r *run) after(d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	if r.requeue == 0 || d < r.requeue {
		r.requeue = d
	}
}

// setCondition sets a condition of the new status; its transition time
// changes only when its status does.
func (r *run) setCondition(typ, status, reason, message string) {
	now := timestamppb.New(r.now)
	if c := condition(r.status.GetConditions(), typ); c != nil {
		if c.GetStatus() != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = status, reason, message
		return
	}
	r.status.Conditions = append(r.status.Conditions, &meridianv1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: now,
	})
}

func condition(conds []*meridianv1.Condition, typ string) *meridianv1.Condition {
	for _, c := range conds {
		if c.GetType() == typ {
			return c
		}
	}
	return nil
}

// writeStatus stores status as job's, unless it is unchanged.
func (c *Controller) writeStatus(ctx context.Context, key string, job *meridianv1.Job, status *meridianv1.JobStatus) error {
	old := job.GetStatus()
	if old == nil {
		old = &meridianv1.JobStatus{}
	}
	if proto.Equal(old, status) {
		return nil
	}
	md := job.GetMetadata()
	out, err := c.store.Update(ctx, jobKind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		j := o.(*meridianv1.Job)
		if j.GetMetadata().GetUid() != md.GetUid() {
			return errStale
		}
		j.Status = proto.Clone(status).(*meridianv1.JobStatus)
		return nil
	})
	switch {
	case err == nil:
		c.exp.wrote(key, resourceVersion(out))
	case !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, errStale):
		return fmt.Errorf("failed to update the status of job %s: %w", md.GetName(), err)
	}
	return nil
}

// resourceVersion is an object's resourceVersion as a number (0 if none).
func resourceVersion(o resource.Object) int64 {
	n, _ := strconv.ParseInt(o.GetMetadata().GetResourceVersion(), 10, 64)
	return n
}

// expire deletes a finished Job, and its pods, once its
// ttlSecondsAfterFinished has passed; until then it queues the Job again
// for that moment.
func (c *Controller) expire(ctx context.Context, key string, job *meridianv1.Job, status *meridianv1.JobStatus, now time.Time) error {
	ttl := job.GetSpec().TtlSecondsAfterFinished
	if ttl == nil {
		return nil
	}
	var finishedAt time.Time
	if status.GetCompletionTime() != nil {
		finishedAt = status.GetCompletionTime().AsTime()
	} else if f := condition(status.GetConditions(), ConditionFailed); f != nil {
		finishedAt = f.GetLastTransitionTime().AsTime()
	}
	if left := finishedAt.Add(time.Duration(*ttl) * time.Second).Sub(now); left > 0 {
		c.ctrl.Queue.AddAfter(key, left)
		return nil
	}
	// Delete exactly this Job (by uid): a Job created again under the same
	// name meanwhile is never deleted in its place.
	md := job.GetMetadata()
	deleted, err := controller.DeleteByUID(ctx, c.store, jobKind, md.GetNamespace(), md.GetName(), md.GetUid())
	if err != nil {
		return fmt.Errorf("failed to delete expired job %s: %w", md.GetName(), err)
	}
	if !deleted {
		return nil
	}
	c.cfg.Log.Debug("deleted finished job after its TTL", "job", key)
	pods, err := c.podsOf(job)
	if err != nil {
		return err
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].GetMetadata().GetName() < pods[j].GetMetadata().GetName() })
	_, err = c.deletePods(ctx, nil, key, pods)
	return err
}
