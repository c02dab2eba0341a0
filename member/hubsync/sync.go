package hubsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Run keeps the member's Sync stream to the hub open until ctx ends:
// it dials with mutual TLS (the stored CA and certificate, read again for
// every connection), says hello with the persisted revision, applies what
// the hub sends, acknowledges it, and reports status and heartbeats. Any
// error ends the stream; Run then reconnects after a backoff that doubles
// from MinBackoff to MaxBackoff, with jitter, and starts again from the
// persisted revision. Join must have succeeded before (Run retries until a
// certificate is there).
func (c *Client) Run(ctx context.Context) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		c.setConnected(false, nil)
	}()
	c.track.reset()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.track.run(ctx)
	}()

	backoff := c.cfg.MinBackoff
	lastLogged := ""
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			c.m.reconnects.Inc()
		}
		s := &session{c: c}
		err := s.run(ctx)
		if ctx.Err() != nil {
			if s.connected {
				c.log.Info("disconnected from the hub", "reason", "stopping")
			}
			return
		}
		if err == nil {
			err = errors.New("the stream ended")
		}
		err = fmt.Errorf("hub %s: %w", c.hubAddr(), err)
		c.nextHub() // a multi-node hub: try the next node
		c.setConnected(false, err)
		switch {
		case s.connected:
			c.log.Info("disconnected from the hub", "err", err, "revision", c.synced().Revision)
			lastLogged = ""
		case err.Error() != lastLogged:
			c.log.Warn("cannot connect to the hub; retrying", "err", err)
			lastLogged = err.Error()
		default:
			c.log.Debug("cannot connect to the hub; retrying", "err", err)
		}
		if s.received.Load() {
			backoff = c.cfg.MinBackoff
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// jitter spreads d over [0.8d, 1.2d), so that members cut off together do
// not all come back at once.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// session is one Sync stream.
type session struct {
	c      *Client
	stream grpc.BidiStreamingClient[meridianv1.SyncRequest, meridianv1.SyncResponse]

	connected bool        // hello sent; only run's goroutine
	received  atomic.Bool // a message came from the hub
	sendMu    sync.Mutex  // one Send at a time
	failOnce  sync.Once   // the first error ends the session
	failErr   error       // set by failOnce
	cancel    func()      // ends the session's context

	leaseOnce sync.Once     // closes leased
	leased    chan struct{} // closed on the first lease grant
}

// run opens the stream and serves it until it fails or ctx ends.
func (s *session) run(ctx context.Context) error {
	c := s.c
	addr := c.hubAddr()
	tlsCfg, err := c.syncTLS(c.serverName(addr))
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgSize)),
		// A hub that vanishes without closing the connection (its machine
		// died, the network was cut) is noticed within Time+Timeout, not
		// when TCP gives up. The hub permits pings this often.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return fmt.Errorf("failed to dial the hub: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancel = cancel
	if s.stream, err = meridianv1.NewFederationServiceClient(conn).Sync(ctx); err != nil {
		return fmt.Errorf("failed to open the sync stream: %w", err)
	}
	st := c.synced()
	hello := &meridianv1.SyncHello{Cluster: c.cfg.Cluster, HubId: st.HubID, Revision: st.Revision, Version: c.cfg.Version, ApiEndpoint: c.cfg.APIEndpoint}
	s.leased = make(chan struct{})
	if c.cfg.Lease != nil {
		hello.LeaseSeq = c.cfg.Lease.next()
	}
	if err := s.send(&meridianv1.SyncRequest{Message: &meridianv1.SyncRequest_Hello{Hello: hello}}); err != nil {
		// The hub's reason, if it gave one, is in Recv's error.
		if _, rerr := s.stream.Recv(); rerr != nil {
			err = rerr
		}
		return fmt.Errorf("failed to say hello: %w", err)
	}
	s.connected = true
	c.setConnected(true, nil)
	c.log.Info("connected to the hub", "cluster", c.cfg.Cluster, "hub_id", st.HubID, "revision", st.Revision)

	var wg sync.WaitGroup
	for _, loop := range []func(context.Context) error{s.heartbeatLoop, s.statusLoop, s.renewLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(ctx); err != nil {
				s.fail(err)
			}
		}()
	}
	if err := s.recvLoop(ctx); err != nil {
		s.fail(err)
	}
	cancel()
	wg.Wait()
	return s.failErr
}

// fail ends the session with err, if it has not ended yet.
func (s *session) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		s.cancel()
	})
}

// send sends one message. io.EOF means the hub ended the stream; recvLoop
// gets its status.
func (s *session) send(m *meridianv1.SyncRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

// sendLoopMsg is send for the status and heartbeat loops: io.EOF ends the
// loop quietly (recvLoop reports why the stream ended).
func (s *session) sendLoopMsg(m *meridianv1.SyncRequest) (stop bool, err error) {
	if err := s.send(m); err != nil {
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		return true, fmt.Errorf("failed to send to the hub: %w", err)
	}
	return false, nil
}

// Coalescing. The hub sends a batch of changes as soon as its watch has
// any, and each batch the member applies ends in a persisted revision (an
// fsync or two) and an ack. When Works change faster than that — a
// failover rescales hundreds of workloads, and every status the hub writes
// into a Work is an event that makes a batch, often an empty one — the
// member applied and persisted one small batch at a time while the rest
// queued behind it. So the stream is read ahead, and the batches of
// changes already received are applied as one: in order, persisted and
// acknowledged once, at the last one's revision (an ack covers every
// revision up to it).
const (
	// recvAhead is how many messages are read ahead of the one applied.
	recvAhead = 256
	// maxCoalescedChanges bounds the changes applied as one batch.
	maxCoalescedChanges = 2048
)

// recvResult is one result of the stream's Recv.
type recvResult struct {
	resp *meridianv1.SyncResponse
	err  error
}

// readAhead receives from the stream into the returned channel until Recv
// fails (that error is the last thing sent) or ctx ends. The goroutine it
// starts ends then: the session cancels ctx as soon as recvLoop returns.
func (s *session) readAhead(ctx context.Context) <-chan recvResult {
	out := make(chan recvResult, recvAhead)
	go func() {
		for {
			resp, err := s.stream.Recv()
			if err == nil {
				s.received.Store(true)
			}
			select {
			case out <- recvResult{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// recvLoop applies what the hub sends, in order: a snapshot once its last
// chunk is in, the batches of changes as they come (those already received
// together, see Coalescing); it persists the revision and acknowledges it
// after each.
func (s *session) recvLoop(ctx context.Context) error {
	c := s.c
	var (
		snap    []*meridianv1.Work
		snapHub string
		snapRev int64
		inSnap  bool
		held    *recvResult // received while coalescing, not handled yet
	)
	in := s.readAhead(ctx)
	recv := func() (*meridianv1.SyncResponse, error) {
		var r recvResult
		if held != nil {
			r, held = *held, nil
		} else {
			select {
			case r = <-in:
			case <-ctx.Done():
				return nil, fmt.Errorf("sync stream: %w", ctx.Err())
			}
		}
		if r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return nil, errors.New("the hub ended the sync stream")
			}
			return nil, fmt.Errorf("sync stream: %w", r.err)
		}
		return r.resp, nil
	}
	for {
		resp, err := recv()
		if err != nil {
			return err
		}
		switch m := resp.GetMessage().(type) {
		case *meridianv1.SyncResponse_Snapshot:
			sn := m.Snapshot
			if inSnap && (sn.GetHubId() != snapHub || sn.GetRevision() != snapRev) {
				return fmt.Errorf("protocol error: a snapshot chunk at %s/%d within the snapshot at %s/%d", sn.GetHubId(), sn.GetRevision(), snapHub, snapRev)
			}
			inSnap, snapHub, snapRev = true, sn.GetHubId(), sn.GetRevision()
			snap = append(snap, sn.GetWorks()...)
			if !sn.GetLast() {
				continue
			}
			start := time.Now()
			stats, err := c.applySnapshot(ctx, snap)
			if err != nil {
				return fmt.Errorf("failed to apply the snapshot at revision %d: %w", snapRev, err)
			}
			if err := s.commit(syncState{HubID: snapHub, Revision: snapRev}); err != nil {
				return err
			}
			c.log.Info("applied the hub's snapshot", "hub_id", snapHub, "revision", snapRev, "works", len(snap),
				"created", stats.created, "configured", stats.configured, "unchanged", stats.unchanged,
				"deleted", stats.deleted, "failed", stats.failed, "took", time.Since(start))
			snap, inSnap = nil, false
		case *meridianv1.SyncResponse_Changes:
			if inSnap {
				return fmt.Errorf("protocol error: changes at revision %d within the snapshot at %d", m.Changes.GetRevision(), snapRev)
			}
			changes, rev, batches := m.Changes.GetChanges(), m.Changes.GetRevision(), 1
			// Take the batches of changes already here along; stop at
			// anything else (handled next, in order).
		coalesce:
			for len(changes) < maxCoalescedChanges {
				select {
				case r := <-in:
					next, ok := r.resp.GetMessage().(*meridianv1.SyncResponse_Changes)
					if r.err != nil || !ok {
						// Handled next: what came before it is applied
						// first, as it would have been without coalescing.
						held = &r
						break coalesce
					}
					changes = append(slices.Clip(changes), next.Changes.GetChanges()...)
					rev, batches = next.Changes.GetRevision(), batches+1
				default:
					break coalesce
				}
			}
			stats, err := c.applyChanges(ctx, changes)
			if err != nil {
				return fmt.Errorf("failed to apply the changes up to revision %d: %w", rev, err)
			}
			if err := s.commit(syncState{HubID: c.synced().HubID, Revision: rev}); err != nil {
				return err
			}
			c.log.Debug("applied the hub's changes", "revision", rev, "batches", batches, "changes", len(changes),
				"created", stats.created, "configured", stats.configured, "unchanged", stats.unchanged,
				"deleted", stats.deleted, "failed", stats.failed)
		case *meridianv1.SyncResponse_LeaseGrant:
			if c.cfg.Lease != nil && c.cfg.Lease.Granted(m.LeaseGrant) {
				s.leaseOnce.Do(func() { close(s.leased) })
			}
		default:
			c.log.Debug("ignoring a message of an unknown kind from the hub")
		}
	}
}

// commit persists st (the objects of its batch are stored), then
// acknowledges its revision.
func (s *session) commit(st syncState) error {
	c := s.c
	if err := writeSyncState(c.cfg.StateDir, st); err != nil {
		return err
	}
	c.setSynced(st)
	ack := &meridianv1.SyncRequest{Message: &meridianv1.SyncRequest_Ack{Ack: &meridianv1.SyncAck{Revision: st.Revision}}}
	if err := s.send(ack); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("failed to acknowledge revision %d: %w", st.Revision, err)
	}
	return nil
}

// heartbeatLoop sends a heartbeat now and every HeartbeatInterval.
func (s *session) heartbeatLoop(ctx context.Context) error {
	t := time.NewTicker(s.c.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		hb, err := s.c.heartbeat(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.c.log.Warn("failed to compute the heartbeat", "err", err)
		} else if stop, err := s.sendLoopMsg(&meridianv1.SyncRequest{Message: &meridianv1.SyncRequest_Heartbeat{Heartbeat: hb}}); stop {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sameReport reports whether r says nothing new over sent: equal, or
// equal but for when conditions last changed (a Deployment's Progressing
// condition is restamped at every step of a rollout, with the same status,
// reason and message). Such a report is not worth a write on the hub and
// an aggregation; the new times go with the next report that changes
// something.
func sameReport(r, sent *meridianv1.WorkStatusReport) bool {
	if sent == nil || proto.Equal(r, sent) {
		return sent != nil
	}
	a, b := proto.Clone(r).(*meridianv1.WorkStatusReport), proto.Clone(sent).(*meridianv1.WorkStatusReport)
	for _, x := range []*meridianv1.WorkStatusReport{a, b} {
		for _, c := range x.GetStatus().GetConditions() {
			c.LastTransitionTime = nil
		}
		for _, c := range x.GetStatus().GetWorkload().GetConditions() {
			c.LastTransitionTime = nil
		}
	}
	return proto.Equal(a, b)
}

// coalesce lets more status changes come after the first, for
// StatusInterval; when quiet, only until none came for StatusQuiet, if
// that is sooner. It reports false if ctx ended.
func (s *session) coalesce(ctx context.Context, notify <-chan struct{}, timer *time.Timer, quiet bool) bool {
	first := time.Now()
	last := first
	for {
		now := time.Now()
		d := first.Add(s.c.cfg.StatusInterval).Sub(now)
		if quiet {
			d = min(d, last.Add(s.c.cfg.StatusQuiet).Sub(now))
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-notify:
			last = time.Now() // Reset discards a fire not received (Go 1.23 timers)
		}
	}
}

// statusLoop sends a full status report once the tracker has listed every
// kind, then the reports that changed, each only if it differs from what
// this stream last sent. Changes are coalesced (coalesce): after a quiet
// spell (no report for StatusInterval), a report goes once the changes
// pause for StatusQuiet, so that a few changes reach the hub within
// milliseconds; while reports keep going, one goes every StatusInterval,
// which bounds what a failover of many workloads costs the hub.
func (s *session) statusLoop(ctx context.Context) error {
	t := s.c.track
	if !t.waitSynced(ctx) {
		return nil
	}
	sent := map[string]*meridianv1.WorkStatusReport{}
	all := t.all()
	for _, r := range all {
		sent[r.GetWork()] = r
	}
	if stop, err := s.sendLoopMsg(&meridianv1.SyncRequest{Message: &meridianv1.SyncRequest_Status{Status: &meridianv1.StatusReport{Works: all, Full: true}}}); stop {
		return err
	}
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	var sentAt time.Time // the full report does not count: the first change goes soon
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.notify:
		}
		if !s.coalesce(ctx, t.notify, timer, time.Since(sentAt) >= s.c.cfg.StatusInterval) {
			return nil
		}
		var works []*meridianv1.WorkStatusReport
		for w, r := range t.takeDirty() {
			if r == nil {
				delete(sent, w)
				continue
			}
			if sameReport(r, sent[w]) {
				continue
			}
			sent[w] = r
			works = append(works, r)
		}
		if len(works) == 0 {
			continue
		}
		sort.Slice(works, func(i, j int) bool { return works[i].GetWork() < works[j].GetWork() })
		if stop, err := s.sendLoopMsg(&meridianv1.SyncRequest{Message: &meridianv1.SyncRequest_Status{Status: &meridianv1.StatusReport{Works: works}}}); stop {
			return err
		}
		sentAt = time.Now()
	}
}
