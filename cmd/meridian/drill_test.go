package main

import (
	"bytes"
	"os"
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

// TestDrillOperatorTokens: `drill operator-token` makes tokens,
// `operator-token list` lists them (never the secrets, never the admin's
// own token), `operator-token revoke NAME` ends every token of the
// operator and `--id` one token; a revoked token is Unauthenticated on its
// next call, another operator's keeps working.
func TestDrillOperatorTokens(t *testing.T) {
	startHub(t)
	admin := os.Getenv("MERIDIAN_TOKEN")
	mint := func(args ...string) string {
		t.Helper()
		out, _, err := run(t, "", append([]string{"drill", "operator-token"}, args...)...)
		if err != nil {
			t.Fatalf("operator-token %v: %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	alice1, alice2 := mint("alice"), mint("create", "alice", "--ttl", "1h")
	bob := mint("bob")
	idOf := func(tok string) string { id, _, _ := strings.Cut(tok, "."); return id }
	out, _, err := run(t, "", "drill", "operator-token", "list")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, want := range []string{"NAME", "alice", "bob", idOf(alice1), idOf(alice2), idOf(bob), "drill-operator.alice", "never", "in "} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{alice1, alice2, bob, admin, idOf(admin)} {
		if strings.Contains(out, secret) {
			t.Errorf("list shows a secret or the admin's token:\n%s", out)
		}
	}
	readAs := func(tok string) error {
		t.Setenv("MERIDIAN_TOKEN", tok)
		defer t.Setenv("MERIDIAN_TOKEN", admin)
		_, _, err := run(t, "", "drill", "list")
		return err
	}
	if err := readAs(alice1); err != nil {
		t.Fatalf("alice before the revocation: %v", err)
	}
	t.Setenv("MERIDIAN_TOKEN", alice1)
	if _, _, err := run(t, "", "drill", "operator-token", "list"); err == nil {
		t.Errorf("an operator listed the tokens")
	}
	t.Setenv("MERIDIAN_TOKEN", admin)

	out, _, err = run(t, "", "drill", "operator-token", "revoke", "alice")
	if err != nil || strings.Count(out, "revoked") != 2 || !strings.Contains(out, idOf(alice1)) || !strings.Contains(out, idOf(alice2)) {
		t.Fatalf("revoke alice: %v\n%s", err, out)
	}
	for _, tok := range []string{alice1, alice2} {
		if err := readAs(tok); err == nil || !strings.Contains(strings.ToLower(err.Error()), "unauthenticated") && !strings.Contains(err.Error(), "token") {
			t.Errorf("a revoked token still works: %v", err)
		}
	}
	if err := readAs(bob); err != nil {
		t.Errorf("bob after alice's revocation: %v", err)
	}
	if _, _, err := run(t, "", "drill", "operator-token", "revoke", "alice"); err == nil {
		t.Errorf("revoking an operator without tokens succeeded")
	}
	if _, _, err := run(t, "", "drill", "operator-token", "revoke"); err == nil {
		t.Errorf("revoke without a name or an id succeeded")
	}
	if out, _, err := run(t, "", "drill", "operator-token", "revoke", "--id", bob); err != nil || !strings.Contains(out, idOf(bob)) {
		t.Errorf("revoke --id: %v\n%s", err, out)
	}
	if err := readAs(bob); err == nil {
		t.Errorf("bob's revoked token still works")
	}
	if out, _, _ := run(t, "", "drill", "operator-token", "list"); strings.Contains(out, "alice") || strings.Contains(out, "bob") {
		t.Errorf("revoked tokens still listed:\n%s", out)
	}
}
