package host

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Call results, the `result` label of meridian_plugin_calls_total.
const (
	resultOK       = "ok"       // a valid answer
	resultError    = "error"    // the plugin answered with an error
	resultTimeout  = "timeout"  // no answer within the deadline
	resultDown     = "down"     // the plugin was not running
	resultInvalid  = "invalid"  // an answer outside the contract
	resultCanceled = "canceled" // the caller gave up first
)

// metrics are the host's Prometheus collectors.
type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	restarts *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meridian", Subsystem: "plugin", Name: "calls_total",
			Help: "Calls to out-of-process plugins, by plugin, method and result (ok, error, timeout, down, invalid, canceled).",
		}, []string{"plugin", "method", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "meridian", Subsystem: "plugin", Name: "call_duration_seconds",
			Help: "Duration of calls to out-of-process plugins, by plugin and method.",
			// From a fast local round trip to past the default deadline.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"plugin", "method"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meridian", Subsystem: "plugin", Name: "restarts_total",
			Help: "Restarts of out-of-process plugins after a crash or repeated timeouts.",
		}, []string{"plugin"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "meridian", Subsystem: "plugin", Name: "up",
			Help: "1 while an out-of-process plugin is running and configured, else 0.",
		}, []string{"plugin"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.calls, err = register(reg, m.calls)
	if err != nil {
		return nil, err
	}
	m.duration, err = register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	m.restarts, err = register(reg, m.restarts)
	if err != nil {
		return nil, err
	}
	m.up, err = register(reg, m.up)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered in its
// place (a hub that rebuilds its Host on a config reload registers again).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("failed to register plugin metrics: %w", err)
}
