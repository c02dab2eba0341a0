package failover

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of meridian_failovers_total.
const (
	ResultMoved   = "moved"
	ResultVetoed  = "vetoed"
	ResultBlocked = "blocked"
	ResultError   = "error"
)

// Metrics are failover's Prometheus metrics. They outlive one controller:
// a hub node that regains leadership runs a new controller with the same
// metrics.
type Metrics struct {
	failovers *prometheus.CounterVec
	failbacks *prometheus.CounterVec
	// plannedMoves counts singletons a policy change moved off a
	// cluster (planned.go).
	plannedMoves *prometheus.CounterVec
	latency      prometheus.Histogram
}

// NewMetrics makes the metrics and registers them on reg (if not nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_failovers_total",
			Help: "Failover decisions per failed cluster, by result (moved, vetoed, blocked, error)."}, []string{"cluster", "result"}),
		failbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_failbacks_total",
			Help: "Failback steps per recovered cluster, by result (step, done)."}, []string{"cluster", "result"}),
		plannedMoves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_singleton_policy_moves_total",
			Help: "Singletons a policy change moved off a cluster, fenced, by the cluster they left."}, []string{"cluster"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meridian_failover_decision_seconds",
			Help:    "From the moment a move was due (the toleration over, and for a singleton the fence released) to the binding written.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.failovers, m.failbacks, m.plannedMoves, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("failed to register failover metrics: %w", err)
			}
		}
	}
	return m, nil
}
