package fencing

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the table's Prometheus metrics.
type metrics struct {
	leaseWrites prometheus.Counter
	releases    *prometheus.CounterVec
	acks        prometheus.Counter
}

// Results of Release, the label of meridian_fencing_releases_total.
const (
	resultReleased = "released" // committed: a new epoch
	resultRevoking = "revoking" // Revoke recorded a pending floor
	resultWaiting  = "waiting"  // asked to wait (the lease, or the member's report)
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		leaseWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_fencing_lease_writes_total",
			Help: "Lease records this hub node wrote to etcd (one per cluster every half lease, not one per renewal)."}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_fencing_releases_total",
			Help: "Release and Revoke calls by result: released (a new epoch), waiting (the lease or the member's report), revoking (Revoke)."}, []string{"result"}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_fencing_reports_total",
			Help: "Members' reports that they fenced a workload being released, recorded."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.leaseWrites, m.releases, m.acks} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, fmt.Errorf("failed to register the fencing metrics: %w", err)
		}
	}
	return m, nil
}
