package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Text writes the report as aligned plain text.
func Text(w io.Writer, d *meridianv1.Drill) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range summary(d) {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	st := d.GetStatus()
	fmt.Fprintf(tw, "\nTimeline:\n")
	for _, s := range st.GetTimeline() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", offset(d, s.GetTime().AsTime()), s.GetStep(), s.GetDetail())
	}
	fmt.Fprintf(tw, "\nWorkloads:\n  WORKLOAD\tFROM\tTO\tRTO\tMET\tRPO\tMET\tNOTE\n")
	for _, r := range st.GetWorkloads() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", workloadName(r), targets(r.GetFrom()), targets(r.GetTo()),
			Duration(r.GetRto(), r.GetRto() != nil), met(r.GetRtoMet()), Duration(r.GetRpo(), r.GetRpo() != nil), met(r.GetRpoMet()), orDash(strings.TrimSpace(r.GetMessage())))
	}
	if sk := st.GetSkipped(); len(sk) > 0 {
		fmt.Fprintf(tw, "\nSkipped:\n  WORKLOAD\tREASON\n")
		for _, s := range sk {
			fmt.Fprintf(tw, "  %s\t%s\n", refName(s.GetWorkload()), s.GetReason())
		}
	}
	return tw.Flush()
}
