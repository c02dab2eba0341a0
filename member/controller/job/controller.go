// Package job is the member's Job controller: it runs a Job's pods until
// enough of them succeed, with Kubernetes' semantics.
//
//   - parallelism (default 1) bounds the pods running at once; completions
//     (default 1) is how many must succeed. A Job with parallelism but no
//     completions is a work queue: it is done when any pod has succeeded
//     and none is still running.
//   - A failed pod is replaced after an exponential backoff (10 s doubling
//     per consecutive failure, capped at 6 min); backoffLimit (default 6)
//     failed pods — or container restarts, for restartPolicy OnFailure —
//     fail the Job with reason BackoffLimitExceeded.
//   - activeDeadlineSeconds fails a Job that runs longer (reason
//     DeadlineExceeded) and stops its pods; suspend stops them too, until
//     the Job is resumed.
//   - ttlSecondsAfterFinished deletes a finished Job and its pods.
//   - completionMode Indexed gives every pod an index 0..completions-1
//     (annotation batch.kubernetes.io/job-completion-index and the
//     JOB_COMPLETION_INDEX environment variable); the Job is complete when
//     every index has succeeded.
//
// Pods are named after their Job, labelled job-name and controller-uid, and
// owned by it (a controller owner reference); deleting a Job deletes them.
package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Labels and annotations of the pods a Job creates.
const (
	// LabelJobName carries the Job's name.
	LabelJobName = "job-name"
	// LabelControllerUID carries the Job's uid, so that a Job deleted and
	// created again under the same name never adopts the old one's pods.
	LabelControllerUID = "controller-uid"
	// AnnotationCompletionIndex is an Indexed Job pod's index (also a label).
	AnnotationCompletionIndex = "batch.kubernetes.io/job-completion-index"
	// EnvCompletionIndex is the environment variable with the pod's index.
	EnvCompletionIndex = "JOB_COMPLETION_INDEX"
)

// Condition types and reasons a Job's status carries, as in Kubernetes.
const (
	ConditionComplete  = "Complete"
	ConditionFailed    = "Failed"
	ConditionSuspended = "Suspended"

	ReasonCompletionsReached   = "CompletionsReached"
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
	ReasonSuspended            = "JobSuspended"
	ReasonResumed              = "JobResumed"
)

// Defaults of a JobSpec's optional fields.
const (
	DefaultParallelism  = 1
	DefaultCompletions  = 1
	DefaultBackoffLimit = 6
)

var (
	jobKind = resource.MustLookup("Job")
	podKind = resource.MustLookup("Pod")
)

// errStale is a sync that found its Job replaced (another uid) under it.
var errStale = errors.New("the job was replaced while being synced")

// Clock tells the time. Tests substitute one they control.
type Clock interface {
	Now() time.Time
}

// realClock is the system clock.
type realClock struct{}

// Now is time.Now.
func (realClock) Now() time.Time { return time.Now() }

// Config configures a Controller. The zero value is the Kubernetes defaults.
type Config struct {
	// Workers is how many Jobs are synced at once (default 4). One Job is
	// never synced by two workers at once.
	Workers int
	// BackoffBase is the wait before a failed pod is replaced, doubled for
	// each further consecutive failure (default 10 s, as in Kubernetes).
	BackoffBase time.Duration
	// BackoffMax caps that wait (default 6 min, as in Kubernetes).
	BackoffMax time.Duration
	// Clock is the controller's time (default the system clock). The
	// requeues for backoff, deadlines and TTLs wait in real time.
	Clock Clock
	// Log receives the controller's logs (default slog.Default()).
	Log *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Workers < 0 || c.BackoffBase < 0 || c.BackoffMax < 0 {
		return fmt.Errorf("invalid job controller config: workers (%d), backoff base (%v) and max (%v) must not be negative",
			c.Workers, c.BackoffBase, c.BackoffMax)
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 6 * time.Minute
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Controller reconciles Jobs with their pods.
type Controller struct {
	store  storage.Interface
	jobs   *controller.Informer
	pods   *controller.Informer
	ctrl   *controller.Controller
	events *controller.Recorder
	exp    *expectations
	cfg    Config
}

// New returns a Job controller over st that reads Jobs and Pods from the
// informers of set. Call it before set.Run, then run the controller.
func New(st storage.Interface, set *controller.InformerSet, cfg Config) (*Controller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Controller{
		store:  st,
		jobs:   set.For(jobKind),
		pods:   set.For(podKind),
		events: controller.NewRecorder(st, "job-controller", cfg.Log),
		exp:    newExpectations(),
		cfg:    cfg,
	}
	controller.IndexControllers(c.pods)
	c.ctrl = controller.New("job", cfg.Workers, c.sync, cfg.Log)
	c.jobs.AddHandler(c.ctrl.Enqueue())
	c.pods.AddHandler(c.podHandler())
	return c, nil
}

// Run syncs Jobs until ctx ends, once the informers have synced.
func (c *Controller) Run(ctx context.Context) {
	if !c.jobs.WaitForSync(ctx) || !c.pods.WaitForSync(ctx) {
		return
	}
	c.ctrl.Run(ctx)
}

// podHandler queues the Job of every pod that changes, and tells the
// expectations which creations and deletions the cache has caught up with.
func (c *Controller) podHandler() controller.Handler {
	jobKey := func(o resource.Object) (string, bool) {
		ref := controller.ControllerOf(o)
		if ref == nil || ref.GetKind() != jobKind.Kind {
			return "", false
		}
		return o.GetMetadata().GetNamespace() + "/" + ref.GetName(), true
	}
	return controller.Handler{
		OnAdd: func(o resource.Object) {
			if key, ok := jobKey(o); ok {
				c.exp.observed(key, o.GetMetadata().GetName(), true)
				c.ctrl.Queue.Add(key)
			}
		},
		OnUpdate: func(old, o resource.Object) {
			if key, ok := jobKey(old); ok {
				c.ctrl.Queue.Add(key)
			}
			if key, ok := jobKey(o); ok {
				if o.GetMetadata().GetDeletionTimestamp() != nil {
					c.exp.observed(key, o.GetMetadata().GetName(), false) // terminating: deleted, as far as the Job goes
				}
				c.ctrl.Queue.Add(key)
			}
		},
		OnDelete: func(o resource.Object) {
			if key, ok := jobKey(o); ok {
				c.exp.observed(key, o.GetMetadata().GetName(), false)
				c.ctrl.Queue.Add(key)
			}
		},
	}
}

// deletePod deletes one of job's pods the way every controller does
// (controller.DeletePod: gracefully if it runs on a node, so that the node
// agent stops its processes first) and expects the deletion in the cache. A
// pod already gone or terminating is not an error.
func (c *Controller) deletePod(ctx context.Context, owner resource.Object, key string, pod *meridianv1.Pod) error {
	md := pod.GetMetadata()
	c.exp.expect(key, md.GetName(), false)
	acted, err := controller.DeletePod(ctx, c.store, pod)
	if err != nil || !acted {
		c.exp.observed(key, md.GetName(), false) // no event will come
	}
	if err != nil {
		return fmt.Errorf("failed to delete pod %s: %w", md.GetName(), err)
	}
	if acted && owner != nil {
		c.events.Eventf(ctx, owner, controller.EventNormal, "SuccessfulDelete", "Deleted pod: %s", md.GetName())
	}
	return nil
}

// deletePods deletes pods, stopping at the first failure.
func (c *Controller) deletePods(ctx context.Context, owner resource.Object, key string, pods []*meridianv1.Pod) (deleted int, err error) {
	for _, p := range pods {
		if err := c.deletePod(ctx, owner, key, p); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, nil
}

// orphans deletes the pods of a Job named name in ns that is gone (or was
// replaced by one with another uid than keepUID): deleting a Job deletes
// its pods.
func (c *Controller) deleteOrphans(ctx context.Context, key, ns, name, keepUID string) error {
	named, err := controller.ControlledByName(c.pods, ns, jobKind.Kind, name)
	if err != nil {
		return err
	}
	var orphans []*meridianv1.Pod
	for _, o := range named {
		ref := controller.ControllerOf(o)
		if ref != nil && ref.GetKind() == jobKind.Kind && ref.GetName() == name && ref.GetUid() != keepUID {
			orphans = append(orphans, o.(*meridianv1.Pod))
		}
	}
	_, err = c.deletePods(ctx, nil, key, orphans)
	return err
}
