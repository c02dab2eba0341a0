// Package fence is a member's singleton fencing: the node agents' Gate
// that lets a pod of a hub-managed singleton workload (a StatefulSet, or a
// workload annotated meridian.io/singleton: "true") run only while the
// member holds its lease from the hub (hubsync.Lease) and only with a
// fencing epoch at least the hub's floor for it. A pod it forbids is
// stopped — its processes killed — and not started again until it allows
// it. See docs/failover.md, "Fencing".
package fence

import (
	"fmt"
	"strconv"
	"time"

	"github.com/meridian-fed/meridian/member/agent"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Lease is what the gate needs of the member's lease (hubsync.Lease).
type Lease interface {
	Held() bool
	MinEpoch(workload string) int64
	Subscribe(f func())
	StopGrace() time.Duration
}

// Gate implements agent.Gate for singleton fencing.
type Gate struct {
	lease  Lease
	owners map[string]*controller.Informer // by kind
}

var _ agent.Gate = (*Gate)(nil)

// New returns a gate over lease. It asks informers for the workload kinds
// it follows pods' owners through, so call it before the set runs.
func New(lease Lease, informers *controller.InformerSet) *Gate {
	g := &Gate{lease: lease, owners: map[string]*controller.Informer{}}
	for _, k := range []string{"ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"} {
		g.owners[k] = informers.For(resource.MustLookup(k))
	}
	return g
}

// StopGrace implements agent.Gate.
// The lease says how long: half the member's margin.
func (g *Gate) StopGrace() time.Duration { return g.lease.StopGrace() }

// Subscribe implements agent.Gate.
func (g *Gate) Subscribe(f func()) { g.lease.Subscribe(f) }

// Allow implements agent.Gate.
func (g *Gate) Allow(pod *meridianv1.Pod) (bool, string) {
	w, singleton := g.workloadOf(pod)
	if !singleton {
		return true, ""
	}
	if !g.lease.Held() {
		return false, "the member holds no lease from the hub for its singletons (it cannot renew it)"
	}
	epoch := Epoch(pod)
	if floor := g.lease.MinEpoch(w); epoch < floor {
		return false, fmt.Sprintf("the hub fenced %s off this cluster: its fencing epoch %d is below %d", w, epoch, floor)
	}
	return true, ""
}

// Below reports whether pod is a copy of workload ("namespace/Kind/name")
// with a fencing epoch below floor: one a grant's floor forbids.
func (g *Gate) Below(pod *meridianv1.Pod, workload string, floor int64) bool {
	w, _ := g.workloadOf(pod)
	return w == workload && Epoch(pod) < floor
}

// Enforced returns the floors that hold: those of floors for which no
// agent (runs: each agent's RunsAny) still runs, or is stopping, a copy
// below the floor. The member reports them with its lease renewals.
func (g *Gate) Enforced(floors map[string]int64, runs []func(pred func(*meridianv1.Pod) bool) bool) map[string]int64 {
	out := map[string]int64{}
	for w, floor := range floors {
		below := func(p *meridianv1.Pod) bool { return g.Below(p, w, floor) }
		running := false
		for _, r := range runs {
			if r(below) {
				running = true
				break
			}
		}
		if !running {
			out[w] = floor
		}
	}
	return out
}

// workloadOf follows pod's controller owners to the top workload and
// reports its name ("namespace/Kind/name") and whether it is a hub-managed
// singleton. A pod whose owner is not (yet) in the caches counts as a
// singleton if its containers carry a fencing epoch: better held back a
// moment than run twice.
func (g *Gate) workloadOf(pod *meridianv1.Pod) (string, bool) {
	var obj resource.Object = pod
	name := ""
	for range 3 {
		ref := controller.ControllerOf(obj)
		if ref == nil {
			break
		}
		inf := g.owners[ref.GetKind()]
		if inf == nil {
			break
		}
		name = pod.GetMetadata().GetNamespace() + "/" + ref.GetKind() + "/" + ref.GetName()
		owner, ok := inf.Get(pod.GetMetadata().GetNamespace(), ref.GetName())
		if !ok || owner.GetMetadata().GetUid() != ref.GetUid() {
			_, has := epochEnv(pod)
			return name, has
		}
		obj = owner
	}
	if name == "" {
		return "", false
	}
	return name, federation.IsManagedByHub(obj) && federation.IsSingleton(obj)
}

// Epoch is the fencing epoch a pod runs with (MERIDIAN_FENCING_EPOCH in its
// containers; 0 when absent or unreadable).
func Epoch(pod *meridianv1.Pod) int64 {
	v, _ := epochEnv(pod)
	return v
}

func epochEnv(pod *meridianv1.Pod) (int64, bool) {
	for _, c := range pod.GetSpec().GetContainers() {
		for _, e := range c.GetEnv() {
			if e.GetName() == federation.EnvFencingEpoch {
				v, err := strconv.ParseInt(e.GetValue(), 10, 64)
				if err != nil {
					return 0, true
				}
				return v, true
			}
		}
	}
	return 0, false
}
