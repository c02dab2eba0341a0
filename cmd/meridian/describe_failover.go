package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// describeFailover prints what failover keeps in a binding: the copies
// being evicted, the clusters failed over from (failback brings replicas
// back to them), the fencing epoch, a singleton's move under way, and the
// history of moves.
func describeFailover(w io.Writer, b *meridianv1.ResourceBinding, now time.Time) {
	spec := b.GetSpec()
	if e := spec.GetFencingEpoch(); e > 0 {
		fmt.Fprintf(w, "  %-12s%d\n", "Fencing:", e)
	}
	if pl := spec.GetPlannedClusters(); len(pl) > 0 {
		fmt.Fprintf(w, "  %-12s%s (a singleton: it starts there once its copy on %s has stopped)\n", "Moving to:",
			targetList(pl), strings.Join(placement.Leaves(spec.GetClusters(), pl), ", "))
	}
	// One tabwriter per table: their columns are unrelated.
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if ev := spec.GetEvicting(); len(ev) > 0 {
		fmt.Fprintln(tw, "  EVICTING\tREPLICAS\tSINCE\tREASON")
		for _, e := range ev {
			fmt.Fprintf(tw, "  %s\t%d\t%s ago\t%s\n", e.GetCluster(), e.GetReplicas(), shortDuration(now.Sub(e.GetSince().AsTime())), e.GetReason())
		}
	}
	tw.Flush()
	if fo := spec.GetFailedOver(); len(fo) > 0 {
		fmt.Fprintln(tw, "  FAILED OVER\tREPLICAS\tAGE")
		for _, f := range fo {
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", f.GetCluster(), f.GetReplicas(), shortDuration(now.Sub(f.GetTime().AsTime())))
		}
	}
	tw.Flush()
	if h := b.GetStatus().GetHistory(); len(h) > 0 {
		fmt.Fprintln(tw, "  HISTORY\tAGE\tFROM\tTO\tREASON")
		for _, m := range h {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", m.GetType(), shortDuration(now.Sub(m.GetTime().AsTime())),
				targetList(m.GetFrom()), targetList(m.GetTo()), m.GetReason())
		}
	}
	tw.Flush()
}

// targetList renders targets as "dc-a1=3,dc-a2=3" ("-" for none).
func targetList(ts []*meridianv1.TargetCluster) string {
	if len(ts) == 0 {
		return "-"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s=%d", t.GetName(), t.GetReplicas())
	}
	return strings.Join(parts, ",")
}
