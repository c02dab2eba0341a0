package jurisdiction

import (
	"errors"
	"testing"

	"github.com/meridian-fed/meridian/plugins/sdk"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		field     string // the field the error names; "-" for no error
	}{
		{"empty", `{}`, "-"},
		{"regions", `{"regions": {"region-a": "us", "region-b": "eu"}}`, "-"},
		{"empty jurisdiction", `{"regions": {"region-b": ""}}`, "regions.region-b"},
		{"empty region", `{"regions": {"": "eu"}}`, "regions"},
		{"wrong type", `{"regions": {"region-b": 5}}`, "regions.region-b"},
		{"not an object", `{"regions": ["eu"]}`, "regions"},
		{"unknown field", `{"region": {}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw))
			if tc.field == "-" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *sdk.ConfigError", err)
			}
			if ce.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", ce.Field, tc.field, err)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	rules, err := Parse([]byte(`{"regions": {"region-a": "us", "region-b": "eu"}}`))
	if err != nil {
		t.Fatal(err)
	}
	eu := &sdk.Workload{Name: "web", Labels: map[string]string{Label: "eu"}}
	for _, tc := range []struct {
		name   string
		w      *sdk.Workload
		c      *sdk.Cluster
		code   sdk.Code
		reason string
	}{
		{"no label skips", &sdk.Workload{Name: "web"}, &sdk.Cluster{Name: "dc-a1", Region: "region-a"},
			sdk.Skip, "workload has no meridian.io/jurisdiction label"},
		{"region matches", eu, &sdk.Cluster{Name: "dc-b1", Region: "region-b"}, sdk.Success, ""},
		{"region differs", eu, &sdk.Cluster{Name: "dc-a1", Region: "region-a"},
			sdk.UnschedulableAndUnresolvable, `cluster dc-a1 is in jurisdiction "us", the workload requires "eu"`},
		{"label wins over region", eu, &sdk.Cluster{Name: "dc-a2", Region: "region-a", Labels: map[string]string{Label: "eu"}},
			sdk.Success, ""},
		{"label rejects", eu, &sdk.Cluster{Name: "dc-b2", Region: "region-b", Labels: map[string]string{Label: "ch"}},
			sdk.UnschedulableAndUnresolvable, `cluster dc-b2 is in jurisdiction "ch", the workload requires "eu"`},
		{"unknown jurisdiction", eu, &sdk.Cluster{Name: "dc-c1", Region: "region-c"},
			sdk.UnschedulableAndUnresolvable,
			`cluster dc-c1 has no known jurisdiction (no meridian.io/jurisdiction label, region "region-c" not configured), the workload requires "eu"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rules.Filter(tc.w, tc.c)
			if got.Code != tc.code || got.Reason != tc.reason {
				t.Errorf("Filter = %s %q, want %s %q", got.Code, got.Reason, tc.code, tc.reason)
			}
		})
	}
}
