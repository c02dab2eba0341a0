package gossip

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestWrongKeyCannotJoin(t *testing.T) {
	hub := startNode(t, nodeConfig("hub", RoleHub, "region-a", "dc-a1", newKey(t)))
	intruder := startNode(t, nodeConfig("intruder", RoleMember, "region-a", "dc-a1", newKey(t)))

	n, err := intruder.Join([]string{hub.LocalAddr()})
	if err == nil || n != 0 {
		t.Fatalf("join with the wrong key: n=%d err=%v, want an error", n, err)
	}
	t.Logf("join with the wrong key fails: %v", err)
	// The join is synchronous: had the hub accepted the state exchange, it
	// would list the intruder now.
	if _, ok := hub.Member("intruder"); ok {
		t.Error("hub lists the intruder")
	}
	if got := len(intruder.Members()); got != 1 {
		t.Errorf("intruder sees %d members, want only itself", got)
	}
}

// TestKeyRotation rotates the key of a running pool the way the hub will:
// install everywhere, use everywhere, remove everywhere. Between the steps,
// nodes with different primary keys keep talking.
func TestKeyRotation(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	hub := startNode(t, nodeConfig("hub", RoleHub, "region-a", "dc-a1", oldKey))
	member := startNode(t, nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", oldKey))
	join(t, member, hub)
	seesState(t, hub, "member-a2", StateAlive)

	for _, g := range []*Gossip{hub, member} {
		if err := g.InstallKey(newK); err != nil {
			t.Fatalf("%s InstallKey: %v", g.cfg.Name, err)
		}
		if err := g.InstallKey(newK); err != nil {
			t.Fatalf("%s InstallKey twice: %v", g.cfg.Name, err)
		}
	}
	// Only the hub switches: it now seals with the new key, the member
	// still with the old one.
	if err := hub.UseKey(newK); err != nil {
		t.Fatalf("UseKey: %v", err)
	}
	if got := hub.Keys(); !slices.Equal(got, []string{newK, oldKey}) {
		t.Fatalf("hub keys after UseKey: %v", got)
	}
	// Fresh messages flow both ways: each side's meta update reaches the
	// other.
	bumpVersion(t, hub, member, "v-hub-new-key")
	bumpVersion(t, member, hub, "v-member-old-key")

	if err := member.UseKey(newK); err != nil {
		t.Fatalf("UseKey: %v", err)
	}
	for _, g := range []*Gossip{hub, member} {
		if err := g.RemoveKey(oldKey); err != nil {
			t.Fatalf("%s RemoveKey: %v", g.cfg.Name, err)
		}
		if got := g.Keys(); !slices.Equal(got, []string{newK}) {
			t.Fatalf("%s keys after the rotation: %v", g.cfg.Name, got)
		}
	}
	bumpVersion(t, hub, member, "v-rotated")

	// A node with only the old key is now shut out; one with the new key
	// joins.
	stale := startNode(t, nodeConfig("stale", RoleMember, "region-b", "dc-b1", oldKey))
	if _, err := stale.Join([]string{hub.LocalAddr()}); err == nil {
		t.Error("a node with the removed key joined")
	}
	fresh := startNode(t, nodeConfig("fresh", RoleMember, "region-b", "dc-b1", newK))
	join(t, fresh, hub)
	seesState(t, member, "fresh", StateAlive)
}

// TestJoinDuringRotation: a node configured with the new key as primary and
// the old one as secondary joins nodes that have installed the new key but
// still send with the old one.
func TestJoinDuringRotation(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	hubCfg := nodeConfig("hub", RoleHub, "region-a", "dc-a1", oldKey)
	hubCfg.SecondaryKeys = []string{newK}
	hub := startNode(t, hubCfg)

	cfg := nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", newK)
	cfg.SecondaryKeys = []string{oldKey}
	member := startNode(t, cfg)
	join(t, member, hub)
	seesState(t, hub, "member-a2", StateAlive)
	bumpVersion(t, hub, member, "v-from-old-primary")
	bumpVersion(t, member, hub, "v-from-new-primary")
}

func TestKeyringErrors(t *testing.T) {
	k1, k2, k3, k4 := newKey(t), newKey(t), newKey(t), newKey(t)
	cfg := nodeConfig("solo", RoleHub, "region-a", "dc-a1", k1)
	cfg.SecondaryKeys = []string{k2, k3, k4}
	g := startNode(t, cfg)
	if got := g.Keys(); !slices.Equal(got, []string{k1, k2, k3, k4}) {
		t.Fatalf("Keys = %v", got)
	}

	// Removing a key from the middle keeps the order of the others.
	if err := g.RemoveKey(k2); err != nil {
		t.Fatal(err)
	}
	if got := g.Keys(); !slices.Equal(got, []string{k1, k3, k4}) {
		t.Errorf("after removing the second key: %v", got)
	}
	if err := g.RemoveKey(k2); err != nil {
		t.Errorf("removing an absent key: %v", err)
	}
	if err := g.RemoveKey(k1); !errors.Is(err, ErrRemovePrimaryKey) {
		t.Errorf("removing the primary key: %v, want ErrRemovePrimaryKey", err)
	}
	if err := g.UseKey(k2); !errors.Is(err, ErrKeyNotInstalled) {
		t.Errorf("using a removed key: %v, want ErrKeyNotInstalled", err)
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		if err := g.InstallKey(bad); err == nil {
			t.Errorf("InstallKey(%q) succeeded", bad)
		}
	}
}

// bumpVersion changes from's version and waits until to sees it: proof that
// a message sealed by from now was opened by to.
func bumpVersion(t *testing.T, from, to *Gossip, version string) {
	t.Helper()
	meta := from.cfg.meta()
	meta.Version = version
	if err := from.UpdateMeta(meta, 5*time.Second); err != nil {
		t.Fatalf("%s UpdateMeta: %v", from.cfg.Name, err)
	}
	eventually(t, fmt.Sprintf("%s to see %s at %s", to.cfg.Name, from.cfg.Name, version), func() (bool, string) {
		m, _ := to.Member(from.cfg.Name)
		return m.Version == version && m.State == StateAlive, m.Version + " " + m.State.String()
	})
}

// TestRemoveKeyUnderTraffic removes keys from the middle of a keyring while
// a peer's packets are being opened with a later key of that ring — the
// case where memberlist's own Keyring.RemoveKey races with its packet
// handlers (see RemoveKey). Under -race this fails if RemoveKey shifts
// keys in place.
func TestRemoveKeyUnderTraffic(t *testing.T) {
	k1, k2, k3, k4 := newKey(t), newKey(t), newKey(t), newKey(t)
	hubCfg := nodeConfig("hub", RoleHub, "region-a", "dc-a1", k1)
	hubCfg.SecondaryKeys = []string{k2, k3, k4}
	hub := startNode(t, hubCfg)
	// The member seals with k4, so the hub tries the keys before k4 on
	// every packet from it.
	memberCfg := nodeConfig("member-a2", RoleMember, "region-a", "dc-a2", k4)
	memberCfg.SecondaryKeys = []string{k1}
	member := startNode(t, memberCfg)
	join(t, member, hub)

	// Each keyring state is left in place for a tick so that packets are
	// opened with it: the point is to be unsynchronised with them (waiting
	// for an observable effect would order the reads before the next
	// write and hide the race).
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	// Removing and reinstalling k2, k3, k4 in turn cycles the ring through
	// [k1 k2 k3 k4] → [k1 k3 k4 k2] → [k1 k4 k2 k3] → [k1 k2 k3 k4], so
	// every removal is of the key at index 1, at or before k4.
	for i := range 30 {
		key := []string{k2, k3, k4}[i%3]
		<-pace.C
		if err := hub.RemoveKey(key); err != nil {
			t.Fatal(err)
		}
		<-pace.C
		if err := hub.InstallKey(key); err != nil {
			t.Fatal(err)
		}
	}
	if got := hub.Keys(); !slices.Equal(got, []string{k1, k2, k3, k4}) {
		t.Errorf("hub keys after the churn: %v", got)
	}
	// The pool survived the churn (packets sealed with a key that was
	// briefly off the ring were dropped, and retried).
	bumpVersion(t, member, hub, "v-after-churn")
}
