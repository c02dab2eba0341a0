// Package jurisdiction is the logic of the residency example plugin: which
// legal jurisdiction a cluster is in, and whether a workload that must stay
// in one may run there. It is a pure function of its config, the workload
// and the cluster, kept apart from main so it can be tested (and
// benchmarked in-process) without a plugin process.
package jurisdiction

import (
	"encoding/json"

	"github.com/meridian-fed/meridian/plugins/sdk"
)

// Label is the label a workload sets to require a jurisdiction ("eu"),
// and a cluster sets to declare its own.
const Label = "meridian.io/jurisdiction"

// Schema is the JSON Schema of the plugin's config.
const Schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "residency plugin config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "regions": {
      "description": "Jurisdiction of the clusters of each region, for clusters without a meridian.io/jurisdiction label.",
      "type": "object",
      "additionalProperties": {"type": "string", "minLength": 1}
    }
  }
}`

// Rules says which jurisdiction each cluster is in.
type Rules struct {
	// regions maps a region to the jurisdiction of its clusters; a
	// cluster's own label wins over it.
	regions map[string]string
}

type config struct {
	// Regions is decoded value by value, so an error names the region.
	Regions map[string]json.RawMessage `json:"regions"`
}

// Parse validates the plugin's JSON config ({"regions": {"region-b": "eu"}})
// and returns its rules. Errors name the field.
func Parse(raw []byte) (*Rules, error) {
	var cfg config
	if err := sdk.DecodeConfig(raw, &cfg); err != nil {
		return nil, err
	}
	regions := make(map[string]string, len(cfg.Regions))
	for region, raw := range cfg.Regions {
		var j string
		if region == "" {
			return nil, sdk.FieldError("regions", "a region name must not be empty")
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, sdk.FieldError("regions."+region, "must be a string, not %s", raw)
		}
		if j == "" {
			return nil, sdk.FieldError("regions."+region, "the jurisdiction must not be empty")
		}
		regions[region] = j
	}
	return &Rules{regions: regions}, nil
}

// Of returns cluster c's jurisdiction: its label, else its region's
// jurisdiction from the config, else "" (unknown).
func (r *Rules) Of(c *sdk.Cluster) string {
	if j := c.Labels[Label]; j != "" {
		return j
	}
	return r.regions[c.Region]
}

// Filter lets cluster c run workload w when w requires no jurisdiction or
// c is in the one w requires. A cluster in another jurisdiction, or in
// none known, never can (UnschedulableAndUnresolvable): residency does not
// change with load. A workload without the label is none of this plugin's
// business (Skip).
func (r *Rules) Filter(w *sdk.Workload, c *sdk.Cluster) sdk.Result {
	want := w.Labels[Label]
	if want == "" {
		return sdk.NewResult(sdk.Skip, "workload has no %s label", Label)
	}
	have := r.Of(c)
	switch {
	case have == "":
		return sdk.NewResult(sdk.UnschedulableAndUnresolvable,
			"cluster %s has no known jurisdiction (no %s label, region %q not configured), the workload requires %q",
			c.Name, Label, c.Region, want)
	case have != want:
		return sdk.NewResult(sdk.UnschedulableAndUnresolvable,
			"cluster %s is in jurisdiction %q, the workload requires %q", c.Name, have, want)
	}
	return sdk.Result{}
}
