package gossip

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/memberlist"
)

// Role is what a gossip node is in the federation.
type Role string

// Roles.
const (
	// RoleHub is a node of the hub (1 or 3+ per federation).
	RoleHub Role = "hub"
	// RoleMember is a member agent: one local control plane in one
	// datacenter.
	RoleMember Role = "member"
)

// Meta is what a node tells everyone about itself. It travels as memberlist
// node meta, so its encoding must fit in memberlist.MetaMaxSize (512) bytes.
type Meta struct {
	// Role is hub or member.
	Role Role
	// Region and Datacenter place the node in the topology.
	Region     string
	Datacenter string
	// Cluster is the member cluster the node belongs to (empty for a hub).
	Cluster string
	// Addresses are the node's service endpoints by name, e.g. "api" →
	// "10.0.0.5:7700", "sync" → "10.0.0.5:7701".
	Addresses map[string]string
	// Version is the node's software version.
	Version string
}

// clone returns a copy that shares nothing with m.
func (m Meta) clone() Meta {
	m.Addresses = maps.Clone(m.Addresses)
	return m
}

// equal reports whether two metas are the same.
func (m Meta) equal(o Meta) bool {
	return m.Role == o.Role && m.Region == o.Region && m.Datacenter == o.Datacenter &&
		m.Cluster == o.Cluster && m.Version == o.Version && maps.Equal(m.Addresses, o.Addresses)
}

// Member is one node of the gossip pool as this node sees it.
type Member struct {
	// Name is the node's unique gossip name.
	Name string
	// Meta is what the node advertises about itself (role, region,
	// datacenter, cluster, addresses, version).
	Meta
	// Addr is the node's gossip address (host:port).
	Addr string
	// State is the node's gossip state.
	State State
	// Since is when the node entered State, on this node's clock.
	Since time.Time
}

// metaFormat is the version of the wire encoding below. A decoder accepts
// any version and ignores fields it does not know, so a newer node may add
// fields without breaking older ones; changing the meaning of a field
// needs a new version.
const metaFormat = 1

// wireMeta is the node meta on the wire: a tiny JSON object with short keys.
// JSON rather than protobuf because it needs no generated code, stays
// readable in memberlist debug logs, is forward compatible (unknown keys are
// ignored) and is small enough: a typical hub or member meta is 120–200
// bytes of the 512 memberlist allows. encoding/json writes map keys sorted,
// so the same Meta always encodes to the same bytes, which matters because
// memberlist treats any byte change as a meta update.
type wireMeta struct {
	Format     int               `json:"f"`
	Role       Role              `json:"r"`
	Region     string            `json:"rg"`
	Datacenter string            `json:"dc"`
	Cluster    string            `json:"c,omitempty"`
	Addresses  map[string]string `json:"a,omitempty"`
	Version    string            `json:"v,omitempty"`
	// Leaving is set by Gossip.Leave just before memberlist's leave, so
	// that the others can tell a graceful leave from a failure: memberlist
	// reports both through NotifyLeave without saying which.
	Leaving bool `json:"l,omitempty"`
}

// encodeMeta encodes meta for the wire and checks that it fits.
func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	b, err := json.Marshal(wireMeta{
		Format:     metaFormat,
		Role:       m.Role,
		Region:     m.Region,
		Datacenter: m.Datacenter,
		Cluster:    m.Cluster,
		Addresses:  m.Addresses,
		Version:    m.Version,
		Leaving:    leaving,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to encode node meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node meta is %d bytes encoded, more than memberlist's limit of %d: shorten the addresses or names", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta decodes a node meta from the wire. It returns whether the node
// announced that it is leaving.
func decodeMeta(b []byte) (Meta, bool, error) {
	if len(b) == 0 {
		return Meta{}, false, fmt.Errorf("failed to decode node meta: empty (not a Meridian node?)")
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, false, fmt.Errorf("failed to decode node meta: %w", err)
	}
	if w.Format < 1 {
		return Meta{}, false, fmt.Errorf("failed to decode node meta: format %d is not a Meridian meta format", w.Format)
	}
	return Meta{
		Role:       w.Role,
		Region:     w.Region,
		Datacenter: w.Datacenter,
		Cluster:    w.Cluster,
		Addresses:  w.Addresses,
		Version:    w.Version,
	}, w.Leaving, nil
}

// record is what the Gossip keeps about one node. It is guarded by
// Gossip.mu.
type record struct {
	member Member
	// leaving is set when the node's meta announced a graceful leave; the
	// NotifyLeave that follows then means Left rather than Dead.
	leaving bool
	// failures counts consecutive failed direct pings (suspicion.go).
	failures int
	// local marks this node itself: it is never pinged nor forgotten.
	local bool
}

// snapshot returns a copy of the member that shares nothing with the record.
func (r *record) snapshot() Member {
	m := r.member
	m.Meta = m.Meta.clone()
	return m
}
