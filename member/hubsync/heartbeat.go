package hubsync

import (
	"context"
	"fmt"
	"sort"
	"time"

	kres "k8s.io/apimachinery/pkg/api/resource"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// resourcePods is the resource a node's allocatable bounds its pod count
// with; every pod counts 1 against it.
const resourcePods = "pods"

// quantities sums resource quantities by name.
type quantities map[string]*kres.Quantity

func (q quantities) add(name string, v kres.Quantity) {
	if cur, ok := q[name]; ok {
		cur.Add(v)
		return
	}
	c := v.DeepCopy()
	q[name] = &c
}

// addMap adds a quantity map ("cpu": "500m"); it returns the first value
// that does not parse (the others are still added).
func (q quantities) addMap(m map[string]string) error {
	var bad error
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v, err := kres.ParseQuantity(m[n])
		if err != nil {
			if bad == nil {
				bad = fmt.Errorf("%s quantity %q: %w", n, m[n], err)
			}
			continue
		}
		q.add(n, v)
	}
	return bad
}

func (q quantities) strings() map[string]string {
	out := make(map[string]string, len(q))
	for n, v := range q {
		out[n] = v.String()
	}
	return out
}

// heartbeat is the member's heartbeat now: its nodes, their capacity and
// allocatable summed, and available = allocatable minus the requests of
// the pods bound to them that have not finished (floored at zero).
func (c *Client) heartbeat(ctx context.Context) (*meridianv1.Heartbeat, error) {
	nodes, err := c.list(ctx, c.nodes, kindNode)
	if err != nil {
		return nil, err
	}
	pods, err := c.list(ctx, c.pods, kindPod)
	if err != nil {
		return nil, err
	}
	return computeHeartbeat(nodes, pods, time.Now(), func(what string, err error) {
		c.log.Debug("ignoring a quantity in the heartbeat", "object", what, "err", err)
	}), nil
}

// list reads every object of kind from inf's cache once it has synced, from
// the store otherwise.
func (c *Client) list(ctx context.Context, inf *controller.Informer, kind *resource.Kind) ([]resource.Object, error) {
	if inf != nil && inf.HasSynced() {
		return inf.List("", nil), nil
	}
	objs, _, err := c.cfg.Store.List(ctx, kind, "", nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list %s: %w", kind.Plural, err)
	}
	return objs, nil
}

func computeHeartbeat(nodes, pods []resource.Object, now time.Time, bad func(what string, err error)) *meridianv1.Heartbeat {
	capacity, allocatable := quantities{}, quantities{}
	hb := &meridianv1.Heartbeat{Time: timestamppb.New(now)}
	known := map[string]bool{}
	for _, o := range nodes {
		n, ok := o.(*meridianv1.Node)
		if !ok {
			continue
		}
		known[n.GetMetadata().GetName()] = true
		hb.NodeCount++
		if nodeReady(n) {
			hb.ReadyNodeCount++
		}
		if err := capacity.addMap(n.GetStatus().GetCapacity()); err != nil {
			bad("node "+n.GetMetadata().GetName(), err)
		}
		if err := allocatable.addMap(n.GetStatus().GetAllocatable()); err != nil {
			bad("node "+n.GetMetadata().GetName(), err)
		}
	}
	requested := quantities{}
	for _, o := range pods {
		p, ok := o.(*meridianv1.Pod)
		if !ok || !known[p.GetSpec().GetNodeName()] {
			continue
		}
		if ph := p.GetStatus().GetPhase(); ph == "Succeeded" || ph == "Failed" {
			continue
		}
		for n, v := range podRequests(p, bad) {
			requested.add(n, *v)
		}
		requested.add(resourcePods, kres.MustParse("1"))
	}
	available := quantities{}
	for n, v := range allocatable {
		a := v.DeepCopy()
		if r, ok := requested[n]; ok {
			a.Sub(*r)
		}
		if a.Sign() < 0 {
			a = kres.Quantity{Format: a.Format}
		}
		available[n] = &a
	}
	hb.Capacity, hb.Allocatable, hb.Available = capacity.strings(), allocatable.strings(), available.strings()
	return hb
}

// nodeReady reports whether a node's Ready condition is True.
func nodeReady(n *meridianv1.Node) bool {
	for _, c := range n.GetStatus().GetConditions() {
		if c.GetType() == "Ready" {
			return c.GetStatus() == "True"
		}
	}
	return false
}

// podRequests is what a pod holds on its node, as the scheduler counts it:
// per resource, the larger of its containers' requests summed and its
// largest init container's request.
func podRequests(p *meridianv1.Pod, bad func(what string, err error)) quantities {
	what := "pod " + p.GetMetadata().GetNamespace() + "/" + p.GetMetadata().GetName()
	sum := quantities{}
	for _, c := range p.GetSpec().GetContainers() {
		if err := sum.addMap(c.GetResources().GetRequests()); err != nil {
			bad(what, err)
		}
	}
	for _, c := range p.GetSpec().GetInitContainers() {
		init := quantities{}
		if err := init.addMap(c.GetResources().GetRequests()); err != nil {
			bad(what, err)
		}
		for n, v := range init {
			if cur, ok := sum[n]; !ok || v.Cmp(*cur) > 0 {
				sum[n] = v
			}
		}
	}
	delete(sum, resourcePods)
	return sum
}
