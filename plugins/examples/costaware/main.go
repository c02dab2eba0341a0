// Command costaware is an example Meridian Score plugin: it prefers cheap
// clusters. A cluster's price per hour is its meridian.io/price-per-hour
// label, else its datacenter's price in the config; the cheapest cluster of
// a batch scores 100, the dearest 0. See docs/plugins.md.
package main

import (
	"context"

	"github.com/meridian-fed/meridian/plugins/examples/costaware/pricing"
	"github.com/meridian-fed/meridian/plugins/sdk"
)

func main() {
	// book is installed by Configure, which the SDK runs before (and never
	// alongside) any Score call.
	var book *pricing.Book
	sdk.Serve(&sdk.Plugin{
		Name:         "costaware",
		Version:      "1.0.0",
		ConfigSchema: pricing.Schema,
		Configure: func(raw []byte) error {
			b, err := pricing.Parse(raw)
			if err != nil {
				return err
			}
			book = b
			return nil
		},
		Score: func(_ context.Context, _ *sdk.Workload, clusters []*sdk.Cluster) ([]int64, error) {
			return book.Scores(clusters), nil
		},
	})
}
