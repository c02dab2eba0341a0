// Command residency is an example Meridian Filter plugin: a workload
// labelled meridian.io/jurisdiction=<j> may only run on clusters in
// jurisdiction j (a cluster's own meridian.io/jurisdiction label, else the
// jurisdiction its region has in the config). See docs/plugins.md.
package main

import (
	"context"

	"github.com/meridian-fed/meridian/plugins/examples/residency/jurisdiction"
	"github.com/meridian-fed/meridian/plugins/sdk"
)

func main() {
	// rules is installed by Configure, which the SDK runs before (and never
	// alongside) any Filter call.
	var rules *jurisdiction.Rules
	sdk.Serve(&sdk.Plugin{
		Name:         "residency",
		Version:      "1.0.0",
		ConfigSchema: jurisdiction.Schema,
		Configure: func(raw []byte) error {
			r, err := jurisdiction.Parse(raw)
			if err != nil {
				return err
			}
			rules = r
			return nil
		},
		Filter: func(_ context.Context, w *sdk.Workload, c *sdk.Cluster) sdk.Result {
			return rules.Filter(w, c)
		},
	})
}
