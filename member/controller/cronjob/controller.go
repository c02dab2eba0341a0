// Package cronjob is the member's CronJob controller: it creates a Job from
// a CronJob's jobTemplate at every time its schedule names, with
// Kubernetes' semantics.
//
//   - Jobs are named "<cronjob>-<scheduled time in Unix minutes>", so that
//     one scheduled time can never start two Jobs, and owned by the CronJob.
//   - After downtime only the most recent missed time runs, and only within
//     startingDeadlineSeconds of it when that is set.
//   - concurrencyPolicy Allow runs Jobs side by side; Forbid skips a time
//     while a Job is still active (as Kubernetes does, a skipped time runs
//     late when the active Job ends before the next time, unless
//     startingDeadlineSeconds says it is too late); Replace deletes the
//     active Jobs and starts the new one.
//   - suspend stops new Jobs (running ones go on).
//   - successfulJobsHistoryLimit (default 3) and failedJobsHistoryLimit
//     (default 1) finished Jobs are kept; older ones are deleted.
//   - status.active, lastScheduleTime and lastSuccessfulTime are kept up to
//     date.
//
// Time comes from an injectable Clock; the controller queues each CronJob
// again for its next scheduled time.
package cronjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
)

// AnnotationScheduledTimestamp is the scheduled time (RFC 3339) of a Job a
// CronJob created, as Kubernetes records it.
const AnnotationScheduledTimestamp = "batch.kubernetes.io/cronjob-scheduled-timestamp"

// Concurrency policies.
const (
	AllowConcurrent   = "Allow"
	ForbidConcurrent  = "Forbid"
	ReplaceConcurrent = "Replace"
)

// Defaults of the history limits.
const (
	DefaultSuccessfulJobsHistoryLimit = 3
	DefaultFailedJobsHistoryLimit     = 1
)

var (
	cronJobKind = resource.MustLookup("CronJob")
	jobKind     = resource.MustLookup("Job")
)

// errStale is a sync that found its CronJob replaced (another uid).
var errStale = errors.New("the cronjob was replaced while being synced")

// Clock tells the time. Tests substitute one they move by hand (and then
// call Resync).
type Clock interface {
	Now() time.Time
}

// realClock is the system clock.
type realClock struct{}

// Now is time.Now.
func (realClock) Now() time.Time { return time.Now() }

// Config configures a Controller.
type Config struct {
	// Workers is how many CronJobs are synced at once (default 2).
	Workers int
	// Clock is the controller's time (default the system clock).
	Clock Clock
	// Log receives the controller's logs (default slog.Default()).
	Log *slog.Logger
}

// Controller creates Jobs for CronJobs.
type Controller struct {
	store    storage.Interface
	cronJobs *controller.Informer
	jobs     *controller.Informer
	ctrl     *controller.Controller
	events   *controller.Recorder
	clock    Clock
	log      *slog.Logger
	written  writes
	notes    notes
}

// New returns a CronJob controller over st that reads CronJobs and Jobs
// from the informers of set. Call it before set.Run, then run the
// controller.
func New(st storage.Interface, set *controller.InformerSet, cfg Config) (*Controller, error) {
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("invalid cronjob controller config: workers (%d) must not be negative", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Controller{
		store:    st,
		cronJobs: set.For(cronJobKind),
		jobs:     set.For(jobKind),
		events:   controller.NewRecorder(st, "cronjob-controller", cfg.Log),
		clock:    cfg.Clock,
		log:      cfg.Log,
		written:  writes{m: map[string]int64{}},
		notes:    notes{m: map[string]string{}},
	}
	c.ctrl = controller.New("cronjob", cfg.Workers, c.sync, cfg.Log)
	c.cronJobs.AddHandler(c.ctrl.Enqueue())
	c.jobs.AddHandler(c.ctrl.EnqueueOwner(cronJobKind.Kind))
	return c, nil
}

// Run syncs CronJobs until ctx ends, once the informers have synced.
func (c *Controller) Run(ctx context.Context) {
	if !c.cronJobs.WaitForSync(ctx) || !c.jobs.WaitForSync(ctx) {
		return
	}
	c.ctrl.Run(ctx)
}

// Resync queues every CronJob for a sync now. The controller queues each
// CronJob for its next scheduled time by itself; Resync is for a clock that
// jumped (a test's fake clock, a corrected system clock).
func (c *Controller) Resync() {
	for _, o := range c.cronJobs.List("", nil) {
		c.ctrl.Queue.Add(controller.Key(o))
	}
}

// writes remembers the resourceVersion of the controller's last status
// write of each CronJob, until the cache has caught up with it: a sync on
// an older cached CronJob would not know the Job it just started and start
// it again. Safe for concurrent use.
type writes struct {
	mu sync.Mutex
	m  map[string]int64
}

func (w *writes) wrote(key string, rv int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rv > w.m[key] {
		w.m[key] = rv
	}
}

// current reports whether a cached CronJob at rv includes the last write.
func (w *writes) current(key string, rv int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.m[key]
	if !ok {
		return true
	}
	if rv >= last {
		delete(w.m, key)
		return true
	}
	return false
}

func (w *writes) forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, key)
}

// notes remembers the last warning-worthy situation reported for each
// CronJob, so that a situation that lasts (a time skipped under Forbid, a
// schedule that does not parse) makes one Event, not one per sync. Safe for
// concurrent use.
type notes struct {
	mu sync.Mutex
	m  map[string]string
}

// first reports whether note is new for key, and remembers it.
func (n *notes) first(key, note string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m[key] == note {
		return false
	}
	n.m[key] = note
	return true
}

func (n *notes) forget(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.m, key)
}

// resourceVersion is an object's resourceVersion as a number (0 if none).
func resourceVersion(o resource.Object) int64 {
	n, _ := strconv.ParseInt(o.GetMetadata().GetResourceVersion(), 10, 64)
	return n
}
