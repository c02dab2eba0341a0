package failover

import (
	"time"

	"github.com/meridian-fed/meridian/hub/placement"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Defaults of a policy's failover block (and of a workload no policy
// selects).
const (
	DefaultToleration    = 5 * time.Second
	DefaultGracePeriod   = 600 * time.Second
	DefaultStabilization = 30 * time.Second
)

// Values of the failover block's purgeMode and failback fields.
const (
	PurgeGraciously  = "Graciously"
	PurgeImmediately = "Immediately"
	FailbackAuto     = "Automatic"
	FailbackManual   = "Manual"
)

// Behavior is a policy's failover block with the defaults filled in.
type Behavior struct {
	Disabled      bool
	Toleration    time.Duration
	Immediately   bool
	GracePeriod   time.Duration
	Manual        bool
	Stabilization time.Duration
}

// BehaviorOf reads p's failover block (p may be nil: the defaults).
// Negative durations count as 0.
func BehaviorOf(p *placement.Policy) Behavior {
	var fb *meridianv1.FailoverBehavior
	if p != nil {
		fb = p.Spec.GetFailover()
	}
	b := Behavior{
		Disabled:      fb.GetDisabled(),
		Toleration:    DefaultToleration,
		Immediately:   fb.GetPurgeMode() == PurgeImmediately,
		GracePeriod:   DefaultGracePeriod,
		Manual:        fb.GetFailback() == FailbackManual,
		Stabilization: DefaultStabilization,
	}
	if fb != nil && fb.TolerationSeconds != nil {
		b.Toleration = seconds(fb.GetTolerationSeconds())
	}
	if fb != nil && fb.GracePeriodSeconds != nil {
		b.GracePeriod = seconds(fb.GetGracePeriodSeconds())
	}
	if fb != nil && fb.StabilizationSeconds != nil {
		b.Stabilization = seconds(fb.GetStabilizationSeconds())
	}
	return b
}

func seconds(n int32) time.Duration { return time.Duration(max(n, 0)) * time.Second }
