package deployment

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/controller/podutil"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// maxCollisions bounds the hashes tried for a new ReplicaSet's name when
// the name is taken by a ReplicaSet with another template.
const maxCollisions = 10

// errStale ends an Update whose decision was made on an older version of
// the object than the stored one.
var errStale = errors.New("changed since it was read")

// rolloutRolling takes one step of a rolling update: create the new
// ReplicaSet, or scale it up within maxSurge, or scale old ones down
// within maxUnavailable; and once the rollout is complete, prune history.
func (c *Controller) rolloutRolling(ctx context.Context, s *state) error {
	if err := c.ensureNewRS(ctx, s, true); err != nil {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	scaled, err := c.reconcileNew(ctx, s)
	if err != nil || scaled {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	scaled, err = c.reconcileOld(ctx, s)
	if err != nil || scaled {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	var cleanErr error
	if complete(s) {
		cleanErr = c.cleanup(ctx, s)
	}
	return errors.Join(cleanErr, c.syncStatus(ctx, s))
}

// rolloutRecreate scales every old ReplicaSet to 0, waits until their pods
// are gone, then creates (or scales) the new one to spec.replicas: old and
// new pods never run together.
func (c *Controller) rolloutRecreate(ctx context.Context, s *state) error {
	if err := c.ensureNewRS(ctx, s, false); err != nil {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	scaled := false
	for _, rs := range s.old() {
		if replicas(rs) == 0 {
			continue
		}
		if err := c.scale(ctx, s, rs, 0); err != nil {
			return errors.Join(err, c.syncStatus(ctx, s))
		}
		scaled = true
	}
	if scaled || oldPodsRunning(s) {
		// Their pods' deletions queue the Deployment again.
		return c.syncStatus(ctx, s)
	}
	if err := c.ensureNewRS(ctx, s, true); err != nil {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	if err := c.scale(ctx, s, s.newRS, s.desired); err != nil {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	var cleanErr error
	if complete(s) {
		cleanErr = c.cleanup(ctx, s)
	}
	return errors.Join(cleanErr, c.syncStatus(ctx, s))
}

// oldPodsRunning reports whether an old ReplicaSet still has pods,
// counting terminating ones: their processes may still run.
func oldPodsRunning(s *state) bool {
	for _, rs := range s.old() {
		if rs.GetStatus().GetReplicas() > 0 || s.runningPods(rs) > 0 {
			return true
		}
	}
	return false
}

// syncPaused keeps a paused Deployment's size without rolling anything
// out: no new ReplicaSet is created for a changed template, but a changed
// spec.replicas is applied to the ReplicaSets there are, in proportion.
func (c *Controller) syncPaused(ctx context.Context, s *state) error {
	if err := c.ensureNewRS(ctx, s, false); err != nil {
		return errors.Join(err, c.syncStatus(ctx, s))
	}
	var active []*meridianv1.ReplicaSet
	total := int32(0)
	for _, rs := range s.rss {
		if replicas(rs) > 0 {
			active = append(active, rs)
			total += replicas(rs)
		}
	}
	var err error
	switch {
	case len(active) == 0 && s.newRS != nil:
		err = c.scale(ctx, s, s.newRS, s.desired)
	case len(active) == 0 && len(s.rss) > 0:
		err = c.scale(ctx, s, s.rss[len(s.rss)-1], s.desired)
	case len(active) == 1:
		err = c.scale(ctx, s, active[0], s.desired)
	case total > s.desired+s.surge:
		err = c.scaleProportionally(ctx, s, active, s.desired+s.surge)
	case total < s.desired:
		err = c.scaleProportionally(ctx, s, active, s.desired)
	}
	if err == nil {
		err = c.cleanup(ctx, s)
	}
	return errors.Join(err, c.syncStatus(ctx, s))
}

// scaleProportionally sizes active ReplicaSets to total replicas, each in
// proportion to its current size; the remainder goes to the largest
// fractions, then to the newest.
func (c *Controller) scaleProportionally(ctx context.Context, s *state, active []*meridianv1.ReplicaSet, total int32) error {
	cur := int64(0)
	for _, rs := range active {
		cur += int64(replicas(rs))
	}
	type share struct {
		rs   *meridianv1.ReplicaSet
		n    int32
		frac int64
		idx  int
	}
	shares := make([]share, len(active))
	assigned := int32(0)
	for i, rs := range active {
		num := int64(replicas(rs)) * int64(total)
		shares[i] = share{rs: rs, n: int32(num / cur), frac: num % cur, idx: i}
		assigned += shares[i].n
	}
	order := slices.Clone(shares)
	slices.SortStableFunc(order, func(a, b share) int {
		if a.frac != b.frac {
			return int(b.frac - a.frac)
		}
		return b.idx - a.idx
	})
	for i := 0; assigned < total; i = (i + 1) % len(order) {
		shares[order[i].idx].n++
		assigned++
	}
	var errs []error
	for _, sh := range shares {
		errs = append(errs, c.scale(ctx, s, sh.rs, sh.n))
	}
	return errors.Join(errs...)
}

// ensureNewRS finds the ReplicaSet of the current template and makes it
// the newest revision; if there is none and create is set, it creates it,
// with as many replicas as the strategy allows right away.
func (c *Controller) ensureNewRS(ctx context.Context, s *state, create bool) error {
	maxOld := int64(0)
	for _, rs := range s.old() {
		maxOld = max(maxOld, revision(rs))
	}
	if s.newRS != nil {
		return c.syncNewRS(ctx, s, maxOld)
	}
	if !create {
		return nil
	}
	d := s.d
	n := s.desired
	if !isRecreate(d) {
		n = newRSReplicas(s, 0)
	}
	for collision := int32(0); collision < maxCollisions; collision++ {
		var cc *int32
		if collision > 0 {
			cc = proto.Int32(collision)
		}
		hash, err := podutil.TemplateHash(d.GetSpec().GetTemplate(), cc)
		if err != nil {
			return err
		}
		rs := newReplicaSet(d, hash, maxOld+1, n)
		created, err := c.st.Create(ctx, rs)
		if err == nil {
			got := created.(*meridianv1.ReplicaSet)
			s.newRS, s.created = got, true
			s.put(got)
			if n > 0 {
				c.event(ctx, d, controller.EventNormal, ReasonScalingReplicaSet, "Scaled up replica set %s from 0 to %d", got.GetMetadata().GetName(), n)
			}
			return nil
		}
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("failed to create replica set %s: %w", rs.GetMetadata().GetName(), err)
		}
		existing, gerr := c.st.Get(ctx, rsKind, rs.GetMetadata().GetNamespace(), rs.GetMetadata().GetName())
		if gerr != nil {
			return fmt.Errorf("failed to read replica set %s: %w", rs.GetMetadata().GetName(), gerr)
		}
		ref := controller.ControllerOf(existing)
		if (ref == nil || ref.GetUid() == d.GetMetadata().GetUid()) &&
			podutil.TemplatesEqual(existing.(*meridianv1.ReplicaSet).GetSpec().GetTemplate(), d.GetSpec().GetTemplate(), podutil.PodTemplateHashLabel) {
			// Ours, or an orphan of our template to adopt, that the cache
			// does not show yet: its event will queue us again.
			return fmt.Errorf("replica set %s is not in the cache yet: %w", rs.GetMetadata().GetName(), storage.ErrConflict)
		}
		// A hash collision: another template has that name. Try the next.
	}
	return fmt.Errorf("failed to name a new replica set for %s: %d hash collisions", d.GetMetadata().GetName(), maxCollisions)
}

// syncNewRS makes the current template's ReplicaSet the newest revision
// (a rollback, or a template that came back, reuses its old ReplicaSet
// under a new revision) and keeps its minReadySeconds the Deployment's.
func (c *Controller) syncNewRS(ctx context.Context, s *state, maxOld int64) error {
	rs := s.newRS
	rev := revision(rs)
	minReady := s.d.GetSpec().GetMinReadySeconds()
	if rev > maxOld && rs.GetSpec().GetMinReadySeconds() == minReady {
		return nil
	}
	uid := rs.GetMetadata().GetUid()
	got, err := c.st.Update(ctx, rsKind, rs.GetMetadata().GetNamespace(), rs.GetMetadata().GetName(), func(o resource.Object) error {
		if o.GetMetadata().GetUid() != uid {
			return errStale
		}
		r := o.(*meridianv1.ReplicaSet)
		r.Spec.MinReadySeconds = minReady
		if cur := revision(r); cur <= maxOld {
			md := resource.Meta(r)
			if md.Annotations == nil {
				md.Annotations = map[string]string{}
			}
			if cur > 0 {
				hist := md.Annotations[RevisionHistoryAnnotation]
				md.Annotations[RevisionHistoryAnnotation] = strings.TrimPrefix(hist+","+strconv.FormatInt(cur, 10), ",")
			}
			md.Annotations[RevisionAnnotation] = strconv.FormatInt(maxOld+1, 10)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to update the revision of replica set %s: %w", rs.GetMetadata().GetName(), err)
	}
	s.put(got.(*meridianv1.ReplicaSet))
	return nil
}

// newReplicaSet is the ReplicaSet of d's template with hash and revision.
func newReplicaSet(d *meridianv1.Deployment, hash string, rev int64, n int32) *meridianv1.ReplicaSet {
	tmpl := podutil.TemplateWithLabel(d.GetSpec().GetTemplate(), podutil.PodTemplateHashLabel, hash)
	sel := proto.Clone(d.GetSpec().GetSelector()).(*meridianv1.LabelSelector)
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[podutil.PodTemplateHashLabel] = hash
	ann := map[string]string{RevisionAnnotation: strconv.FormatInt(rev, 10)}
	if cause, ok := d.GetMetadata().GetAnnotations()[ChangeCauseAnnotation]; ok {
		ann[ChangeCauseAnnotation] = cause
	}
	return &meridianv1.ReplicaSet{
		ApiVersion: rsKind.APIVersions[0],
		Kind:       rsKind.Kind,
		Metadata: &meridianv1.ObjectMeta{
			Name:            d.GetMetadata().GetName() + "-" + hash,
			Namespace:       d.GetMetadata().GetNamespace(),
			Labels:          maps.Clone(tmpl.GetMetadata().GetLabels()),
			Annotations:     ann,
			OwnerReferences: []*meridianv1.OwnerReference{controller.OwnerRef(d)},
		},
		Spec: &meridianv1.ReplicaSetSpec{
			Replicas:        proto.Int32(n),
			Selector:        sel,
			Template:        tmpl,
			MinReadySeconds: d.GetSpec().GetMinReadySeconds(),
		},
	}
}

// newRSReplicas is how many replicas the new ReplicaSet may have now, from
// newSpec: up to spec.replicas, as long as every ReplicaSet's pods (at
// most, see upper) stay within replicas+maxSurge.
func newRSReplicas(s *state, newSpec int32) int32 {
	if newSpec >= s.desired {
		return s.desired
	}
	total := int32(0)
	for _, rs := range s.rss {
		total += s.upper(rs)
	}
	room := s.desired + s.surge - total
	if room <= 0 {
		return newSpec
	}
	return min(newSpec+room, s.desired)
}

// reconcileNew scales the new ReplicaSet toward spec.replicas within
// maxSurge (or down to it, if the Deployment shrank).
func (c *Controller) reconcileNew(ctx context.Context, s *state) (bool, error) {
	cur := replicas(s.newRS)
	target := newRSReplicas(s, cur)
	if target == cur {
		return false, nil
	}
	return true, c.scale(ctx, s, s.newRS, target)
}

// reconcileOld scales old ReplicaSets down as far as maxUnavailable allows,
// oldest first. A ReplicaSet deletes its unavailable pods first, so
// scaling one from spec to its available count costs no availability;
// below that, each replica removed is an available pod, paid from the
// budget of available pods above replicas-maxUnavailable. Every quantity
// is a lower bound of what will be available, so the bound holds even
// while ReplicaSets catch up with their specs.
func (c *Controller) reconcileOld(ctx context.Context, s *state) (bool, error) {
	if !slices.ContainsFunc(s.old(), func(rs *meridianv1.ReplicaSet) bool { return replicas(rs) > 0 }) {
		return false, nil // nothing to scale down: spare counting every pod
	}
	budget := -(s.desired - s.unavail)
	for _, rs := range s.rss {
		budget += s.lower(rs)
	}
	scaled := false
	var errs []error
	for _, rs := range s.old() {
		cur := replicas(rs)
		if cur == 0 {
			continue
		}
		lo := s.lower(rs)
		take := min(lo, max(budget, 0))
		budget -= take
		if target := lo - take; target < cur {
			errs = append(errs, c.scale(ctx, s, rs, target))
			scaled = true
		}
	}
	return scaled, errors.Join(errs...)
}

// scale sets rs's spec.replicas to n, if the stored ReplicaSet still has
// the replicas this sync read (otherwise the cache was stale and the
// decision must be made again).
func (c *Controller) scale(ctx context.Context, s *state, rs *meridianv1.ReplicaSet, n int32) error {
	from := replicas(rs)
	if from == n {
		return nil
	}
	uid := rs.GetMetadata().GetUid()
	got, err := c.st.Update(ctx, rsKind, rs.GetMetadata().GetNamespace(), rs.GetMetadata().GetName(), func(o resource.Object) error {
		r := o.(*meridianv1.ReplicaSet)
		if r.GetMetadata().GetUid() != uid || replicas(r) != from {
			return errStale
		}
		r.Spec.Replicas = proto.Int32(n)
		return nil
	})
	if err != nil {
		if errors.Is(err, errStale) {
			err = fmt.Errorf("%w: %w", err, storage.ErrConflict)
		}
		return fmt.Errorf("failed to scale replica set %s to %d: %w", rs.GetMetadata().GetName(), n, err)
	}
	s.put(got.(*meridianv1.ReplicaSet))
	dir := "up"
	if n < from {
		dir = "down"
	}
	c.event(ctx, s.d, controller.EventNormal, ReasonScalingReplicaSet, "Scaled %s replica set %s from %d to %d", dir, rs.GetMetadata().GetName(), from, n)
	return nil
}

// complete reports whether the rollout is done: the new ReplicaSet has
// every replica, all available, and no old pod is left.
func complete(s *state) bool {
	if s.newRS == nil {
		return false
	}
	st := s.newRS.GetStatus()
	if replicas(s.newRS) != s.desired || st.GetReplicas() != s.desired || st.GetAvailableReplicas() != s.desired ||
		st.GetObservedGeneration() < s.newRS.GetMetadata().GetGeneration() {
		return false
	}
	for _, rs := range s.old() {
		if replicas(rs) != 0 || rs.GetStatus().GetReplicas() != 0 {
			return false
		}
	}
	return true
}

// cleanup deletes the oldest old ReplicaSets beyond revisionHistoryLimit,
// among those scaled to 0 whose pods are gone.
func (c *Controller) cleanup(ctx context.Context, s *state) error {
	limit := int32(DefaultRevisionHistoryLimit)
	if l := s.d.GetSpec().RevisionHistoryLimit; l != nil {
		limit = *l
	}
	var idle []*meridianv1.ReplicaSet
	for _, rs := range s.old() {
		if replicas(rs) == 0 && rs.GetStatus().GetReplicas() == 0 && s.runningPods(rs) == 0 &&
			rs.GetStatus().GetObservedGeneration() >= rs.GetMetadata().GetGeneration() {
			idle = append(idle, rs)
		}
	}
	excess := len(idle) - int(limit)
	if excess <= 0 {
		return nil
	}
	slices.SortStableFunc(idle, func(a, b *meridianv1.ReplicaSet) int { return int(revision(a) - revision(b)) })
	var errs []error
	for _, rs := range idle[:excess] {
		md := rs.GetMetadata()
		if _, err := podutil.DeleteByUID(ctx, c.st, rsKind, md.GetNamespace(), md.GetName(), md.GetUid()); err != nil {
			errs = append(errs, err)
			continue
		}
		c.log.Debug("pruned old replica set", "deployment", s.d.GetMetadata().GetName(), "replicaset", md.GetName(), "revision", revision(rs))
	}
	return errors.Join(errs...)
}
