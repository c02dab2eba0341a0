package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Chart geometry (SVG user units).
const (
	chartWidth = 960
	labelWidth = 260
	plotRight  = 940
	stepLane   = 70 // height of the steps lane
	rowHeight  = 18
	axisHeight = 30
	maxBars    = 500
)

// svgStep is a step marker; svgBar one workload's bar; svgTick an axis tick.
type svgStep struct {
	X         float64
	LabelY    float64
	Step, Tip string
}

type svgBar struct {
	Y, X, W float64
	Label   string
	Met     bool
	Ready   bool
	Tip     string
	TextY   float64
}

type svgTick struct {
	X     float64
	Label string
}

type chart struct {
	Width, Height, PlotLeft, PlotRight, AxisY, TickY, BarsTop float64
	Steps                                                     []svgStep
	Bars                                                      []svgBar
	Ticks                                                     []svgTick
	HasObjective                                              bool
	ObjectiveX                                                float64
	ObjectiveLabel                                            string
	Omitted                                                   int
}

// span is the time range the chart shows.
func span(d *meridianv1.Drill) (time.Time, time.Time) {
	st := d.GetStatus()
	t0 := st.GetStartTime().AsTime()
	t1 := t0
	see := func(t time.Time) {
		if t.After(t1) {
			t1 = t
		}
	}
	if st.GetCompletionTime() != nil {
		see(st.GetCompletionTime().AsTime())
	}
	for _, s := range st.GetTimeline() {
		see(s.GetTime().AsTime())
	}
	for _, w := range st.GetWorkloads() {
		if w.GetReadyAt() != nil {
			see(w.GetReadyAt().AsTime())
		}
	}
	if !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	return t0, t1
}

// buildChart lays the timeline chart out.
func buildChart(d *meridianv1.Drill) chart {
	st := d.GetStatus()
	t0, t1 := span(d)
	objective, _ := time.ParseDuration(d.GetSpec().GetRto())
	if objective > 0 {
		// Keep the objective line in view when it is near.
		for _, w := range st.GetWorkloads() {
			if w.GetDisruptedAt() != nil {
				if end := w.GetDisruptedAt().AsTime().Add(objective); end.After(t1) && end.Sub(t0) < 3*t1.Sub(t0) {
					t1 = end
				}
				break
			}
		}
	}
	total := t1.Sub(t0).Seconds()
	x := func(t time.Time) float64 {
		return math.Round((labelWidth+(t.Sub(t0).Seconds()/total)*(plotRight-labelWidth))*10) / 10
	}
	c := chart{Width: chartWidth, PlotLeft: labelWidth, PlotRight: plotRight}
	for i, s := range st.GetTimeline() {
		c.Steps = append(c.Steps, svgStep{X: x(s.GetTime().AsTime()), LabelY: float64(14 + (i%4)*14), Step: s.GetStep(),
			Tip: fmt.Sprintf("%s %s: %s", offset(d, s.GetTime().AsTime()), s.GetStep(), s.GetDetail())})
	}
	c.BarsTop = stepLane
	ws := st.GetWorkloads()
	if len(ws) > maxBars {
		c.Omitted = len(ws) - maxBars
		ws = ws[:maxBars]
	}
	for i, w := range ws {
		y := c.BarsTop + float64(i*rowHeight)
		b := svgBar{Y: y + 3, TextY: y + 13, Label: workloadName(w), Met: w.GetRtoMet(), Ready: w.GetReadyAt() != nil}
		if w.GetDisruptedAt() == nil {
			c.Bars = append(c.Bars, b)
			continue
		}
		from, to := w.GetDisruptedAt().AsTime(), t1
		if b.Ready {
			to = w.GetReadyAt().AsTime()
		}
		b.X, b.W = x(from), math.Max(1, x(to)-x(from))
		b.Tip = fmt.Sprintf("%s: RTO %s, from %s to %s", b.Label, Duration(w.GetRto(), w.GetRto() != nil), targets(w.GetFrom()), targets(w.GetTo()))
		c.Bars = append(c.Bars, b)
	}
	c.AxisY = c.BarsTop + float64(len(ws)*rowHeight) + 6
	c.TickY = c.AxisY + 4
	c.Height = c.AxisY + axisHeight
	for i := 0; i <= 5; i++ {
		t := t0.Add(time.Duration(float64(t1.Sub(t0)) * float64(i) / 5))
		c.Ticks = append(c.Ticks, svgTick{X: x(t), Label: fmt.Sprintf("+%.1fs", t.Sub(t0).Seconds())})
	}
	if objective > 0 {
		for _, w := range st.GetWorkloads() {
			if w.GetDisruptedAt() != nil {
				if end := w.GetDisruptedAt().AsTime().Add(objective); !end.After(t1) {
					c.HasObjective, c.ObjectiveX = true, x(end)
					c.ObjectiveLabel = "RTO objective " + objective.String()
				}
				break
			}
		}
	}
	return c
}

type page struct {
	Title     string
	Verdict   string
	Pass      bool
	Summary   [][2]string
	Timeline  []row
	Workloads []wrow
	Skipped   [][2]string
	Chart     chart
}

type row struct{ Time, Step, Detail string }

type wrow struct {
	Name, From, To, RTO, RPO string
	RTOMet, RPOMet           bool
}

// HTML writes a self-contained HTML page: the summary, the timeline chart
// (inline SVG: steps on a time axis, one bar per workload from its
// disruption to its replicas ready, the RTO objective as a dashed line),
// and the timeline and workload tables.
func HTML(w io.Writer, d *meridianv1.Drill) error {
	p := page{Title: "Drill " + d.GetMetadata().GetName(), Verdict: orDash(d.GetStatus().GetVerdict()),
		Pass: d.GetStatus().GetVerdict() == "Pass", Summary: summary(d)[1:], Chart: buildChart(d)}
	for _, s := range d.GetStatus().GetTimeline() {
		p.Timeline = append(p.Timeline, row{offset(d, s.GetTime().AsTime()), s.GetStep(), s.GetDetail()})
	}
	for _, r := range d.GetStatus().GetWorkloads() {
		p.Workloads = append(p.Workloads, wrow{Name: workloadName(r), From: targets(r.GetFrom()), To: targets(r.GetTo()),
			RTO: Duration(r.GetRto(), r.GetRto() != nil), RPO: Duration(r.GetRpo(), r.GetRpo() != nil), RTOMet: r.GetRtoMet(), RPOMet: r.GetRpoMet()})
	}
	for _, s := range d.GetStatus().GetSkipped() {
		p.Skipped = append(p.Skipped, [2]string{refName(s.GetWorkload()), s.GetReason()})
	}
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("failed to render the report: %w", err)
	}
	return nil
}

var pageTemplate = template.Must(template.New("drill").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;color:#1f2328}
h1 .pass{color:#1a7f37}h1 .fail{color:#cf222e}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;font-size:13px}
th{background:#f6f8fa}.no{color:#cf222e;font-weight:bold}
svg text{font-size:11px;font-family:inherit}
</style>
</head>
<body>
<h1>{{.Title}}: <span class="{{if .Pass}}pass{{else}}fail{{end}}">{{.Verdict}}</span></h1>
<table>{{range .Summary}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>
<h2>Timeline chart</h2>
{{with .Chart}}<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="drill timeline">
<rect x="0" y="0" width="{{.Width}}" height="{{.Height}}" fill="#ffffff"/>
{{range .Steps}}<g><title>{{.Tip}}</title><line x1="{{.X}}" y1="{{.LabelY}}" x2="{{.X}}" y2="{{$.Chart.AxisY}}" stroke="#8c959f" stroke-width="1" stroke-dasharray="2,3"/><circle cx="{{.X}}" cy="{{.LabelY}}" r="3" fill="#0969da"/><text x="{{.X}}" y="{{.LabelY}}" dx="5" dy="4">{{.Step}}</text></g>
{{end}}{{range .Bars}}<g><title>{{.Tip}}</title><text x="4" y="{{.TextY}}">{{.Label}}</text>{{if .W}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="12" rx="2" fill="{{if and .Ready .Met}}#2da44e{{else}}#cf222e{{end}}"{{if not .Ready}} fill-opacity="0.4"{{end}}/>{{end}}</g>
{{end}}{{if .HasObjective}}<g><line x1="{{.ObjectiveX}}" y1="{{.BarsTop}}" x2="{{.ObjectiveX}}" y2="{{.AxisY}}" stroke="#bf8700" stroke-width="2" stroke-dasharray="6,4"/><text x="{{.ObjectiveX}}" y="{{.BarsTop}}" dx="4" dy="-4" fill="#9a6700">{{.ObjectiveLabel}}</text></g>
{{end}}<line x1="{{.PlotLeft}}" y1="{{.AxisY}}" x2="{{.PlotRight}}" y2="{{.AxisY}}" stroke="#57606a"/>
{{range .Ticks}}<line x1="{{.X}}" y1="{{$.Chart.AxisY}}" x2="{{.X}}" y2="{{$.Chart.TickY}}" stroke="#57606a"/><text x="{{.X}}" y="{{$.Chart.AxisY}}" dy="16" text-anchor="middle">{{.Label}}</text>
{{end}}</svg>
{{if .Omitted}}<p>{{.Omitted}} more workloads are in the table below.</p>{{end}}{{end}}
<h2>Timeline</h2>
<table><tr><th>Time</th><th>Step</th><th>Detail</th></tr>
{{range .Timeline}}<tr><td>{{.Time}}</td><td>{{.Step}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>
<h2>Workloads</h2>
<table><tr><th>Workload</th><th>From</th><th>To</th><th>RTO</th><th>Met</th><th>RPO</th><th>Met</th></tr>
{{range .Workloads}}<tr><td>{{.Name}}</td><td>{{.From}}</td><td>{{.To}}</td><td>{{.RTO}}</td><td>{{if .RTOMet}}yes{{else}}<span class="no">NO</span>{{end}}</td><td>{{.RPO}}</td><td>{{if .RPOMet}}yes{{else}}<span class="no">NO</span>{{end}}</td></tr>
{{end}}</table>{{if .Skipped}}
<h2>Skipped</h2>
<table><tr><th>Workload</th><th>Reason</th></tr>
{{range .Skipped}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>
{{end}}</table>{{end}}
</body>
</html>
`))
