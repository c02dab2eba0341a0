package hub_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// BenchmarkApply measures Apply through the gRPC API into a real embedded
// etcd: each operation creates one Deployment. It reports applies/s and the
// p99 latency of one Apply, for 1 and 16 concurrent clients.
//
//	go test ./hub -run '^$' -bench BenchmarkApply -benchtime 2000x
func BenchmarkApply(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			cfg := hubtest.Config(b, b.TempDir())
			cfg.EtcdTickMs, cfg.EtcdElectionMs = 100, 1000 // production timings
			h := hubtest.Start(b, cfg)
			cli := hubtest.Client(b, h)
			var next atomic.Int64
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			b.ResetTimer()
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						d := deployment(fmt.Sprintf("bench-%d", i), "registry.example/app:v1")
						t0 := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						_, err := cli.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(d)})
						cancel()
						lat[i] = time.Since(t0)
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "applies/s")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
