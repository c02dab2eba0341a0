package cronjob

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// nextSlack is added to the wait for the next scheduled time, so that the
// sync it triggers runs just after that time and not a hair before.
const nextSlack = 100 * time.Millisecond

// sync brings one CronJob up to date: its status from its Jobs, its history
// pruned, and a Job for the most recent scheduled time that has none.
func (c *Controller) sync(ctx context.Context, key string) error {
	_, err := c.syncCronJob(ctx, key)
	return err
}

// syncCronJob is sync; looked is false when it left the CronJob alone
// because the cache had not caught up with its last status write yet (the
// event that brings it queues the CronJob again).
func (c *Controller) syncCronJob(ctx context.Context, key string) (looked bool, err error) {
	ns, name := controller.SplitKey(key)
	obj, ok := c.cronJobs.Get(ns, name)
	if !ok {
		c.written.forget(key)
		c.notes.forget(key)
		return true, c.deleteJobs(ctx, c.orphans(ns, name, ""))
	}
	cj := obj.(*meridianv1.CronJob)
	if !c.written.current(key, resourceVersion(cj)) {
		return false, nil
	}
	return true, c.reconcile(ctx, key, cj)
}

// reconcile is the sync of a CronJob the cache is current about.
func (c *Controller) reconcile(ctx context.Context, key string, cj *meridianv1.CronJob) error {
	if err := c.deleteJobs(ctx, c.orphans(cj.GetMetadata().GetNamespace(), cj.GetMetadata().GetName(), cj.GetMetadata().GetUid())); err != nil {
		return err
	}
	status := &meridianv1.CronJobStatus{}
	if cj.GetStatus() != nil {
		status = proto.Clone(cj.GetStatus()).(*meridianv1.CronJobStatus)
	}
	now := c.clock.Now()
	jobs := c.jobsOf(cj)
	err := c.refreshActive(ctx, cj, jobs, status)
	if err == nil {
		err = c.pruneHistory(ctx, cj, jobs)
	}
	var next time.Time
	if err == nil {
		next, err = c.schedule(ctx, cj, status, now)
	}
	if werr := c.writeStatus(ctx, key, cj, status); werr != nil {
		return errors.Join(err, werr)
	}
	if err != nil {
		return err
	}
	if !next.IsZero() {
		c.ctrl.Queue.AddAfter(key, next.Sub(now)+nextSlack)
	}
	return nil
}

// jobsOf lists the Jobs cj controls, from the cache.
func (c *Controller) jobsOf(cj *meridianv1.CronJob) []*meridianv1.Job {
	var out []*meridianv1.Job
	for _, o := range c.jobs.List(cj.GetMetadata().GetNamespace(), nil) {
		if controller.IsControlledBy(o, cj) {
			out = append(out, o.(*meridianv1.Job))
		}
	}
	return out
}

// orphans lists the Jobs controlled by a CronJob named name in ns that is
// gone, or was replaced by one with another uid than keepUID.
func (c *Controller) orphans(ns, name, keepUID string) []*meridianv1.Job {
	var out []*meridianv1.Job
	for _, o := range c.jobs.List(ns, nil) {
		ref := controller.ControllerOf(o)
		if ref != nil && ref.GetKind() == cronJobKind.Kind && ref.GetName() == name && ref.GetUid() != keepUID {
			out = append(out, o.(*meridianv1.Job))
		}
	}
	return out
}

// refreshActive rebuilds status.active from the Jobs and advances
// lastSuccessfulTime. A Job in status.active that the cache does not show
// yet (just created) is looked up in the store before it is dropped.
func (c *Controller) refreshActive(ctx context.Context, cj *meridianv1.CronJob, jobs []*meridianv1.Job, status *meridianv1.CronJobStatus) error {
	var active []*meridianv1.ObjectReference
	cached := map[string]bool{}
	for _, j := range jobs {
		cached[j.GetMetadata().GetName()] = true
		if done, _ := finished(j); !done {
			active = append(active, jobRef(j))
		}
		if ct := j.GetStatus().GetCompletionTime(); ct != nil && isComplete(j) {
			if status.LastSuccessfulTime == nil || ct.AsTime().After(status.LastSuccessfulTime.AsTime()) {
				status.LastSuccessfulTime = ct
			}
		}
	}
	for _, ref := range status.GetActive() {
		if cached[ref.GetName()] {
			continue
		}
		o, err := c.store.Get(ctx, jobKind, ref.GetNamespace(), ref.GetName())
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("failed to read job %s: %w", ref.GetName(), err)
		}
		if done, _ := finished(o.(*meridianv1.Job)); !done && o.GetMetadata().GetUid() == ref.GetUid() {
			active = append(active, ref)
		}
	}
	sort.Slice(active, func(i, j int) bool { return active[i].GetName() < active[j].GetName() })
	status.Active = active
	return nil
}

// pruneHistory deletes the oldest finished Jobs beyond the history limits.
func (c *Controller) pruneHistory(ctx context.Context, cj *meridianv1.CronJob, jobs []*meridianv1.Job) error {
	var succeeded, failed []*meridianv1.Job
	for _, j := range jobs {
		switch done, ok := finished(j); {
		case done && ok:
			succeeded = append(succeeded, j)
		case done:
			failed = append(failed, j)
		}
	}
	spec := cj.GetSpec()
	keepOK, keepFailed := int32(DefaultSuccessfulJobsHistoryLimit), int32(DefaultFailedJobsHistoryLimit)
	if spec.SuccessfulJobsHistoryLimit != nil {
		keepOK = *spec.SuccessfulJobsHistoryLimit
	}
	if spec.FailedJobsHistoryLimit != nil {
		keepFailed = *spec.FailedJobsHistoryLimit
	}
	var prune []*meridianv1.Job
	for _, set := range []struct {
		jobs []*meridianv1.Job
		keep int32
	}{{succeeded, keepOK}, {failed, keepFailed}} {
		if int32(len(set.jobs)) <= set.keep {
			continue
		}
		sort.Slice(set.jobs, func(i, j int) bool { return scheduledTime(set.jobs[i]).Before(scheduledTime(set.jobs[j])) })
		prune = append(prune, set.jobs[:int32(len(set.jobs))-set.keep]...)
	}
	for _, j := range prune {
		c.events.Eventf(ctx, cj, controller.EventNormal, "SuccessfulDelete", "Deleted job %s", j.GetMetadata().GetName())
	}
	return c.deleteJobs(ctx, prune)
}

// schedule starts the Job of the most recent scheduled time, if it is due
// and allowed, and returns the next scheduled time (zero: no timer).
func (c *Controller) schedule(ctx context.Context, cj *meridianv1.CronJob, status *meridianv1.CronJobStatus, now time.Time) (time.Time, error) {
	spec := cj.GetSpec()
	if spec.GetSuspend() {
		return time.Time{}, nil // resuming is a spec change, which queues the CronJob
	}
	sched, err := ParseSchedule(spec.GetSchedule(), spec.GetTimeZone())
	if err != nil {
		// Only a spec change can fix it, and that queues the CronJob.
		if c.notes.first(controller.Key(cj), "invalid "+err.Error()) {
			c.events.Eventf(ctx, cj, controller.EventWarning, "InvalidSchedule", "%v", err)
		}
		return time.Time{}, nil
	}
	next := sched.Next(now)

	earliest := cj.GetMetadata().GetCreationTimestamp().AsTime()
	if status.LastScheduleTime != nil {
		earliest = status.LastScheduleTime.AsTime()
	}
	if d := spec.StartingDeadlineSeconds; d != nil {
		if floor := now.Add(-time.Duration(*d) * time.Second); floor.After(earliest) {
			earliest = floor
		}
	}
	scheduled, missed := sched.mostRecent(earliest, now)
	if scheduled.IsZero() {
		return next, nil
	}
	at := scheduled.UTC().Format(time.RFC3339)
	if missed > maxMissedToCount && c.notes.first(controller.Key(cj), "toomany "+at) {
		c.events.Eventf(ctx, cj, controller.EventWarning, "TooManyMissedTimes",
			"too many missed start times (> %d); set or decrease .spec.startingDeadlineSeconds or check clock skew", maxMissedToCount)
	}
	name := jobName(cj, scheduled)
	if _, ok := c.jobs.Get(cj.GetMetadata().GetNamespace(), name); ok {
		status.LastScheduleTime = timestamppb.New(scheduled)
		return next, nil // started already; the status write that said so was lost
	}
	if d := spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		if c.notes.first(controller.Key(cj), "missed "+at) {
			c.events.Eventf(ctx, cj, controller.EventWarning, "MissSchedule", "Missed scheduled time to start a job: %s", at)
		}
		return next, nil
	}

	switch spec.GetConcurrencyPolicy() {
	case ForbidConcurrent:
		if len(status.Active) > 0 {
			if c.notes.first(controller.Key(cj), "forbid "+at) {
				c.events.Eventf(ctx, cj, controller.EventNormal, "JobAlreadyActive",
					"Not starting job for %s because prior execution is running and concurrency policy is Forbid", at)
			}
			return next, nil
		}
	case ReplaceConcurrent:
		for _, ref := range status.Active {
			if _, err := controller.DeleteByUID(ctx, c.store, jobKind, ref.GetNamespace(), ref.GetName(), ref.GetUid()); err != nil {
				return next, fmt.Errorf("failed to delete active job %s: %w", ref.GetName(), err)
			}
			c.events.Eventf(ctx, cj, controller.EventNormal, "SuccessfulDelete", "Deleted job %s", ref.GetName())
		}
		status.Active = nil
	}

	created, err := c.store.Create(ctx, newJob(cj, name, scheduled))
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		// Created by an earlier sync whose status write was lost: adopt
		// it if it is ours.
		o, gerr := c.store.Get(ctx, jobKind, cj.GetMetadata().GetNamespace(), name)
		if gerr != nil {
			return next, fmt.Errorf("failed to read job %s: %w", name, gerr)
		}
		if !controller.IsControlledBy(o, cj) {
			return next, fmt.Errorf("failed to create job %s: a job of that name exists and is not this cronjob's", name)
		}
		created = o
	case err != nil:
		c.events.Eventf(ctx, cj, controller.EventWarning, "FailedCreate", "Error creating job: %v", err)
		return next, fmt.Errorf("failed to create job %s: %w", name, err)
	default:
		c.events.Eventf(ctx, cj, controller.EventNormal, "SuccessfulCreate", "Created job %s", name)
	}
	if done, _ := finished(created.(*meridianv1.Job)); !done {
		status.Active = append(status.Active, jobRef(created.(*meridianv1.Job)))
	}
	status.LastScheduleTime = timestamppb.New(scheduled)
	return next, nil
}

// jobName is the name of cj's Job for a scheduled time.
func jobName(cj *meridianv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.GetMetadata().GetName(), scheduled.Unix()/60)
}

// newJob builds cj's Job for a scheduled time from its jobTemplate.
func newJob(cj *meridianv1.CronJob, name string, scheduled time.Time) *meridianv1.Job {
	tmpl := cj.GetSpec().GetJobTemplate()
	labels := map[string]string{}
	for k, v := range tmpl.GetMetadata().GetLabels() {
		labels[k] = v
	}
	annotations := map[string]string{AnnotationScheduledTimestamp: scheduled.UTC().Format(time.RFC3339)}
	for k, v := range tmpl.GetMetadata().GetAnnotations() {
		annotations[k] = v
	}
	spec := &meridianv1.JobSpec{}
	if tmpl.GetSpec() != nil {
		spec = proto.Clone(tmpl.GetSpec()).(*meridianv1.JobSpec)
	}
	return &meridianv1.Job{
		ApiVersion: jobKind.APIVersions[0],
		Kind:       jobKind.Kind,
		Metadata: &meridianv1.ObjectMeta{
			Name:            name,
			Namespace:       cj.GetMetadata().GetNamespace(),
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(cj)},
		},
		Spec: spec,
	}
}

func jobRef(j *meridianv1.Job) *meridianv1.ObjectReference {
	md := j.GetMetadata()
	return &meridianv1.ObjectReference{
		ApiVersion: jobKind.APIVersions[0], Kind: jobKind.Kind,
		Namespace: md.GetNamespace(), Name: md.GetName(), Uid: md.GetUid(),
	}
}

// finished reports whether a Job has finished, and whether it succeeded.
func finished(j *meridianv1.Job) (done, succeeded bool) {
	for _, c := range j.GetStatus().GetConditions() {
		if c.GetStatus() != "True" {
			continue
		}
		switch c.GetType() {
		case "Complete":
			return true, true
		case "Failed":
			return true, false
		}
	}
	return false, false
}

func isComplete(j *meridianv1.Job) bool {
	done, ok := finished(j)
	return done && ok
}

// scheduledTime is when a Job was scheduled: its annotation, else its
// creation.
func scheduledTime(j *meridianv1.Job) time.Time {
	if v, ok := j.GetMetadata().GetAnnotations()[AnnotationScheduledTimestamp]; ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t
		}
	}
	return j.GetMetadata().GetCreationTimestamp().AsTime()
}

// deleteJobs deletes Jobs (their pods go with them: the Job controller
// deletes the pods of a deleted Job). Each is deleted by uid, so a Job
// created again under the same name is never deleted in its place; a Job
// already gone is no error.
func (c *Controller) deleteJobs(ctx context.Context, jobs []*meridianv1.Job) error {
	for _, j := range jobs {
		md := j.GetMetadata()
		if _, err := controller.DeleteByUID(ctx, c.store, jobKind, md.GetNamespace(), md.GetName(), md.GetUid()); err != nil {
			return fmt.Errorf("failed to delete job %s: %w", md.GetName(), err)
		}
	}
	return nil
}

// writeStatus stores status as cj's, unless it is unchanged.
func (c *Controller) writeStatus(ctx context.Context, key string, cj *meridianv1.CronJob, status *meridianv1.CronJobStatus) error {
	old := cj.GetStatus()
	if old == nil {
		old = &meridianv1.CronJobStatus{}
	}
	if proto.Equal(old, status) {
		return nil
	}
	md := cj.GetMetadata()
	out, err := c.store.Update(ctx, cronJobKind, md.GetNamespace(), md.GetName(), func(o resource.Object) error {
		x := o.(*meridianv1.CronJob)
		if x.GetMetadata().GetUid() != md.GetUid() {
			return errStale
		}
		x.Status = proto.Clone(status).(*meridianv1.CronJobStatus)
		return nil
	})
	switch {
	case err == nil:
		c.written.wrote(key, resourceVersion(out))
	case !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, errStale):
		return fmt.Errorf("failed to update the status of cronjob %s: %w", md.GetName(), err)
	}
	return nil
}
