package report_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/drill/report"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sample is a finished test drill of dc-a1 with two workloads, one of
// which missed its RTO objective.
func sample() *meridianv1.Drill {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	at := func(ms int) *timestamppb.Timestamp {
		return timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	return &meridianv1.Drill{ApiVersion: "meridian.io/v1", Kind: "Drill",
		Metadata: &meridianv1.ObjectMeta{Name: "dc-a1-test"},
		Spec:     &meridianv1.DrillSpec{Scope: &meridianv1.DrillScope{Datacenter: "dc-a1"}, Mode: "test", Rto: "2s", Rpo: "1s"},
		Status: &meridianv1.DrillStatus{Phase: "Failed", Verdict: "Fail", Message: "1 of 2 workloads missed an objective (Deployment/shop/api)",
			StartTime: at(0), CompletionTime: at(4200), Rto: durationpb.New(2500 * time.Millisecond), Rpo: durationpb.New(500 * time.Millisecond),
			Timeline: []*meridianv1.DrillStep{
				{Time: at(0), Step: "Start", Detail: "test drill of datacenter=dc-a1 (dc-a1): 2 workloads"},
				{Time: at(100), Step: "Namespace", Detail: "created drill-dc-a1-test"},
				{Time: at(200), Step: "Disruption", Detail: "2 copies created in drill-dc-a1-test"},
				{Time: at(2700), Step: "Ready", Detail: "every copy is ready on the survivors"},
				{Time: at(2800), Step: "Cleanup", Detail: "deleted namespace drill-dc-a1-test and its copies"},
				{Time: at(4200), Step: "Verdict", Detail: "Fail: <api> & co | missed"},
			},
			Workloads: []*meridianv1.DrillWorkloadResult{
				{Workload: &meridianv1.ObjectReference{Kind: "Deployment", Namespace: "shop", Name: "web"},
					From: []*meridianv1.TargetCluster{{Name: "dc-a1", Replicas: 2}}, To: []*meridianv1.TargetCluster{{Name: "dc-a2", Replicas: 1}, {Name: "dc-b1", Replicas: 1}},
					DisruptedAt: at(200), ReadyAt: at(1400), Rto: durationpb.New(1200 * time.Millisecond), Rpo: durationpb.New(500 * time.Millisecond), RtoMet: true, RpoMet: true},
				{Workload: &meridianv1.ObjectReference{Kind: "Deployment", Namespace: "shop", Name: "api"},
					From: []*meridianv1.TargetCluster{{Name: "dc-a1", Replicas: 3}}, To: []*meridianv1.TargetCluster{{Name: "dc-a2", Replicas: 3}},
					DisruptedAt: at(200), ReadyAt: at(2700), Rto: durationpb.New(2500 * time.Millisecond), RtoMet: false, RpoMet: true},
			},
		}}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	for _, f := range []struct{ format, file string }{{"text", "report.txt"}, {"markdown", "report.md"}, {"html", "report.html"}, {"json", "report.json"}} {
		t.Run(f.format, func(t *testing.T) {
			var b bytes.Buffer
			if err := report.Render(&b, sample(), f.format); err != nil {
				t.Fatal(err)
			}
			out := b.Bytes()
			if f.format == "json" {
				// protojson's whitespace is randomized: compare it normalized.
				out = regexp.MustCompile(`\s+`).ReplaceAll(out, []byte(" "))
			}
			golden(t, f.file, out)
		})
	}
}

// TestHTMLSelfContained: the page loads nothing from outside, its SVG is
// well-formed XML with one bar per workload and the objective line, and
// text is escaped.
func TestHTMLSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := report.HTML(&b, sample()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "<link", "src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q: not self-contained", bad)
		}
	}
	if strings.Contains(page, "<api> & co") {
		t.Errorf("detail not escaped")
	}
	start, end := strings.Index(page, "<svg"), strings.Index(page, "</svg>")
	if start < 0 || end < 0 {
		t.Fatal("no inline svg")
	}
	svg := page[start : end+len("</svg>")]
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("svg is not well-formed: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects != 3 { // background + two bars
		t.Errorf("%d rects in the svg, want 3", rects)
	}
	if !strings.Contains(svg, "RTO objective 2s") {
		t.Errorf("no objective line")
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := report.Render(&bytes.Buffer{}, sample(), "pdf"); err == nil {
		t.Fatal("pdf accepted")
	}
}

// TestSkipped: the workloads a drill skipped are listed, with the reason,
// in every format (and nothing is added when none was).
func TestSkipped(t *testing.T) {
	d := sample()
	d.Status.Skipped = []*meridianv1.DrillSkippedWorkload{{
		Workload: &meridianv1.ObjectReference{Kind: "StatefulSet", Namespace: "shop", Name: "db"},
		Reason:   "a singleton | its copy could write to production's storage",
	}}
	for _, format := range report.Formats {
		var b bytes.Buffer
		if err := report.Render(&b, d, format); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		name, reason := "statefulset/shop/db", "its copy could write to production"
		if format == "json" {
			name = `"db"`
		}
		if !strings.Contains(out, name) || !strings.Contains(out, reason) || format != "json" && !strings.Contains(out, "Skipped") {
			t.Errorf("%s report lacks the skipped workload:\n%s", format, out)
		}
		var plain bytes.Buffer
		if err := report.Render(&plain, sample(), format); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(plain.String(), "Skipped") {
			t.Errorf("%s report of a drill that skipped nothing has a Skipped section", format)
		}
	}
}
