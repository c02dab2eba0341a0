package pricing

import (
	"errors"
	"slices"
	"testing"

	"github.com/meridian-fed/meridian/plugins/sdk"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		field     string // the field the error names; "-" for no error
	}{
		{"empty", `{}`, "-"},
		{"prices", `{"prices": {"dc-a1": 0.9, "dc-b1": 1.2}, "unknownPrice": 3}`, "-"},
		{"negative price", `{"prices": {"dc-a1": -1}}`, "prices.dc-a1"},
		{"price not a number", `{"prices": {"dc-a1": "cheap"}}`, "prices.dc-a1"},
		{"empty datacenter", `{"prices": {"": 1}}`, "prices"},
		{"negative unknown", `{"unknownPrice": -0.5}`, "unknownPrice"},
		{"unknown not a number", `{"unknownPrice": "x"}`, "unknownPrice"},
		{"unknown field", `{"price": {}}`, ""},
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

func cluster(name, dc, price string) *sdk.Cluster {
	c := &sdk.Cluster{Name: name, Datacenter: dc}
	if price != "" {
		c.Labels = map[string]string{Label: price}
	}
	return c
}

func TestScores(t *testing.T) {
	for _, tc := range []struct {
		name     string
		config   string
		clusters []*sdk.Cluster
		want     []int64
	}{
		{"labels, linear", `{}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", "1"), cluster("b", "dc-a1", "2"), cluster("c", "dc-a1", "3"), cluster("d", "dc-a1", "1.5")},
			[]int64{100, 50, 0, 75}},
		{"datacenter prices", `{"prices": {"dc-a1": 0.9, "dc-b1": 0.3}}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", ""), cluster("b", "dc-b1", "")},
			[]int64{0, 100}},
		{"label wins over datacenter", `{"prices": {"dc-a1": 0.1, "dc-b1": 0.5}}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", "1.0"), cluster("b", "dc-b1", "")},
			[]int64{0, 100}},
		{"bad label falls back to datacenter", `{"prices": {"dc-a1": 0.1, "dc-b1": 0.5}}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", "lots"), cluster("b", "dc-b1", "")},
			[]int64{100, 0}},
		{"unknown scores 0", `{"prices": {"dc-a1": 1, "dc-b1": 2}}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", ""), cluster("b", "dc-b1", ""), cluster("c", "dc-c1", "")},
			[]int64{100, 0, 0}},
		{"unknownPrice ranks", `{"prices": {"dc-a1": 1, "dc-b1": 3}, "unknownPrice": 2}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", ""), cluster("b", "dc-b1", ""), cluster("c", "dc-c1", "")},
			[]int64{100, 0, 50}},
		{"all equal", `{}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", "2"), cluster("b", "dc-b1", "2")},
			[]int64{100, 100}},
		{"nothing priced", `{}`,
			[]*sdk.Cluster{cluster("a", "dc-a1", ""), cluster("b", "dc-b1", "")},
			[]int64{0, 0}},
		{"empty batch", `{}`, nil, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse([]byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Scores(tc.clusters); !slices.Equal(got, tc.want) {
				t.Errorf("Scores = %v, want %v", got, tc.want)
			}
		})
	}
}
