package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"github.com/meridian-fed/meridian/proto/meridian/validation"
)

func TestNewDrill(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	d, err := newDrill("", "datacenter=dc-a1", "planned", "30s", "0s", "tier=web,app in (a,b),!legacy", now)
	if err != nil {
		t.Fatal(err)
	}
	if d.GetMetadata().GetName() != "dc-a1-planned-20261122-100000" || d.GetSpec().GetScope().GetDatacenter() != "dc-a1" {
		t.Errorf("drill %v", d)
	}
	sel := d.GetSpec().GetWorkloads()
	if sel.GetMatchLabels()["tier"] != "web" || len(sel.GetMatchExpressions()) != 2 {
		t.Errorf("selector %v", sel)
	}
	if errs := validation.Validate(d); len(errs) > 0 {
		t.Errorf("invalid drill: %v", errs)
	}
	for _, bad := range [][3]string{{"dc-a1", "test", ""}, {"zone=x", "test", ""}, {"region=r", "chaos", ""}, {"region=r", "test", "soon"}} {
		if _, err := newDrill("", bad[0], bad[1], bad[2], "", "", now); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestProgressAndList(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	d := &meridianv1.Drill{Metadata: &meridianv1.ObjectMeta{Name: "d1", CreationTimestamp: timestamppb.New(t0)},
		Spec: &meridianv1.DrillSpec{Scope: &meridianv1.DrillScope{Region: "region-a"}, Mode: "unplanned", Rto: "10s"},
		Status: &meridianv1.DrillStatus{Phase: "Running", StartTime: timestamppb.New(t0),
			Timeline: []*meridianv1.DrillStep{{Time: timestamppb.New(t0), Step: "Start", Detail: "go"}},
			Workloads: []*meridianv1.DrillWorkloadResult{
				{ReadyAt: timestamppb.New(t0.Add(time.Second)), Rto: durationpb.New(time.Second)}, {}}}}
	lines := strings.Join(progressLines(d, t0.Add(2*time.Second)), "\n")
	for _, want := range []string{"phase Running", "elapsed 2s", "1/2", "worst RTO 1s (objective 10s)", "Start"} {
		if !strings.Contains(lines, want) {
			t.Errorf("progress lacks %q:\n%s", want, lines)
		}
	}
	var b bytes.Buffer
	printDrillList(&b, []resource.Object{d}, t0.Add(time.Minute))
	if !strings.Contains(b.String(), "region=region-a") || !strings.Contains(b.String(), "Running") {
		t.Errorf("list:\n%s", b.String())
	}
}
