package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file holds everything memberlist calls back into: the two delegates
// and the logger. memberlist calls the event delegate with its node lock
// held, and the meta delegate from its gossip paths, so none of them may
// block or call back into memberlist. The lock order is therefore:
// memberlist's node lock, then Gossip.mu — and the Gossip never calls into
// memberlist while holding Gossip.mu.

// metaDelegate implements memberlist.Delegate. Only NodeMeta does anything:
// Meridian carries its authoritative state over gRPC, so gossip carries no
// user messages and no user state.
type metaDelegate struct{ g *Gossip }

var _ memberlist.Delegate = metaDelegate{}

// NodeMeta returns the encoded meta, prepared by Start and UpdateMeta so
// that this call only loads a pointer. Must not block.
func (d metaDelegate) NodeMeta(limit int) []byte {
	b := *d.g.metaBytes.Load()
	if len(b) > limit {
		// Validate and UpdateMeta check the size against
		// memberlist.MetaMaxSize, which is the only limit memberlist
		// passes; this guards against a future smaller limit, which would
		// otherwise make memberlist panic.
		return nil
	}
	return b
}

// NotifyMsg ignores user messages: Meridian sends none.
func (metaDelegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to broadcast.
func (metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState has no user state for push/pull.
func (metaDelegate) LocalState(bool) []byte { return nil }

// MergeRemoteState ignores remote user state.
func (metaDelegate) MergeRemoteState([]byte, bool) {}

// eventDelegate implements memberlist.EventDelegate: it turns joins, meta
// updates and leaves into records and events. memberlist calls it with its
// node lock held and never concurrently, so the methods only copy the node,
// take Gossip.mu briefly and publish without blocking.
type eventDelegate struct{ g *Gossip }

var _ memberlist.EventDelegate = eventDelegate{}

// NotifyJoin records a new node, or one that came back from Dead or Left.
// Must not block.
func (d eventDelegate) NotifyJoin(n *memberlist.Node) {
	d.g.nodeJoined(d.g.nodeInfo(n), time.Now())
}

// NotifyUpdate records a node's new meta. Must not block.
func (d eventDelegate) NotifyUpdate(n *memberlist.Node) {
	d.g.nodeUpdated(d.g.nodeInfo(n), time.Now())
}

// NotifyLeave records a node that memberlist declared dead or that left.
// Must not block.
func (d eventDelegate) NotifyLeave(n *memberlist.Node) {
	d.g.nodeLeft(n.Name, time.Now())
}

// nodeInfo is a copy of what a memberlist.Node says, taken while memberlist
// holds its lock (the Node must not be read after the callback returns).
type nodeInfo struct {
	name    string
	addr    string
	meta    Meta
	leaving bool
}

// nodeInfo copies n and decodes its meta. A node whose meta cannot be
// decoded (not a Meridian node, or a corrupt meta) is kept with an empty
// Meta and logged: dropping it would hide it from operators.
func (g *Gossip) nodeInfo(n *memberlist.Node) nodeInfo {
	info := nodeInfo{
		name: n.Name,
		addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
	}
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		g.log.Warn("gossip node has an unreadable meta", "node", n.Name, "error", err)
		return info
	}
	info.meta, info.leaving = meta, leaving
	return info
}

// slogWriter is the io.Writer behind memberlist's *log.Logger. memberlist
// formats lines as "[LEVEL] memberlist: message"; each becomes one slog
// record at debug level, with memberlist's level kept as an attribute.
// Debug, because memberlist's own WARN and ERR lines are expected noise
// around every failure (each failed probe of a dead node logs an error) and
// this package reports what matters as events; an operator chasing a gossip
// problem turns on debug logging and sees everything.
type slogWriter struct{ log *slog.Logger }

// newMemberlistLogger returns a *log.Logger for memberlist.Config.Logger.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{log: l}, "", 0)
}

// Write logs one memberlist line. log.Logger calls it once per line and
// serializes the calls.
func (w slogWriter) Write(p []byte) (int, error) {
	ctx := context.Background()
	if !w.log.Enabled(ctx, slog.LevelDebug) {
		return len(p), nil
	}
	line := bytes.TrimRight(p, "\n")
	level := "INFO"
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			level = string(line[1:end])
			line = bytes.TrimLeft(line[end+1:], " ")
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.log.LogAttrs(ctx, slog.LevelDebug, "memberlist: "+string(line),
		slog.String("memberlist_level", level))
	return len(p), nil
}
