// Package gossip is the federation's gossip layer: an encrypted
// hashicorp/memberlist pool of hub nodes and member agents that answers
// "who is alive, and where" quickly and cheaply across datacenters. Each
// node advertises a small meta (role, region, datacenter, cluster,
// addresses, version); every node sees every other one as Alive, Suspect,
// Dead or Left, and can subscribe to the changes. Authoritative state
// (what should run, what runs) travels over gRPC, not here; Combine merges
// the two views into a cluster's health.
//
// The README in this directory has a diagram, the vocabulary and the
// profiles.
package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors callers test for.
var (
	// ErrClosed is returned by calls on a closed Gossip.
	ErrClosed = errors.New("gossip is closed")
	// ErrLeft is returned by UpdateMeta after Leave.
	ErrLeft = errors.New("gossip node has left")
	// ErrKeyNotInstalled is returned by UseKey for a key that is not on the
	// keyring.
	ErrKeyNotInstalled = errors.New("gossip key is not installed")
	// ErrRemovePrimaryKey is returned by RemoveKey for the primary key.
	ErrRemovePrimaryKey = errors.New("the primary gossip key cannot be removed: make another key primary first")
)

// Gossip is one node of the gossip pool. Start creates it; Close stops it.
// All methods are safe for concurrent use.
//
// Goroutines: memberlist runs its own (listeners, prober, gossiper), stopped
// by Shutdown in Close. The Gossip owns two more, both stopped by closing
// stop and waited for in Close: the watcher (suspicion pings and
// forgetting of long-dead nodes, suspicion.go) and, when Seeds are set, the
// joiner (rejoin, below).
type Gossip struct {
	// cfg is the validated configuration; read-only after Start.
	cfg Config
	log *slog.Logger
	// ml and keyring are set by Start before any goroutine of the Gossip
	// runs and never change.
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring

	// metaMu serializes the calls that change this node's meta (UpdateMeta,
	// Leave) and guards meta and leaving.
	metaMu  sync.Mutex
	meta    Meta
	leaving bool
	// metaBytes is the encoded meta; NodeMeta loads it without a lock.
	metaBytes atomic.Pointer[[]byte]

	// keyMu serializes keyring changes (keyring.go).
	keyMu sync.Mutex

	// lifeMu keeps calls into memberlist from racing with its Shutdown
	// (memberlist panics on Leave after Shutdown): Join, UpdateMeta, Leave
	// hold it for reading, Close for writing.
	lifeMu sync.RWMutex
	closed atomic.Bool

	// mu guards members and subs. memberlist's callbacks take it with
	// memberlist's node lock held, so it is never held while calling into
	// memberlist.
	mu      sync.Mutex
	members map[string]*record
	// subs is nil once Close has closed every subscriber.
	subs map[*subscriber]struct{}

	// stop is closed by Close to stop the watcher and the joiner; wg waits
	// for them.
	stop chan struct{}
	wg   sync.WaitGroup
}

// Start validates cfg, starts memberlist and the Gossip's goroutines, and
// returns the running node. It does not wait for the seeds: the joiner tries
// them at once in the background (use Join to join synchronously).
func Start(cfg Config) (*Gossip, error) {
	cfg = cfg.clone()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keyring, err := newKeyring(cfg.PrimaryKey, cfg.SecondaryKeys)
	if err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "gossip", "node", cfg.Name),
		keyring: keyring,
		meta:    cfg.meta(),
		members: make(map[string]*record),
		subs:    make(map[*subscriber]struct{}),
		stop:    make(chan struct{}),
	}
	metaBytes, err := encodeMeta(g.meta, false)
	if err != nil {
		return nil, err
	}
	g.metaBytes.Store(&metaBytes)

	ml, err := memberlist.Create(g.memberlistConfig())
	if err != nil {
		return nil, fmt.Errorf("failed to start memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	g.ml = ml
	g.wg.Go(g.watch)
	if len(cfg.Seeds) > 0 {
		g.wg.Go(g.rejoin)
	}
	g.log.Info("gossip started", "addr", g.LocalAddr(), "profile", cfg.Profile.Name,
		"role", cfg.Role, "region", cfg.Region, "datacenter", cfg.Datacenter)
	return g, nil
}

// memberlistConfig builds the memberlist configuration: the LAN defaults,
// then the profile's timings, then this node's identity, addresses, keys,
// delegates and logger.
func (g *Gossip) memberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	g.cfg.Profile.apply(c)
	c.Name = g.cfg.Name
	c.BindAddr = g.cfg.BindAddr
	c.BindPort = g.cfg.BindPort
	c.AdvertiseAddr = g.cfg.AdvertiseAddr
	c.AdvertisePort = g.cfg.AdvertisePort
	if c.AdvertisePort == 0 {
		// memberlist replaces it with the picked port when BindPort is 0.
		c.AdvertisePort = g.cfg.BindPort
	}
	c.Keyring = g.keyring
	// Reject anything not encrypted with an installed key, both ways (the
	// LAN default; set here so that it cannot silently change).
	c.GossipVerifyIncoming = true
	c.GossipVerifyOutgoing = true
	c.Delegate = metaDelegate{g: g}
	c.Events = eventDelegate{g: g}
	c.Logger = newMemberlistLogger(g.log)
	return c
}

// LocalAddr returns the gossip address (ip:port) other nodes reach this node
// at; with BindPort 0 it tells which port was picked.
func (g *Gossip) LocalAddr() string {
	return g.LocalMember().Addr
}

// Join contacts the given gossip addresses (host:port) and exchanges state
// with each; it returns how many answered, and an error only if none did.
// One answer is enough to join the whole pool. Each unreachable seed costs
// up to Profile.TCPTimeout.
func (g *Gossip) Join(seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, errors.New("failed to join gossip: no seeds given")
	}
	g.lifeMu.RLock()
	defer g.lifeMu.RUnlock()
	if g.closed.Load() {
		return 0, ErrClosed
	}
	n, err := g.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("failed to join gossip through %s: %w", strings.Join(seeds, ", "), oneLine(err))
	}
	return n, nil
}

// seedErrors are the errors of a join, one per seed, on one line.
type seedErrors []error

// Error joins the errors with "; ".
func (e seedErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (e seedErrors) Unwrap() []error { return e }

// oneLine turns memberlist's multi-line multierror (one line per seed) into
// seedErrors, so that logs keep one line per record.
func oneLine(err error) error {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) {
		return seedErrors(multi.WrappedErrors())
	}
	return err
}

// UpdateMeta replaces this node's meta (start from LocalMember().Meta to
// change one field) and broadcasts it, waiting up to timeout (which must be
// positive) for the broadcast to go out. The new meta is in effect locally
// as soon as it is valid; a timeout error means only that the broadcast was
// slow — gossip and push/pull still spread it.
func (g *Gossip) UpdateMeta(meta Meta, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("failed to update gossip meta: timeout must be positive, got %s", timeout)
	}
	check := g.cfg.clone()
	check.Role, check.Region, check.Datacenter = meta.Role, meta.Region, meta.Datacenter
	check.Cluster, check.Addresses, check.Version = meta.Cluster, meta.Addresses, meta.Version
	if err := check.Validate(); err != nil {
		return fmt.Errorf("failed to update gossip meta: %w", err)
	}
	g.lifeMu.RLock()
	defer g.lifeMu.RUnlock()
	if g.closed.Load() {
		return ErrClosed
	}
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	if g.leaving {
		return ErrLeft
	}
	b, err := encodeMeta(meta, false)
	if err != nil {
		return fmt.Errorf("failed to update gossip meta: %w", err)
	}
	g.meta = meta.clone()
	g.metaBytes.Store(&b)
	if err := g.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("failed to broadcast the gossip meta update: %w", err)
	}
	return nil
}

// Leave leaves the pool gracefully, so that the others see this node as
// Left rather than Dead, waiting up to timeout (which must be positive) for
// the news to go out. It first marks the meta as leaving (memberlist alone
// cannot tell the others a leave from a failure), then broadcasts
// memberlist's leave. The node keeps answering until Close; it cannot join
// again. Calling Leave twice is harmless.
func (g *Gossip) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("failed to leave gossip: timeout must be positive, got %s", timeout)
	}
	g.lifeMu.RLock()
	defer g.lifeMu.RUnlock()
	if g.closed.Load() {
		return ErrClosed
	}
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	deadline := time.Now().Add(timeout)
	if !g.leaving {
		g.leaving = true
		// Validate checked that the meta fits with the leaving flag set.
		b, err := encodeMeta(g.meta, true)
		if err != nil {
			return fmt.Errorf("failed to leave gossip: %w", err)
		}
		g.metaBytes.Store(&b)
		// Half the time for the leaving mark, the rest for the leave. If
		// the mark is slow, leave anyway: the others then see Dead.
		// (memberlist waits forever on a zero timeout, hence the floor.)
		if err := g.ml.UpdateNode(max(timeout/2, time.Millisecond)); err != nil {
			g.log.Debug("gossip leaving mark not fully broadcast; some nodes may see this node as Dead", "error", err)
		}
	}
	rest := max(time.Until(deadline), time.Millisecond) // memberlist waits forever on 0
	if err := g.ml.Leave(rest); err != nil {
		return fmt.Errorf("failed to broadcast the gossip leave: %w", err)
	}
	g.log.Info("gossip left")
	return nil
}

// Close stops the node without a leave (call Leave first to leave
// gracefully; otherwise the others see it Dead after their failure
// detection): it stops the Gossip's goroutines, waits for calls in flight
// (a Join may take up to Profile.TCPTimeout per seed), shuts memberlist
// down and closes every subscription. Close is idempotent.
func (g *Gossip) Close() error {
	if !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(g.stop)
	g.wg.Wait()

	g.lifeMu.Lock()
	err := g.ml.Shutdown()
	g.lifeMu.Unlock()

	g.mu.Lock()
	g.closeSubscribersLocked()
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("failed to shut down memberlist: %w", err)
	}
	g.log.Info("gossip stopped")
	return nil
}

// rejoin is the joiner: it tries the seeds at once, then every
// Config.RejoinInterval while this node sees no live hub — a member started
// before the hub, a member that outlived a hub restart (the restarted hub
// knows nobody), a hub whose peers all failed. While a hub is alive it does
// nothing: memberlist keeps the pool together. It is owned by the Gossip:
// started by Start when Seeds are set, stopped by Close through g.stop.
func (g *Gossip) rejoin() {
	t := time.NewTicker(g.cfg.RejoinInterval)
	defer t.Stop()
	reachable := true // so that the first failure is logged
	for {
		if !g.hubAlive() {
			reachable = g.joinSeeds(reachable)
		}
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
	}
}

// joinSeeds tries each seed in turn, checking for Close between seeds so
// that Close waits for at most one (Profile.TCPTimeout). It logs a change
// between "some seed answers" and "no seed answers" once, not every round,
// and returns whether a seed answered.
func (g *Gossip) joinSeeds(wasReachable bool) bool {
	joined := 0
	var errs []error
	for _, seed := range g.cfg.Seeds {
		select {
		case <-g.stop:
			return wasReachable
		default:
		}
		n, err := g.Join([]string{seed})
		joined += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case joined > 0:
		g.log.Info("joined gossip seeds", "answered", joined, "seeds", len(g.cfg.Seeds))
		return true
	case wasReachable:
		g.log.Warn("no gossip seed answers; retrying", "every", g.cfg.RejoinInterval, "error", errors.Join(errs...))
	}
	return false
}
