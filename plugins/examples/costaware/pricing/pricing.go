// Package pricing is the logic of the costaware example plugin: what a
// cluster costs per hour, and how a batch of clusters scores by price (the
// cheapest 100, the dearest 0, linear in between). It is a pure function of
// its config and the clusters, kept apart from main so it can be tested
// without a plugin process.
package pricing

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/meridian-fed/meridian/plugins/sdk"
)

// Label is the cluster label that gives its price per hour, a decimal
// number ("0.92"). It wins over the config's price for the datacenter.
const Label = "meridian.io/price-per-hour"

// Schema is the JSON Schema of the plugin's config.
const Schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "costaware plugin config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "prices": {
      "description": "Price per hour of the clusters of each datacenter, for clusters without a meridian.io/price-per-hour label.",
      "type": "object",
      "additionalProperties": {"type": "number", "minimum": 0}
    },
    "unknownPrice": {
      "description": "Price of a cluster whose price is not known; without it such a cluster scores 0.",
      "type": "number",
      "minimum": 0
    }
  }
}`

// Book knows the clusters' prices.
type Book struct {
	// byDatacenter is the price of a datacenter's clusters.
	byDatacenter map[string]float64
	// unknown is the price of a cluster nothing prices; nil: such a
	// cluster is left out of the ranking and scores 0.
	unknown *float64
}

type config struct {
	// Prices is decoded value by value, so an error names the datacenter.
	Prices       map[string]json.RawMessage `json:"prices"`
	UnknownPrice *float64                   `json:"unknownPrice"`
}

// Parse validates the plugin's JSON config
// ({"prices": {"dc-a1": 0.9}, "unknownPrice": 2}) and returns its price
// book. Errors name the field.
func Parse(raw []byte) (*Book, error) {
	var cfg config
	if err := sdk.DecodeConfig(raw, &cfg); err != nil {
		return nil, err
	}
	b := &Book{byDatacenter: make(map[string]float64, len(cfg.Prices))}
	for dc, raw := range cfg.Prices {
		if dc == "" {
			return nil, sdk.FieldError("prices", "a datacenter name must not be empty")
		}
		var p float64
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, sdk.FieldError("prices."+dc, "must be a number, not %s", raw)
		}
		if p < 0 {
			return nil, sdk.FieldError("prices."+dc, "must be >= 0, not %v", p)
		}
		b.byDatacenter[dc] = p
	}
	if u := cfg.UnknownPrice; u != nil {
		if *u < 0 {
			return nil, sdk.FieldError("unknownPrice", "must be >= 0, not %v", *u)
		}
		b.unknown = u
	}
	return b, nil
}

// Price returns what cluster c costs per hour: its label, else its
// datacenter's price, else the configured unknownPrice. A label that is
// not a non-negative decimal number is ignored. false: nothing prices c.
func (b *Book) Price(c *sdk.Cluster) (float64, bool) {
	if v, ok := c.Labels[Label]; ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err == nil && p >= 0 && !math.IsInf(p, 0) {
			return p, true
		}
	}
	if p, ok := b.byDatacenter[c.Datacenter]; ok {
		return p, true
	}
	if b.unknown != nil {
		return *b.unknown, true
	}
	return 0, false
}

// Scores rates clusters by price, in order: the cheapest priced cluster
// 100, the dearest 0, linear in between (rounded); every priced cluster 100
// when they all cost the same; a cluster without a price 0.
func (b *Book) Scores(clusters []*sdk.Cluster) []int64 {
	prices := make([]float64, len(clusters))
	known := make([]bool, len(clusters))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, c := range clusters {
		prices[i], known[i] = b.Price(c)
		if known[i] {
			lo, hi = min(lo, prices[i]), max(hi, prices[i])
		}
	}
	scores := make([]int64, len(clusters))
	for i := range clusters {
		switch {
		case !known[i]:
			scores[i] = 0
		case hi == lo:
			scores[i] = 100
		default:
			scores[i] = int64(math.Round(100 * (hi - prices[i]) / (hi - lo)))
		}
	}
	return scores
}
