package gossip

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"
)

// Test harness: real memberlist nodes on 127.0.0.1 with ports picked by the
// kernel, ProfileTest timings, and polling with deadlines instead of sleeps.
// Set GOSSIP_TEST_LOG=1 to see every log line, memberlist's included.

// waitTimeout bounds every wait in these tests. Detection with ProfileTest
// takes about 1.5 s; the rest is margin for a loaded machine running -race.
const waitTimeout = 10 * time.Second

// testLogger discards logs unless GOSSIP_TEST_LOG is set. It never uses
// t.Log: memberlist's goroutines may log after a test has ended.
func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newKey returns a fresh gossip key.
func newKey(t *testing.T) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// nodeConfig returns a loopback test config. A member gets a cluster named
// after it.
func nodeConfig(name string, role Role, region, dc, key string) Config {
	cfg := Config{
		Name:       name,
		Role:       role,
		Region:     region,
		Datacenter: dc,
		Addresses:  map[string]string{"api": "127.0.0.1:7700", "sync": "127.0.0.1:7701"},
		Version:    "v0.1.0",
		BindAddr:   "127.0.0.1",
		PrimaryKey: key,
		Profile:    ProfileTest(),
		Logger:     testLogger(),
	}
	if role == RoleMember {
		cfg.Cluster = "cluster-" + name
	}
	return cfg
}

// startNode starts a node and closes it when the test ends.
func startNode(t *testing.T, cfg Config) *Gossip {
	t.Helper()
	g, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close(%s): %v", cfg.Name, err)
		}
	})
	return g
}

// join joins g to the pool through seed and fails the test otherwise.
func join(t *testing.T, g, seed *Gossip) {
	t.Helper()
	if n, err := g.Join([]string{seed.LocalAddr()}); err != nil || n != 1 {
		t.Fatalf("%s joining %s: n=%d err=%v", g.cfg.Name, seed.cfg.Name, n, err)
	}
}

// eventually polls cond every 10 ms until it holds or waitTimeout passes;
// cond returns whether it holds and, if not, what it saw instead.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last saw: %s", waitTimeout, what, saw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// seesState waits until observer sees node in state.
func seesState(t *testing.T, observer *Gossip, node string, state State) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to see %s %s", observer.cfg.Name, node, state), func() (bool, string) {
		m, ok := observer.Member(node)
		return ok && m.State == state, describe(observer.Members())
	})
}

// waitEvent reads events until one matches, failing after waitTimeout.
func waitEvent(t *testing.T, ch <-chan Event, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	var seen []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event channel closed while waiting for %s; saw %v", what, seen)
			}
			if match(ev) {
				return ev
			}
			seen = append(seen, ev.Type.String()+":"+ev.Member.Name)
		case <-timeout.C:
			t.Fatalf("timed out after %s waiting for %s; saw %v", waitTimeout, what, seen)
		}
	}
}

// isEvent matches an event of one type about one node.
func isEvent(typ EventType, node string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == typ && ev.Member.Name == node }
}
