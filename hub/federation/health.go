package federation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// healthController judges every cluster's health — Ready, Suspect or
// Unreachable — from two signals (gossip.Combine): the gossip state of the
// member's node, and its stream heartbeat, which counts as missing while the
// member has no Sync stream. It writes the Ready condition (True, Unknown,
// False) on the Cluster, records an Event on every change, and exports
// meridian_cluster_health.
//
// It evaluates at once when a signal changes — a Sync stream opens or
// closes (the Cluster's Connected condition), a cluster is added or
// removed, gossip reports a node joining, suspected, dead or gone — and
// every HealthInterval besides, for what only time changes (a heartbeat
// growing old). A member whose process dies is Unreachable as soon as its
// stream is seen closed, not up to one interval later: that is part of
// every failover's recovery time.
type healthController struct {
	f        *Federation
	inf      *controller.InformerSet
	clusters *controller.Informer
	rec      *controller.Recorder
	last     map[string]gossip.Health
	// kick asks run for an evaluation now (capacity 1: kicks that come
	// while one is pending are one evaluation).
	kick chan struct{}
}

// gossipEvents is the part of the gossip layer that reports changes as
// they happen (gossip.Gossip has it).
type gossipEvents interface {
	Subscribe() (<-chan gossip.Event, func())
}

func newHealthController(f *Federation, inf *controller.InformerSet, rec *controller.Recorder) *healthController {
	h := &healthController{f: f, inf: inf, clusters: inf.For(clusterKind), rec: rec, last: map[string]gossip.Health{}, kick: make(chan struct{}, 1)}
	h.clusters.AddHandler(controller.Handler{
		OnAdd: func(resource.Object) { h.poke() },
		OnUpdate: func(old, o resource.Object) {
			// Not on heartbeats, nor on the controller's own writes.
			if conditionStatus(old.(*meridianv1.Cluster), condConnected) != conditionStatus(o.(*meridianv1.Cluster), condConnected) {
				h.poke()
			}
		},
		OnDelete: func(resource.Object) { h.poke() },
	})
	return h
}

// poke asks for an evaluation as soon as run can make one.
func (h *healthController) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *healthController) run(ctx context.Context) {
	var events <-chan gossip.Event
	if g, ok := h.f.cfg.Gossip.(gossipEvents); ok {
		ch, cancel := g.Subscribe()
		defer cancel()
		events = ch
	}
	if !h.inf.WaitForSync(ctx) {
		return
	}
	t := time.NewTicker(h.f.cfg.HealthInterval)
	defer t.Stop()
	for {
		h.evaluate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		case _, ok := <-events:
			if !ok {
				events = nil // gossip closed: the stream and the ticker remain
			}
		}
	}
}

// gossipStates returns each member cluster's gossip state. A cluster with
// several nodes in the pool (it should have one) takes the best.
func (h *healthController) gossipStates() (map[string]gossip.State, bool) {
	if h.f.cfg.Gossip == nil {
		return nil, false
	}
	out := map[string]gossip.State{}
	for _, m := range h.f.cfg.Gossip.Members() {
		if m.Role != gossip.RoleMember || m.Cluster == "" {
			continue
		}
		if s, ok := out[m.Cluster]; !ok || m.State < s {
			out[m.Cluster] = m.State
		}
	}
	return out, true
}

func (h *healthController) evaluate(ctx context.Context) {
	states, haveGossip := h.gossipStates()
	now := h.f.cfg.Now()
	seen := map[string]bool{}
	for _, o := range h.clusters.List("", nil) {
		cl := o.(*meridianv1.Cluster)
		name := cl.GetMetadata().GetName()
		seen[name] = true
		connected := conditionStatus(cl, condConnected) == "True"
		var hb time.Time
		if connected && cl.GetStatus().GetLastHeartbeatTime() != nil {
			hb = cl.GetStatus().GetLastHeartbeatTime().AsTime()
		}
		gs, inPool := states[name]
		gossipReason := gs.String()
		switch {
		case !haveGossip:
			// Without gossip the stream is the only signal.
			gs, gossipReason = gossip.StateAlive, "Disabled"
			if !connected {
				gs = gossip.StateDead
			}
		case !inPool:
			gs, gossipReason = gossip.StateDead, "NotInPool"
		}
		health := gossip.Combine(gs, hb, now, h.f.cfg.HeartbeatTimeout)
		for _, x := range []gossip.Health{gossip.HealthReady, gossip.HealthSuspect, gossip.HealthUnreachable} {
			v := 0.0
			if x == health {
				v = 1
			}
			h.f.metrics.health.WithLabelValues(name, x.String()).Set(v)
		}
		ready := readyCondition(health, connected, hb, gs, gossipReason, now)
		gossipCond := &meridianv1.Condition{Type: condGossip, Status: "True", Reason: gossipReason, Message: "gossip: " + gs.String()}
		if gs != gossip.StateAlive {
			gossipCond.Status = "False"
		}
		if prev, ok := h.last[name]; ok && prev == health && conditionReason(cl, condReady) == ready.GetReason() &&
			conditionReason(cl, condGossip) == gossipCond.GetReason() {
			continue
		}
		changed := conditionReason(cl, condReady) != ready.GetReason()
		_, err := h.f.store.Update(ctx, clusterKind, "", name, func(o resource.Object) error {
			c := o.(*meridianv1.Cluster)
			if c.Status == nil {
				c.Status = &meridianv1.ClusterStatus{}
			}
			c.Status.Conditions = setCondition(c.Status.Conditions, ready, now)
			c.Status.Conditions = setCondition(c.Status.Conditions, gossipCond, now)
			return nil
		})
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) && ctx.Err() == nil {
				h.f.log.Warn("failed to record cluster health", "cluster", name, "err", err)
			}
			continue
		}
		h.last[name] = health
		if changed {
			h.f.metrics.transitions.WithLabelValues(name, health.String()).Inc()
			typ := controller.EventNormal
			if health != gossip.HealthReady {
				typ = controller.EventWarning
			}
			h.f.log.Info("cluster health changed", "cluster", name, "health", health.String(), "why", ready.GetMessage())
			h.rec.Eventf(ctx, cl, typ, "Cluster"+health.String(), "cluster %s is %s: %s", name, health, ready.GetMessage())
		}
	}
	for name := range h.last {
		if !seen[name] {
			delete(h.last, name)
			for _, x := range []gossip.Health{gossip.HealthReady, gossip.HealthSuspect, gossip.HealthUnreachable} {
				h.f.metrics.health.DeleteLabelValues(name, x.String())
			}
		}
	}
}

func readyCondition(health gossip.Health, connected bool, hb time.Time, gs gossip.State, gossipReason string, now time.Time) *meridianv1.Condition {
	stream := "no Sync stream"
	if connected {
		stream = "last heartbeat " + now.Sub(hb).Round(time.Millisecond).String() + " ago"
	}
	msg := fmt.Sprintf("gossip %s (%s), %s", gs, gossipReason, stream)
	c := &meridianv1.Condition{Type: condReady, Reason: health.String(), Message: msg}
	switch health {
	case gossip.HealthReady:
		c.Status = "True"
	case gossip.HealthSuspect:
		c.Status = "Unknown"
	default:
		c.Status = "False"
	}
	return c
}

func conditionStatus(cl *meridianv1.Cluster, typ string) string {
	for _, c := range cl.GetStatus().GetConditions() {
		if c.GetType() == typ {
			return c.GetStatus()
		}
	}
	return ""
}

func conditionReason(cl *meridianv1.Cluster, typ string) string {
	for _, c := range cl.GetStatus().GetConditions() {
		if c.GetType() == typ {
			return c.GetReason()
		}
	}
	return ""
}
