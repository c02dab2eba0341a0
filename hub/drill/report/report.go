// Package report renders a Drill's report — its status — as text, JSON,
// Markdown or a self-contained HTML page with a timeline chart in inline
// SVG (no external assets), for the CLI (`meridian drill report`) and for
// an audit.
package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Formats are the formats Render knows.
var Formats = []string{"text", "json", "markdown", "html"}

// Render writes d's report in format (text, json, markdown or html).
func Render(w io.Writer, d *meridianv1.Drill, format string) error {
	switch format {
	case "", "text":
		return Text(w, d)
	case "json":
		return JSON(w, d)
	case "markdown", "md":
		return Markdown(w, d)
	case "html":
		return HTML(w, d)
	}
	return fmt.Errorf("unknown report format %q: use one of %s", format, strings.Join(Formats, ", "))
}

// JSON writes the drill object (spec and status) as indented JSON.
func JSON(w io.Writer, d *meridianv1.Drill) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(d)
	if err != nil {
		return fmt.Errorf("failed to encode the report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Scope is a drill scope as the CLI writes it.
func Scope(s *meridianv1.DrillScope) string {
	switch {
	case s.GetCluster() != "":
		return "cluster=" + s.GetCluster()
	case s.GetDatacenter() != "":
		return "datacenter=" + s.GetDatacenter()
	case s.GetRegion() != "":
		return "region=" + s.GetRegion()
	}
	return ""
}

// Duration formats a measured duration to the millisecond ("-" when unset).
func Duration(d interface{ AsDuration() time.Duration }, set bool) string {
	if !set {
		return "-"
	}
	return d.AsDuration().Round(time.Millisecond).String()
}

func objectiveOr(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func targets(ts []*meridianv1.TargetCluster) string {
	if len(ts) == 0 {
		return "-"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s(%d)", t.GetName(), t.GetReplicas())
	}
	return strings.Join(parts, " ")
}

func workloadName(r *meridianv1.DrillWorkloadResult) string { return refName(r.GetWorkload()) }

func refName(ref *meridianv1.ObjectReference) string {
	return strings.ToLower(ref.GetKind()) + "/" + ref.GetNamespace() + "/" + ref.GetName()
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// offset is t relative to the drill's start.
func offset(d *meridianv1.Drill, t time.Time) string {
	start := d.GetStatus().GetStartTime()
	if start == nil {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("+%.3fs", t.Sub(start.AsTime()).Seconds())
}

func when(t interface{ AsTime() time.Time }, set bool) string {
	if !set {
		return "-"
	}
	return t.AsTime().UTC().Format("2006-01-02 15:04:05.000Z")
}

// summary lines shared by text and Markdown.
func summary(d *meridianv1.Drill) [][2]string {
	st, sp := d.GetStatus(), d.GetSpec()
	dur := "-"
	if st.GetStartTime() != nil && st.GetCompletionTime() != nil {
		dur = st.GetCompletionTime().AsTime().Sub(st.GetStartTime().AsTime()).Round(time.Millisecond).String()
	}
	return [][2]string{
		{"Drill", d.GetMetadata().GetName()},
		{"Scope", Scope(sp.GetScope())},
		{"Mode", sp.GetMode()},
		{"Phase", st.GetPhase()},
		{"Verdict", orDash(st.GetVerdict())},
		{"Started", when(st.GetStartTime(), st.GetStartTime() != nil)},
		{"Completed", when(st.GetCompletionTime(), st.GetCompletionTime() != nil)},
		{"Duration", dur},
		{"RTO", fmt.Sprintf("%s (objective %s)", Duration(st.GetRto(), st.GetRto() != nil), objectiveOr(sp.GetRto()))},
		{"RPO", fmt.Sprintf("%s (objective %s)", Duration(st.GetRpo(), st.GetRpo() != nil), objectiveOr(sp.GetRpo()))},
		{"Message", orDash(st.GetMessage())},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
