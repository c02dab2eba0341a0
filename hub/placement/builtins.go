package placement

import (
	"github.com/meridian-fed/meridian/policies/available"
	"github.com/meridian-fed/meridian/policies/clusteraffinity"
	"github.com/meridian-fed/meridian/policies/clusterhealth"
	"github.com/meridian-fed/meridian/policies/division"
	"github.com/meridian-fed/meridian/policies/framework"
	"github.com/meridian-fed/meridian/policies/locality"
	"github.com/meridian-fed/meridian/policies/resourcesfit"
	"github.com/meridian-fed/meridian/policies/spread"
	"github.com/meridian-fed/meridian/policies/tainttoleration"
)

// Builtins returns a fresh instance of every built-in policy, in no
// particular order (the pipeline's order comes from Config).
func Builtins() []framework.Plugin {
	return []framework.Plugin{
		clusteraffinity.New(), tainttoleration.New(), clusterhealth.New(), resourcesfit.New(),
		locality.New(), available.New(),
		spread.New(), division.New(),
	}
}

// NewDefault is the engine with the built-ins in the default order.
func NewDefault() *Engine {
	e, err := New(DefaultConfig(), Builtins())
	if err != nil {
		panic("placement: the default pipeline does not build: " + err.Error()) // a programming error, caught by every test
	}
	return e
}
