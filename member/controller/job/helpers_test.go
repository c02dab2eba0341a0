package job_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/hub/etcdnode/etcdnodetest"
	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/job"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const ns = "demo"

var (
	jobKind = resource.MustLookup("Job")
	podKind = resource.MustLookup("Pod")
	nsKind  = resource.MustLookup("Namespace")
)

// harness is a real etcd store with a Job controller running over it. The
// test stands in for the node agents: it sets pod phases itself.
type harness struct {
	t   *testing.T
	st  *store.Store
	ctx context.Context
}

// testLog sends logs to t.Log, shown for failed tests (and with -v).
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newHarness(t *testing.T, cfg job.Config) *harness {
	t.Helper()
	st := store.New(etcdnodetest.Client(t, etcdnodetest.Start(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	h := &harness{t: t, st: st, ctx: ctx}
	n := nsKind.New()
	resource.Meta(n).Name = ns
	if _, err := st.Create(ctx, n); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	set := controller.NewInformerSet(st, cfg.Log)
	c, err := job.New(st, set, cfg)
	if err != nil {
		t.Fatalf("job.New: %v", err)
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

// newJob is a Job running one container that the test finishes by hand.
func newJob(name string, completions, parallelism *int32) *meridianv1.Job {
	j := jobKind.New().(*meridianv1.Job)
	resource.Meta(j).Name = name
	resource.Meta(j).Namespace = ns
	j.Spec = &meridianv1.JobSpec{
		Completions: completions,
		Parallelism: parallelism,
		Template: &meridianv1.PodTemplateSpec{
			Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec: &meridianv1.PodSpec{
				RestartPolicy: "Never",
				Containers:    []*meridianv1.Container{{Name: "main", Command: []string{"true"}}},
			},
		},
	}
	return j
}

func (h *harness) create(j *meridianv1.Job) *meridianv1.Job {
	h.t.Helper()
	out, err := h.st.Create(h.ctx, j)
	if err != nil {
		h.t.Fatalf("failed to create job: %v", err)
	}
	return out.(*meridianv1.Job)
}

func (h *harness) job(name string) (*meridianv1.Job, bool) {
	h.t.Helper()
	o, err := h.st.Get(h.ctx, jobKind, ns, name)
	if err != nil {
		return nil, false
	}
	return o.(*meridianv1.Job), true
}

// setSuspend sets a Job's spec.suspend.
func (h *harness) setSuspend(name string, suspend bool) {
	h.t.Helper()
	_, err := h.st.Update(h.ctx, jobKind, ns, name, func(o resource.Object) error {
		o.(*meridianv1.Job).Spec.Suspend = suspend
		return nil
	})
	if err != nil {
		h.t.Fatalf("failed to set suspend of %s: %v", name, err)
	}
}

// pods lists a Job's pods from the store, oldest first.
func (h *harness) pods(jobName string) []*meridianv1.Pod {
	h.t.Helper()
	objs, _, err := h.st.List(h.ctx, podKind, ns, labels.SelectorFromSet(labels.Set{job.LabelJobName: jobName}))
	if err != nil {
		h.t.Fatalf("failed to list pods: %v", err)
	}
	out := make([]*meridianv1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*meridianv1.Pod))
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].GetMetadata().GetCreationTimestamp().AsTime().Before(out[j].GetMetadata().GetCreationTimestamp().AsTime())
	})
	return out
}

// active lists the Job's pods that have not finished.
func (h *harness) active(jobName string) []*meridianv1.Pod {
	var out []*meridianv1.Pod
	for _, p := range h.pods(jobName) {
		if ph := p.GetStatus().GetPhase(); ph != "Succeeded" && ph != "Failed" {
			out = append(out, p)
		}
	}
	return out
}

// setPhase plays the node agent: it writes the status a pod in phase would
// have. restarts is the container's restart count.
func (h *harness) setPhase(name, phase string, restarts int32) {
	h.t.Helper()
	_, err := h.st.Update(h.ctx, podKind, ns, name, func(o resource.Object) error {
		p := o.(*meridianv1.Pod)
		now := timestamppb.Now()
		cs := &meridianv1.ContainerStatus{Name: "main", RestartCount: restarts}
		st := &meridianv1.PodStatus{Phase: phase, StartTime: now}
		switch phase {
		case "Running":
			// Running pods are on a node: deleting them is graceful.
			p.Spec.NodeName = "node-1"
			cs.State, cs.Ready, cs.StartedAt = "Running", true, now
			st.Conditions = []*meridianv1.Condition{{Type: "Ready", Status: "True", LastTransitionTime: now}}
		case "Succeeded", "Failed":
			cs.State, cs.FinishedAt = "Terminated", now
			if phase == "Failed" {
				cs.ExitCode = 1
			}
		}
		st.ContainerStatuses = []*meridianv1.ContainerStatus{cs}
		p.Status = st
		return nil
	})
	if err != nil {
		h.t.Fatalf("failed to set pod %s %s: %v", name, phase, err)
	}
}

// removeTerminating plays the node agent once more: it removes the pods of
// a Job that are marked for deletion (their processes have stopped), and
// reports how many pods of the Job are left, terminating or not.
func (h *harness) removeTerminating(jobName string) (left, removed int) {
	h.t.Helper()
	for _, p := range h.pods(jobName) {
		if p.GetMetadata().GetDeletionTimestamp() == nil {
			left++
			continue
		}
		if _, err := h.st.Delete(h.ctx, podKind, ns, p.GetMetadata().GetName(), ""); err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.t.Fatal(err)
		}
		removed++
	}
	return left, removed
}

// waitFor polls cond until it holds, failing the test at the deadline with
// cond's last description of what it saw.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last saw: %s", timeout, what, saw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitActive waits until the Job has exactly n unfinished pods.
func (h *harness) waitActive(jobName string, n int) []*meridianv1.Pod {
	h.t.Helper()
	var got []*meridianv1.Pod
	waitFor(h.t, fmt.Sprintf("%d active pods of %s", n, jobName), 10*time.Second, func() (bool, string) {
		got = h.active(jobName)
		return len(got) == n, fmt.Sprintf("%d active", len(got))
	})
	return got
}

// waitCondition waits for a condition of the Job to be True and returns the Job.
func (h *harness) waitCondition(name, typ string, timeout time.Duration) *meridianv1.Job {
	h.t.Helper()
	var j *meridianv1.Job
	waitFor(h.t, fmt.Sprintf("job %s %s", name, typ), timeout, func() (bool, string) {
		var ok bool
		if j, ok = h.job(name); !ok {
			return false, "no job"
		}
		if c := cond(j, typ); c != nil && c.GetStatus() == "True" {
			return true, ""
		}
		return false, fmt.Sprintf("status %v", j.GetStatus())
	})
	return j
}

func cond(j *meridianv1.Job, typ string) *meridianv1.Condition {
	for _, c := range j.GetStatus().GetConditions() {
		if c.GetType() == typ {
			return c
		}
	}
	return nil
}

// activeWatcher follows every pod change of a Job through a store watch
// and remembers the most pods that were ever active at once.
type activeWatcher struct {
	mu      sync.Mutex
	active  map[string]bool
	maxSeen int
	created int
}

func (h *harness) watchActive(jobName string) *activeWatcher {
	h.t.Helper()
	w := &activeWatcher{active: map[string]bool{}}
	rev, err := h.st.Revision(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	ch := h.st.Watch(ctx, podKind, ns, labels.SelectorFromSet(labels.Set{job.LabelJobName: jobName}), rev)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			if ev.Object == nil {
				continue
			}
			p := ev.Object.(*meridianv1.Pod)
			name := p.GetMetadata().GetName()
			ph := p.GetStatus().GetPhase()
			w.mu.Lock()
			if ev.Type == storage.Added {
				w.created++
			}
			w.active[name] = ev.Type != storage.Deleted && ph != "Succeeded" && ph != "Failed"
			n := 0
			for _, a := range w.active {
				if a {
					n++
				}
			}
			w.maxSeen = max(w.maxSeen, n)
			w.mu.Unlock()
		}
	}()
	h.t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *activeWatcher) stats() (maxActive, created int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxSeen, w.created
}

// settle waits until the watch has seen at least created pods, none of
// them active any more (it runs behind the store).
func (w *activeWatcher) settle(t *testing.T, created int) {
	t.Helper()
	waitFor(t, "the pod watch to catch up", 10*time.Second, func() (bool, string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		active := 0
		for _, a := range w.active {
			if a {
				active++
			}
		}
		return w.created >= created && active == 0, fmt.Sprintf("%d created, %d active", w.created, active)
	})
}

func ptr[T any](v T) *T { return &v }
