package federation_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/gossip"
)

// TestHealthFollowsSignalsAtOnce runs the hub with a health interval of an
// hour, so that only the evaluations a signal triggers can change a
// cluster's health within the test: a member that joins becomes Ready, and
// Unreachable once it stops (its Sync stream closes; with gossip, it also
// leaves the pool). A health controller that waits for its ticker fails it.
func TestHealthFollowsSignalsAtOnce(t *testing.T) {
	for _, withGossip := range []bool{false, true} {
		t.Run(fmt.Sprintf("gossip=%v", withGossip), func(t *testing.T) {
			key, err := gossip.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			f := startHub(t, func(c *hub.Config) {
				c.HealthInterval = time.Hour
				if withGossip {
					c.GossipListen = fmt.Sprintf("127.0.0.1:%d", hubtest.FreePort(t))
					c.GossipKey, c.GossipProfile = key, "test"
				}
			})
			cfg := f.memberConfig("dc-a1", "region-a", "dc-a1", 0)
			if withGossip {
				cfg.GossipListen = fmt.Sprintf("127.0.0.1:%d", hubtest.FreePort(t))
				cfg.GossipSeeds = []string{f.cfg.GossipListen}
				cfg.GossipKey, cfg.GossipProfile = key, "test"
			}
			m := f.join(cfg)
			eventually(t, "dc-a1 Ready", func() (bool, string) {
				c := f.cluster("dc-a1")
				return health(c) == "Ready", fmt.Sprint(c.GetStatus().GetConditions())
			})
			m.Close()
			eventually(t, "dc-a1 Unreachable", func() (bool, string) {
				c := f.cluster("dc-a1")
				return health(c) == "Unreachable", fmt.Sprint(c.GetStatus().GetConditions())
			})
		})
	}
}
