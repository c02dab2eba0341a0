//go:build unix

package host

import (
	"context"
	"fmt"
	"testing"

	"github.com/meridian-fed/meridian/plugins/examples/residency/jurisdiction"
	"github.com/meridian-fed/meridian/plugins/sdk"
	"github.com/meridian-fed/meridian/policies/framework"
)

// BenchmarkPluginCall measures one batched Filter call to the residency
// plugin for 1, 100 and 1,000 clusters: out of process (through the host,
// gRPC over go-plugin's local socket, the real binary) and in process (the
// plugin's filter function called directly on every cluster), in us/call.
func BenchmarkPluginCall(b *testing.B) {
	const config = `{"regions": {"region-a": "us", "region-b": "eu"}}`
	h := newHost(b, []Config{pluginConfig(b, "residency", bins.residency, config)})
	bf := h.Plugins()[0].(framework.BatchFilterPlugin)
	rules, err := jurisdiction.Parse([]byte(config))
	if err != nil {
		b.Fatal(err)
	}
	labels := map[string]string{jurisdiction.Label: "eu"}

	for _, n := range []int{1, 100, 1000} {
		clusters := make([]*framework.Cluster, n)
		sdkClusters := make([]sdk.Cluster, n)
		for i := range clusters {
			region := []string{"region-a", "region-b"}[i%2]
			clusters[i] = cluster(fmt.Sprintf("c%04d", i), region, map[string]string{"meridian.io/provider": "metal", "tier": "gold"})
			sdkClusters[i] = sdk.Cluster{Name: clusters[i].Name, Region: region, Labels: clusters[i].Labels}
		}
		s := snapshot(labels, clusters...)

		b.Run(fmt.Sprintf("out-of-process/clusters=%d", n), func(b *testing.B) {
			if st := bf.FilterAll(context.Background(), s, clusters)[0]; st.CodeOf() != framework.UnschedulableAndUnresolvable || st.Err != nil {
				b.Fatalf("FilterAll = %+v", st)
			}
			for b.Loop() {
				bf.FilterAll(context.Background(), s, clusters)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/call")
			if info := h.List()[0]; info.Failures > 0 {
				b.Fatalf("%d calls failed: %s", info.Failures, info.LastError)
			}
		})

		b.Run(fmt.Sprintf("in-process/clusters=%d", n), func(b *testing.B) {
			w := &sdk.Workload{Name: "web", Labels: labels}
			results := make([]sdk.Result, n)
			for b.Loop() {
				for i := range sdkClusters {
					results[i] = rules.Filter(w, &sdkClusters[i])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/call")
		})
	}
}
