package job

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/controller"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Pod phases and restart policies, as node agents write and read them.
const (
	phaseSucceeded = "Succeeded"
	phaseFailed    = "Failed"

	restartNever     = "Never"
	restartOnFailure = "OnFailure"
)

// nameAlphabet is Kubernetes' alphabet for generated name suffixes: no
// vowels (no words) and no look-alike characters.
const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// podName returns a fresh name for a pod of job: "<job>-<5 random>", or
// "<job>-<index>-<5 random>" for an Indexed Job's pod.
func podName(job string, index int) string {
	b := make([]byte, 5)
	for i := range b {
		b[i] = nameAlphabet[rand.IntN(len(nameAlphabet))]
	}
	if index >= 0 {
		return job + "-" + strconv.Itoa(index) + "-" + string(b)
	}
	return job + "-" + string(b)
}

// newPod builds a pod of job from its template; index is the pod's
// completion index, or -1 for a NonIndexed Job.
func newPod(job *meridianv1.Job, name string, index int) *meridianv1.Pod {
	tmpl := job.GetSpec().GetTemplate()
	md := job.GetMetadata()
	labels := make(map[string]string, len(tmpl.GetMetadata().GetLabels())+3)
	for k, v := range tmpl.GetMetadata().GetLabels() {
		labels[k] = v
	}
	labels[LabelJobName] = md.GetName()
	labels[LabelControllerUID] = md.GetUid()
	annotations := make(map[string]string, len(tmpl.GetMetadata().GetAnnotations())+1)
	for k, v := range tmpl.GetMetadata().GetAnnotations() {
		annotations[k] = v
	}
	spec := &meridianv1.PodSpec{}
	if tmpl.GetSpec() != nil {
		spec = proto.Clone(tmpl.GetSpec()).(*meridianv1.PodSpec)
	}
	if spec.RestartPolicy == "" {
		// A Job's pods must end; the pod default (Always) never would.
		spec.RestartPolicy = restartNever
	}
	spec.NodeName = ""
	if index >= 0 {
		idx := strconv.Itoa(index)
		annotations[AnnotationCompletionIndex] = idx
		labels[AnnotationCompletionIndex] = idx
		if h := md.GetName() + "-" + idx; spec.Hostname == "" && len(h) <= 63 {
			spec.Hostname = h // a DNS label: at most 63 characters
		}
		for _, ct := range append(append([]*meridianv1.Container(nil), spec.InitContainers...), spec.Containers...) {
			ct.Env = append(ct.Env, &meridianv1.EnvVar{Name: EnvCompletionIndex, Value: idx})
		}
	}
	return &meridianv1.Pod{
		ApiVersion: "v1",
		Kind:       "Pod",
		Metadata: &meridianv1.ObjectMeta{
			Name:            name,
			Namespace:       md.GetNamespace(),
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(job)},
		},
		Spec: spec,
	}
}

// podIndex is a pod's completion index, or -1 if it has none.
func podIndex(p *meridianv1.Pod) int {
	v, ok := p.GetMetadata().GetAnnotations()[AnnotationCompletionIndex]
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// podSet is a Job's pods, sorted by what they are doing.
type podSet struct {
	active    []*meridianv1.Pod // neither finished nor being deleted
	succeeded []*meridianv1.Pod
	failed    []*meridianv1.Pod
}

func classify(pods []*meridianv1.Pod) podSet {
	var s podSet
	for _, p := range pods {
		switch p.GetStatus().GetPhase() {
		case phaseSucceeded:
			s.succeeded = append(s.succeeded, p)
		case phaseFailed:
			s.failed = append(s.failed, p)
		default:
			if p.GetMetadata().GetDeletionTimestamp() == nil {
				s.active = append(s.active, p)
			}
		}
	}
	return s
}

// ready counts the pods whose Ready condition is True.
func ready(pods []*meridianv1.Pod) int32 {
	var n int32
	for _, p := range pods {
		if isReady(p) {
			n++
		}
	}
	return n
}

func isReady(p *meridianv1.Pod) bool {
	for _, c := range p.GetStatus().GetConditions() {
		if c.GetType() == "Ready" {
			return c.GetStatus() == "True"
		}
	}
	return false
}

// restarts sums the container restarts of pods (init containers included:
// the node agent reports them in the same list).
func restarts(pods []*meridianv1.Pod) int32 {
	var n int32
	for _, p := range pods {
		for _, cs := range p.GetStatus().GetContainerStatuses() {
			n += cs.GetRestartCount()
		}
	}
	return n
}

// finishTime is when a pod stopped: its last container's finishedAt, else
// the last change of one of its conditions, else its creation.
func finishTime(p *meridianv1.Pod) time.Time {
	var t time.Time
	for _, cs := range p.GetStatus().GetContainerStatuses() {
		if f := cs.GetFinishedAt(); f != nil && f.AsTime().After(t) {
			t = f.AsTime()
		}
	}
	if !t.IsZero() {
		return t
	}
	for _, c := range p.GetStatus().GetConditions() {
		if lt := c.GetLastTransitionTime(); lt != nil && lt.AsTime().After(t) {
			t = lt.AsTime()
		}
	}
	if !t.IsZero() {
		return t
	}
	return p.GetMetadata().GetCreationTimestamp().AsTime()
}

// consecutiveFailures counts the failed pods that finished after the last
// success, and returns when the last of them finished.
func consecutiveFailures(s podSet) (n int, last time.Time) {
	var lastSuccess time.Time
	for _, p := range s.succeeded {
		if t := finishTime(p); t.After(lastSuccess) {
			lastSuccess = t
		}
	}
	for _, p := range s.failed {
		if t := finishTime(p); t.After(lastSuccess) {
			n++
			if t.After(last) {
				last = t
			}
		}
	}
	return n, last
}

// backoff is the wait before replacing the n-th consecutive failure: base
// doubled n-1 times, capped at max.
func backoff(n int, base, max time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	d := base << min(n-1, 30)
	if d > max || d <= 0 {
		return max
	}
	return d
}

// byDeletionPreference sorts pods so that the ones cheapest to lose come
// first: not yet on a node, then not ready, then the youngest.
func byDeletionPreference(pods []*meridianv1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if (a.GetSpec().GetNodeName() == "") != (b.GetSpec().GetNodeName() == "") {
			return a.GetSpec().GetNodeName() == ""
		}
		if isReady(a) != isReady(b) {
			return !isReady(a)
		}
		return a.GetMetadata().GetCreationTimestamp().AsTime().After(b.GetMetadata().GetCreationTimestamp().AsTime())
	})
}
