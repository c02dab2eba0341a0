package failover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// ReasonMoved is the event of a singleton moved by a policy change, once
// its old copy was fenced.
const ReasonMoved = "SingletonMoved"

// plannedMove carries out a singleton's move that the placement controller
// decided (a policy change: spec.plannedClusters) the way failback moves
// a singleton: the clusters it leaves are revoked and released (Fence,
// Revoker), and only then is the binding written with the planned targets
// and the epoch the release returns. Until then the binding keeps its
// targets, so the works controller sends nothing to the new cluster and
// the old copy runs until it is told to stop. A cluster that does not
// answer (partitioned, dead) is released when its lease has expired plus
// the margin, as in a failover.
func (c *Controller) plannedMove(ctx context.Context, w *workload, now time.Time) (done bool, err error) {
	spec := w.binding.GetSpec()
	to := spec.GetPlannedClusters()
	if len(to) == 0 {
		return false, nil
	}
	from := spec.GetClusters()
	leaving := placement.Leaves(from, to)
	fenced := federation.IsSingleton(w.obj) && len(leaving) > 0
	epoch := spec.GetFencingEpoch()
	if fenced {
		var held bool
		if epoch, held, err = c.fencePlanned(ctx, w, leaving, now, "a singleton's move by a policy change"); held || err != nil {
			return held, err
		}
	}
	moved := !sameTargets(from, to)
	reason := fmt.Sprintf("placement changed: moved to %s", gains(from, to, false))
	if fenced {
		reason += fmt.Sprintf(" after its copy on %s stopped (fencing epoch %d)", strings.Join(leaving, ", "), epoch)
	}
	err = c.write(ctx, w, func(b *meridianv1.ResourceBinding) {
		b.Spec.Clusters = cloneTargets(to)
		b.Spec.PlannedClusters = nil
		if fenced {
			b.Spec.FencingEpoch = epoch
		}
		if moved {
			appendHistory(b, MovePlacement, from, to, reason, now)
		}
	})
	if err != nil {
		return false, err
	}
	if fenced {
		c.dropReleased(w.key, epoch)
	}
	if moved {
		for _, cl := range leaving {
			c.metrics.plannedMoves.WithLabelValues(cl).Inc()
		}
		c.event(ctx, w.obj, controller.EventNormal, ReasonMoved, "%s", reason)
	}
	return true, nil
}
