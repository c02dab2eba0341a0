package report

import (
	"fmt"
	"io"
	"strings"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Markdown writes the report as a Markdown document (GitHub tables).
func Markdown(w io.Writer, d *meridianv1.Drill) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Drill %s: %s\n\n| | |\n|---|---|\n", d.GetMetadata().GetName(), orDash(d.GetStatus().GetVerdict()))
	for _, kv := range summary(d)[1:] {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], mdEscape(kv[1]))
	}
	b.WriteString("\n## Timeline\n\n| Time | Step | Detail |\n|---|---|---|\n")
	for _, s := range d.GetStatus().GetTimeline() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", offset(d, s.GetTime().AsTime()), mdEscape(s.GetStep()), mdEscape(s.GetDetail()))
	}
	b.WriteString("\n## Workloads\n\n| Workload | From | To | RTO | Met | RPO | Met |\n|---|---|---|---|---|---|---|\n")
	for _, r := range d.GetStatus().GetWorkloads() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", mdEscape(workloadName(r)), targets(r.GetFrom()), targets(r.GetTo()),
			Duration(r.GetRto(), r.GetRto() != nil), met(r.GetRtoMet()), Duration(r.GetRpo(), r.GetRpo() != nil), met(r.GetRpoMet()))
	}
	if sk := d.GetStatus().GetSkipped(); len(sk) > 0 {
		b.WriteString("\n## Skipped\n\n| Workload | Reason |\n|---|---|\n")
		for _, s := range sk {
			fmt.Fprintf(&b, "| %s | %s |\n", mdEscape(refName(s.GetWorkload())), mdEscape(s.GetReason()))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}
