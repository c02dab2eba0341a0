package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const ns = "demo"

var (
	nsKind    = resource.MustLookup("Namespace")
	eventKind = resource.MustLookup("Event")
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// harness runs a CronJob controller over a real etcd store on a fake
// clock (the store stamps creation times with it too). The Job controller
// does not run: the test finishes Jobs by writing their status.
//
// The controller's Sync is swapped (it is a field for this) for one that
// numbers the syncs, so that syncNow can wait for a sync that began after
// the clock moved and looked at the CronJob: assertions that nothing
// happened are then exact, not hopeful.
type harness struct {
	t   *testing.T
	st  *store.Store
	ctx context.Context
	clk *fakeClock
	c   *Controller

	mu      sync.Mutex
	started int            // syncs begun
	done    map[string]int // by key: the number of the latest finished sync
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newHarness(t *testing.T, start time.Time) *harness {
	t.Helper()
	clk := &fakeClock{t: start}
	st := store.New(etcdnodetest.Client(t, etcdnodetest.Start(t)), store.WithClock(clk.Now))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	n := nsKind.New()
	resource.Meta(n).Name = ns
	if _, err := st.Create(ctx, n); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	set := controller.NewInformerSet(st, log)
	c, err := New(st, set, Config{Clock: clk, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, ctx: ctx, clk: clk, c: c, done: map[string]int{}}
	c.ctrl.Sync = func(ctx context.Context, key string) error {
		h.mu.Lock()
		h.started++
		n := h.started
		h.mu.Unlock()
		looked, err := c.syncCronJob(ctx, key)
		if looked {
			h.mu.Lock()
			h.done[key] = max(h.done[key], n)
			h.mu.Unlock()
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); set.Run(ctx) }()
	go func() { defer wg.Done(); c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return h
}

// syncNow moves the clock to now and waits for a sync of the CronJob that
// began afterwards.
func (h *harness) syncNow(name string, now time.Time) {
	h.t.Helper()
	h.clk.set(now)
	h.mu.Lock()
	mark := h.started
	h.mu.Unlock()
	h.c.Resync()
	waitFor(h.t, "a sync of "+name, func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.done[ns+"/"+name] > mark, "none yet"
	})
}

// waitCached waits until the controller's cache holds obj at least at its
// resourceVersion (or, for a deleted object, no longer holds it).
func (h *harness) waitCached(inf *controller.Informer, obj resource.Object, deleted bool) {
	h.t.Helper()
	md := obj.GetMetadata()
	waitFor(h.t, "the cache to catch up with "+md.GetName(), func() (bool, string) {
		o, ok := inf.Get(md.GetNamespace(), md.GetName())
		if deleted {
			return !ok, "still cached"
		}
		return ok && resourceVersion(o) >= resourceVersion(obj), "older"
	})
}

func newCronJob(name, schedule string) *meridianv1.CronJob {
	cj := cronJobKind.New().(*meridianv1.CronJob)
	resource.Meta(cj).Name = name
	resource.Meta(cj).Namespace = ns
	cj.Spec = &meridianv1.CronJobSpec{
		Schedule: schedule,
		JobTemplate: &meridianv1.JobTemplateSpec{
			Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: map[string]string{"team": "batch"}},
			Spec: &meridianv1.JobSpec{Template: &meridianv1.PodTemplateSpec{
				Spec: &meridianv1.PodSpec{
					RestartPolicy: "Never",
					Containers:    []*meridianv1.Container{{Name: "main", Command: []string{"date"}}},
				},
			}},
		},
	}
	return cj
}

func (h *harness) create(cj *meridianv1.CronJob) {
	h.t.Helper()
	out, err := h.st.Create(h.ctx, cj)
	if err != nil {
		h.t.Fatalf("failed to create cronjob: %v", err)
	}
	h.waitCached(h.c.cronJobs, out, false)
}

func (h *harness) update(name string, mutate func(*meridianv1.CronJob)) {
	h.t.Helper()
	out, err := h.st.Update(h.ctx, cronJobKind, ns, name, func(o resource.Object) error {
		mutate(o.(*meridianv1.CronJob))
		return nil
	})
	if err != nil {
		h.t.Fatalf("failed to update cronjob %s: %v", name, err)
	}
	h.waitCached(h.c.cronJobs, out, false)
}

func (h *harness) cronJob(name string) *meridianv1.CronJob {
	h.t.Helper()
	o, err := h.st.Get(h.ctx, cronJobKind, ns, name)
	if err != nil {
		h.t.Fatal(err)
	}
	return o.(*meridianv1.CronJob)
}

// jobs lists the names of the Jobs of a CronJob, from the store, sorted.
func (h *harness) jobs(cronJob string) []string {
	h.t.Helper()
	objs, _, err := h.st.List(h.ctx, jobKind, ns, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		if ref := controller.ControllerOf(o); ref != nil && ref.GetName() == cronJob {
			out = append(out, o.GetMetadata().GetName())
		}
	}
	sort.Strings(out)
	return out
}

// wantJobs checks the CronJob's Jobs by their scheduled times.
func (h *harness) wantJobs(cronJob string, times ...time.Time) {
	h.t.Helper()
	want := make([]string, 0, len(times))
	for _, t := range times {
		want = append(want, fmt.Sprintf("%s-%d", cronJob, t.Unix()/60))
	}
	sort.Strings(want)
	if got := h.jobs(cronJob); !slices.Equal(got, want) {
		h.t.Fatalf("jobs of %s = %v, want %v", cronJob, got, want)
	}
}

// finishJob writes the status the Job controller would write for a Job
// that completed (ok) or failed, and waits for the cache to have it.
func (h *harness) finishJob(name string, ok bool) {
	h.t.Helper()
	now := timestamppb.New(h.clk.Now())
	out, err := h.st.Update(h.ctx, jobKind, ns, name, func(o resource.Object) error {
		j := o.(*meridianv1.Job)
		c := &meridianv1.Condition{Type: "Complete", Status: "True", LastTransitionTime: now}
		j.Status = &meridianv1.JobStatus{Succeeded: 1, CompletionTime: now}
		if !ok {
			c.Type = "Failed"
			j.Status = &meridianv1.JobStatus{Failed: 1}
		}
		j.Status.Conditions = []*meridianv1.Condition{c}
		return nil
	})
	if err != nil {
		h.t.Fatalf("failed to finish job %s: %v", name, err)
	}
	h.waitCached(h.c.jobs, out, false)
}

// eventReasons lists the reasons of the events about a CronJob.
func (h *harness) eventReasons(cronJob string) []string {
	h.t.Helper()
	objs, _, err := h.st.List(h.ctx, eventKind, ns, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		ev := o.(*meridianv1.Event)
		if ev.GetInvolvedObject().GetKind() == "CronJob" && ev.GetInvolvedObject().GetName() == cronJob {
			out = append(out, ev.GetReason())
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last saw: %s", what, saw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }
