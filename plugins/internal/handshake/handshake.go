// Package handshake is what the hub's plugin host and a plugin process must
// agree on before the first RPC of the meridian.plugin.v1 contract: the
// go-plugin handshake, the name of the one go-plugin "plugin" a process
// serves, and the contract versions the host speaks.
//
// go-plugin models a process as a set of named plugins; a Meridian plugin
// process serves exactly one, named Name, whose gRPC services are those of
// proto/meridian/plugin/v1 it registers. Both plugins/sdk and plugins/host
// build on this package so the two sides cannot drift apart.
package handshake

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// APIVersion is the version of the meridian.plugin.v1 contract this code
// speaks, as GetInfo lists it and Configure confirms it.
const APIVersion = "v1"

// Name is the go-plugin plugin name a Meridian plugin process serves.
const Name = "meridian"

// Config returns go-plugin's handshake for Meridian plugins. The magic
// cookie is not a security measure: it stops a plugin executable run by
// hand from waiting for a host that is not there. ProtocolVersion moves only
// if the transport itself changes; contract versions are negotiated by
// GetInfo instead, so one binary can speak several.
func Config() goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{
		ProtocolVersion:  1,
		MagicCookieKey:   "MERIDIAN_PLUGIN",
		MagicCookieValue: "5d1c0a6e-placement-plugin",
	}
}

// GRPC is the go-plugin glue for a Meridian plugin. A plugin process sets
// Register (which registers its services on go-plugin's gRPC server); the
// host leaves it nil and dispenses a *Conn.
type GRPC struct {
	goplugin.NetRPCUnsupportedPlugin
	// Register registers the plugin's gRPC services; nil on the host side.
	Register func(*grpc.Server)
}

var _ goplugin.GRPCPlugin = (*GRPC)(nil)

// GRPCServer registers the plugin's services (plugin side).
func (p *GRPC) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.Register == nil {
		return errors.New("no gRPC services to register")
	}
	p.Register(s)
	return nil
}

// GRPCClient returns the connection to the plugin process (host side).
// go-plugin cancels ctx when the process exits.
func (p *GRPC) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Conn{Done: ctx, Conn: c}, nil
}

// Conn is a host's connection to one plugin process.
type Conn struct {
	// Done ends when the plugin process has exited.
	Done context.Context
	// Conn is the gRPC connection the contract's clients use.
	Conn *grpc.ClientConn
}

// PluginSet returns the go-plugin plugin set of a Meridian plugin process
// (register non-nil) or host (register nil).
func PluginSet(register func(*grpc.Server)) goplugin.PluginSet {
	return goplugin.PluginSet{Name: &GRPC{Register: register}}
}
