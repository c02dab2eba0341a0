package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// DefaultSchedulerName is the schedulerName of pods this scheduler places
// (an empty schedulerName means it too).
const DefaultSchedulerName = "default-scheduler"

// Pod condition and phases the scheduler reads and writes.
const (
	ConditionPodScheduled = "PodScheduled"
	ReasonUnschedulable   = "Unschedulable"

	phasePending   = "Pending"
	phaseSucceeded = "Succeeded"
	phaseFailed    = "Failed"
)

var (
	podKind  = resource.MustLookup("Pod")
	nodeKind = resource.MustLookup("Node")
)

// Binding outcomes that are not failures of the scheduler: the informer
// will show what happened instead.
var (
	errPodChanged   = errors.New("the pod was replaced")
	errAlreadyBound = errors.New("the pod is already bound")
	errPodDeleting  = errors.New("the pod is being deleted")
)

// Config configures a Scheduler. The zero value is the defaults.
type Config struct {
	// SchedulerName is the spec.schedulerName this scheduler answers to,
	// besides "" (default DefaultSchedulerName).
	SchedulerName string
	// Profile is the plugin pipeline (default DefaultProfile()).
	Profile Profile
	// Binders is how many bindings and status writes run at once (default
	// 64): a binding is a store round trip, so while they wait the
	// scheduling goroutine goes on placing pods against the assumed ones.
	// Each binding waits for a commit (an fsync) twice, for the pod and for
	// its Scheduled event, and the store commits concurrent writes
	// together: with 16, binding capped a member near 600 pods/s with the
	// store mostly idle between small commits.
	Binders int
	// RetryInterval is how often pods nothing could place are tried again
	// even if no node or pod changed (default 30 s).
	RetryInterval time.Duration
	// Log receives the scheduler's logs (default slog.Default()).
	Log *slog.Logger
}

// Scheduler binds pending pods to nodes. One goroutine makes every
// placement decision, against a Cache that assumes each placed pod onto
// its node before the binding is written; a pool of binders writes the
// bindings. See README.md.
type Scheduler struct {
	cfg    Config
	store  storage.Interface
	pods   *controller.Informer
	nodes  *controller.Informer
	cache  *Cache
	fw     *Framework
	queue  *controller.Queue
	events *controller.Recorder
	log    *slog.Logger
	tasks  chan func(context.Context) // work for the binders

	// waiting holds the keys of pods no node could take; they go back to
	// the queue when nodes or pods change, and every RetryInterval.
	mu      sync.Mutex
	waiting map[string]struct{}

	bound atomic.Int64 // bindings written, for benchmarks and metrics
}

// New returns a scheduler over st that reads Pods and Nodes from the
// informers of set. Call it before set.Run, then Run it.
func New(st storage.Interface, set *controller.InformerSet, cfg Config) (*Scheduler, error) {
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = DefaultSchedulerName
	}
	if cfg.Profile.Filters == nil && cfg.Profile.Scores == nil {
		cfg.Profile = DefaultProfile()
	}
	if cfg.Binders < 0 || cfg.RetryInterval < 0 {
		return nil, fmt.Errorf("invalid scheduler config: binders (%d) and retry interval (%v) must not be negative", cfg.Binders, cfg.RetryInterval)
	}
	if cfg.Binders == 0 {
		cfg.Binders = 64
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	fw, err := NewFramework(cfg.Profile)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:     cfg,
		store:   st,
		pods:    set.For(podKind),
		nodes:   set.For(nodeKind),
		cache:   NewCache(),
		fw:      fw,
		queue:   controller.NewQueue(controller.DefaultRateLimit),
		events:  controller.NewRecorder(st, cfg.SchedulerName, cfg.Log),
		log:     cfg.Log.With("component", "scheduler"),
		tasks:   make(chan func(context.Context)),
		waiting: map[string]struct{}{},
	}
	s.pods.AddHandler(s.podHandler())
	s.nodes.AddHandler(s.nodeHandler())
	return s, nil
}

// Cache is the scheduler's node and pod picture (read-only use: tests and
// metrics).
func (s *Scheduler) Cache() *Cache { return s.cache }

// Run schedules pods until ctx ends, once the informers have synced. It
// returns when its goroutines (the scheduling loop, the binders and the
// retry timer) have all stopped.
func (s *Scheduler) Run(ctx context.Context) {
	if !s.pods.WaitForSync(ctx) || !s.nodes.WaitForSync(ctx) {
		return
	}
	var wg sync.WaitGroup
	for range s.cfg.Binders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for task := range s.tasks {
				task(ctx)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.RetryInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.retryWaiting()
			}
		}
	}()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	s.loop(ctx)
	<-stopped
	close(s.tasks) // the loop was the only sender; the binders drain and end
	wg.Wait()
}

// loop is the scheduling goroutine: one pod at a time.
func (s *Scheduler) loop(ctx context.Context) {
	for {
		key, shutdown := s.queue.Get()
		if shutdown {
			return
		}
		s.scheduleOne(ctx, key)
		s.queue.Done(key)
	}
}

// needsScheduling reports whether a pod is this scheduler's to place.
func (s *Scheduler) needsScheduling(p *meridianv1.Pod) bool {
	name := p.GetSpec().GetSchedulerName()
	return p.GetSpec().GetNodeName() == "" && p.GetMetadata().GetDeletionTimestamp() == nil &&
		!finished(p) && (name == "" || name == s.cfg.SchedulerName)
}

// scheduleOne places one pod: it picks a node, assumes the pod there, and
// hands the binding to the binders.
func (s *Scheduler) scheduleOne(ctx context.Context, key string) {
	ns, name := controller.SplitKey(key)
	obj, ok := s.pods.Get(ns, name)
	if !ok {
		s.unwait(key)
		return
	}
	pod := obj.(*meridianv1.Pod)
	if !s.needsScheduling(pod) || s.cache.Has(pod.GetMetadata().GetUid()) {
		s.unwait(key)
		return
	}
	pi, err := NewPodInfo(pod)
	if err != nil {
		// Only a new pod can fix it; keep it out of the retries.
		s.unwait(key)
		s.submit(ctx, func(ctx context.Context) {
			s.markUnschedulable(ctx, pod, fmt.Sprintf("invalid resource requests: %v", err))
		})
		return
	}
	node, err := s.cache.ScheduleAndAssume(s.fw, pi)
	if err != nil {
		var fit *FitError
		if !errors.As(err, &fit) {
			s.log.Error("failed to schedule pod", "pod", key, "err", err)
			s.queue.AddRateLimited(key)
			return
		}
		s.wait(key)
		msg := fit.Error()
		s.submit(ctx, func(ctx context.Context) { s.markUnschedulable(ctx, pod, msg) })
		return
	}
	s.unwait(key)
	s.submit(ctx, func(ctx context.Context) { s.bind(ctx, pi, node) })
}

// submit hands task to a binder, unless ctx ends first.
func (s *Scheduler) submit(ctx context.Context, task func(context.Context)) {
	select {
	case s.tasks <- task:
	case <-ctx.Done():
	}
}

// wait parks a pod that fits nowhere until something changes.
func (s *Scheduler) wait(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting[key] = struct{}{}
}

func (s *Scheduler) unwait(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiting, key)
}

// retryWaiting queues every parked pod again: a node or pod change may have
// made room for it.
func (s *Scheduler) retryWaiting() {
	s.mu.Lock()
	keys := make([]string, 0, len(s.waiting))
	for k := range s.waiting {
		keys = append(keys, k)
	}
	clear(s.waiting)
	s.mu.Unlock()
	for _, k := range keys {
		s.queue.Add(k)
	}
}

// podHandler keeps the cache current and queues pods to place. It runs on
// the informer's goroutine and only updates memory.
func (s *Scheduler) podHandler() controller.Handler {
	set := func(o resource.Object) {
		p := o.(*meridianv1.Pod)
		freed, err := s.cache.SetPod(p)
		if err != nil {
			s.log.Warn("bound pod has invalid resource requests; counting it as requesting nothing", "pod", controller.Key(p), "err", err)
		}
		if freed {
			s.retryWaiting()
		}
		if s.needsScheduling(p) {
			s.queue.Add(controller.Key(p))
		}
	}
	return controller.Handler{
		OnAdd:    set,
		OnUpdate: func(_, o resource.Object) { set(o) },
		OnDelete: func(o resource.Object) {
			if s.cache.RemovePod(o.(*meridianv1.Pod)) {
				s.retryWaiting()
			}
			s.unwait(controller.Key(o))
		},
	}
}

// nodeHandler keeps the cache's nodes current; a new node, or a change that
// may let more pods on, sends the parked pods back to the queue.
func (s *Scheduler) nodeHandler() controller.Handler {
	set := func(o resource.Object) {
		if err := s.cache.SetNode(o.(*meridianv1.Node)); err != nil {
			s.log.Warn("node has an invalid allocatable quantity; counting it as nothing", "err", err)
		}
	}
	return controller.Handler{
		OnAdd: func(o resource.Object) {
			set(o)
			s.retryWaiting()
		},
		OnUpdate: func(old, o resource.Object) {
			set(o)
			if schedulingChanged(old.(*meridianv1.Node), o.(*meridianv1.Node)) {
				s.retryWaiting()
			}
		},
		OnDelete: func(o resource.Object) { s.cache.RemoveNode(o.GetMetadata().GetName()) },
	}
}
