package federation

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

const (
	// snapshotChunk is how many Works one snapshot message carries.
	snapshotChunk = 500
	// maxBatch is how many watch events one SyncChanges carries at most.
	maxBatch = 256
)

// memberStream is one member's open Sync stream on this hub node.
type memberStream struct {
	cluster string
	cancel  context.CancelFunc
	sendMu  sync.Mutex // one Send at a time: the sender and lease grants

	mu       sync.Mutex
	inflight []int64       // revisions sent and not yet acknowledged, ascending
	ackCh    chan struct{} // closed and replaced on every ack

	// works is the cluster's Works as this stream's watch last saw them,
	// by name: the status writer changes them from these copies instead
	// of reading them first (a stale copy costs a retry).
	worksMu sync.Mutex
	works   map[string]*meridianv1.Work
}

// seen records w as the stream's watch saw it (deleted: gone).
func (s *memberStream) seen(w *meridianv1.Work, deleted bool) {
	s.worksMu.Lock()
	defer s.worksMu.Unlock()
	if s.works == nil {
		s.works = map[string]*meridianv1.Work{}
	}
	if deleted {
		delete(s.works, w.GetMetadata().GetName())
		return
	}
	s.works[w.GetMetadata().GetName()] = w
}

// work is the stream's copy of the Work name, nil if it has none.
func (s *memberStream) work(name string) *meridianv1.Work {
	s.worksMu.Lock()
	defer s.worksMu.Unlock()
	return s.works[name]
}

func (s *memberStream) ack(rev int64) {
	s.mu.Lock()
	i := 0
	for i < len(s.inflight) && s.inflight[i] <= rev {
		i++
	}
	s.inflight = s.inflight[i:]
	close(s.ackCh)
	s.ackCh = make(chan struct{})
	s.mu.Unlock()
}

// waitWindow blocks while window batches are unacknowledged.
func (s *memberStream) waitWindow(ctx context.Context, window int) error {
	for {
		s.mu.Lock()
		n, ch := len(s.inflight), s.ackCh
		s.mu.Unlock()
		if n < window {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *memberStream) sent(rev int64) {
	s.mu.Lock()
	s.inflight = append(s.inflight, rev)
	s.mu.Unlock()
}

// Sync serves one member's stream: see docs/federation.md.
func (f *Federation) Sync(stream meridianv1.FederationService_SyncServer) error {
	id, err := pki.Require(stream.Context(), pki.RoleMember)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "sync: the first message must be a hello")
	}
	cluster := hello.GetCluster()
	if cluster != id.Name {
		return status.Errorf(codes.PermissionDenied, "sync: the certificate of %s cannot sync cluster %q", id.Name, cluster)
	}
	if _, err := f.store.Get(stream.Context(), clusterKind, "", cluster); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return status.Errorf(codes.FailedPrecondition, "sync: cluster %s has not joined (it has no Cluster object); join again with a new token", cluster)
		}
		return status.Errorf(codes.Unavailable, "sync: read cluster %s: %v", cluster, err)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	s := f.register(cluster, cancel)
	defer f.unregister(s)
	log := f.log.With("cluster", cluster)
	log.Info("member connected", "revision", hello.GetRevision(), "hub_id_match", hello.GetHubId() == f.cfg.HubID)
	f.setConnected(ctx, cluster, true, hello)
	defer func() {
		// The stream's context is done; record the disconnect with a fresh one.
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		if f.isCurrent(s) {
			f.setConnected(dctx, cluster, false, nil)
		}
		log.Info("member disconnected", "err", err)
	}()

	errc := make(chan error, 2)
	helloAt := f.cfg.Now()
	go func() {
		if err := f.grantLease(ctx, s, stream, hello.GetLeaseSeq(), helloAt, true); err != nil {
			errc <- err
			return
		}
		errc <- f.receive(ctx, s, stream)
	}()
	go func() { errc <- f.send(ctx, s, stream, hello) }()
	err = <-errc
	cancel()
	<-errc
	if !f.isCurrent(s) {
		return status.Error(codes.Aborted, "sync: a newer stream of the same cluster replaced this one")
	}
	return err
}

func (f *Federation) register(cluster string, cancel context.CancelFunc) *memberStream {
	s := &memberStream{cluster: cluster, cancel: cancel, ackCh: make(chan struct{})}
	f.mu.Lock()
	old := f.streams[cluster]
	f.streams[cluster] = s
	f.mu.Unlock()
	if old != nil {
		old.cancel() // a member has one stream: the newest wins
	} else {
		f.metrics.streams.Inc()
	}
	return s
}

func (f *Federation) unregister(s *memberStream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams[s.cluster] == s {
		delete(f.streams, s.cluster)
		f.metrics.streams.Dec()
	}
}

func (f *Federation) isCurrent(s *memberStream) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[s.cluster] == s
}

// cachedWork is this node's copy of a cluster's Work, from the cluster's
// stream (nil if it has none).
func (f *Federation) cachedWork(cluster, name string) *meridianv1.Work {
	f.mu.Lock()
	s := f.streams[cluster]
	f.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.work(name)
}

// closeStream ends a cluster's stream on this node, if it has one.
func (f *Federation) closeStream(cluster string) {
	f.mu.Lock()
	s := f.streams[cluster]
	f.mu.Unlock()
	if s != nil {
		s.cancel()
	}
}

// receive handles the member's messages: acks, status and heartbeats.
func (f *Federation) receive(ctx context.Context, s *memberStream, stream meridianv1.FederationService_SyncServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := req.GetMessage().(type) {
		case *meridianv1.SyncRequest_Ack:
			s.ack(m.Ack.GetRevision())
			f.recordAck(s.cluster, m.Ack.GetRevision())
		case *meridianv1.SyncRequest_Status:
			f.status.enqueue(s.cluster, m.Status.GetWorks())
		case *meridianv1.SyncRequest_Heartbeat:
			f.heartbeat(ctx, s.cluster, m.Heartbeat)
		case *meridianv1.SyncRequest_LeaseRenewal:
			if err := f.renewed(ctx, s, stream, m.LeaseRenewal); err != nil {
				return err
			}
		case *meridianv1.SyncRequest_Hello:
			return status.Error(codes.InvalidArgument, "sync: hello is only the first message")
		default:
			return status.Error(codes.InvalidArgument, "sync: empty message")
		}
	}
}

// send streams the member's Works: a snapshot or the changes since its
// revision, then every later change.
func (f *Federation) send(ctx context.Context, s *memberStream, stream meridianv1.FederationService_SyncServer, hello *meridianv1.SyncHello) error {
	ns := federation.ClusterNamespace(s.cluster)
	rev := hello.GetRevision()
	snapshot := rev <= 0 || hello.GetHubId() != f.cfg.HubID
	if !snapshot {
		cur, err := f.store.Revision(ctx)
		if err != nil {
			return status.Errorf(codes.Unavailable, "sync: %v", err)
		}
		snapshot = rev > cur
	}
	sentGen := map[string]int64{} // work name → generation last sent
	for {
		if snapshot {
			var err error
			if rev, err = f.sendSnapshot(ctx, s, stream, ns, sentGen); err != nil {
				return err
			}
			snapshot = false
		}
		wctx, wcancel := context.WithCancel(ctx)
		events := f.store.Watch(wctx, workKind, ns, nil, rev)
		next, err := f.streamChanges(ctx, s, stream, events, rev, sentGen)
		wcancel()
		if errors.Is(err, storage.ErrCompacted) {
			f.log.Info("member's revision was compacted; sending a snapshot", "cluster", s.cluster, "revision", next)
			snapshot = true
			continue
		}
		return err
	}
}

func (f *Federation) sendSnapshot(ctx context.Context, s *memberStream, stream meridianv1.FederationService_SyncServer, ns string, sentGen map[string]int64) (int64, error) {
	items, rev, err := f.store.List(ctx, workKind, ns, nil)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, status.Errorf(codes.Unavailable, "sync: list works: %v", err)
	}
	clear(sentGen)
	s.worksMu.Lock()
	s.works = make(map[string]*meridianv1.Work, len(items))
	for _, o := range items {
		s.works[o.GetMetadata().GetName()] = o.(*meridianv1.Work)
	}
	s.worksMu.Unlock()
	if err := s.waitWindow(ctx, f.cfg.SyncWindow); err != nil {
		return 0, err
	}
	for i := 0; i == 0 || i < len(items); i += snapshotChunk {
		chunk := items[i:min(i+snapshotChunk, len(items))]
		msg := &meridianv1.SyncSnapshot{HubId: f.cfg.HubID, Revision: rev, Last: i+snapshotChunk >= len(items)}
		for _, o := range chunk {
			w := wireWork(o.(*meridianv1.Work))
			sentGen[w.GetMetadata().GetName()] = w.GetMetadata().GetGeneration()
			msg.Works = append(msg.Works, w)
		}
		if err := s.send(stream, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_Snapshot{Snapshot: msg}}); err != nil {
			return 0, err
		}
	}
	s.sent(rev)
	f.metrics.snapshots.WithLabelValues(s.cluster).Inc()
	f.metrics.sentChanges.WithLabelValues(s.cluster).Add(float64(len(items)))
	return rev, nil
}

// streamChanges sends the events of one watch in batches until it ends. It
// returns the last revision sent and, for a compacted revision, an error
// that is storage.ErrCompacted.
func (f *Federation) streamChanges(ctx context.Context, s *memberStream, stream meridianv1.FederationService_SyncServer,
	events <-chan storage.Event, rev int64, sentGen map[string]int64) (int64, error) {
	for {
		var batch []storage.Event
		select {
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return rev, ctx.Err()
				}
				return rev, status.Error(codes.Unavailable, "sync: the hub's watch ended; reconnect")
			}
			batch = append(batch, ev)
		case <-ctx.Done():
			return rev, ctx.Err()
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		msg := &meridianv1.SyncChanges{}
		for _, ev := range batch {
			switch ev.Type {
			case storage.Error:
				if errors.Is(ev.Err, storage.ErrCompacted) {
					return rev, ev.Err
				}
				return rev, status.Errorf(codes.Unavailable, "sync: watch: %v", ev.Err)
			case storage.Bookmark:
			case storage.Deleted:
				s.seen(ev.Object.(*meridianv1.Work), true)
				w := wireWork(ev.Object.(*meridianv1.Work))
				delete(sentGen, w.GetMetadata().GetName())
				msg.Changes = append(msg.Changes, &meridianv1.WorkChange{Work: w, Deleted: true, Revision: ev.Revision})
			default:
				w := ev.Object.(*meridianv1.Work)
				s.seen(w, false)
				name, gen := w.GetMetadata().GetName(), w.GetMetadata().GetGeneration()
				if g, ok := sentGen[name]; ok && g == gen {
					break // a status change: nothing for the member to apply
				}
				sentGen[name] = gen
				msg.Changes = append(msg.Changes, &meridianv1.WorkChange{Work: wireWork(w), Revision: ev.Revision})
			}
			if ev.Revision > rev {
				rev = ev.Revision
			}
		}
		msg.Revision = rev
		if err := s.waitWindow(ctx, f.cfg.SyncWindow); err != nil {
			return rev, err
		}
		if err := s.send(stream, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_Changes{Changes: msg}}); err != nil {
			return rev, err
		}
		s.sent(rev)
		f.metrics.sentChanges.WithLabelValues(s.cluster).Add(float64(len(msg.Changes)))
	}
}

// wireWork is the Work as sent to a member: without its status.
func wireWork(w *meridianv1.Work) *meridianv1.Work {
	c := proto.Clone(w).(*meridianv1.Work)
	c.Status = nil
	return c
}

// heartbeat records a member's heartbeat and capacity on its Cluster.
func (f *Federation) heartbeat(ctx context.Context, cluster string, hb *meridianv1.Heartbeat) {
	now := timestamppb.New(f.cfg.Now())
	_, err := f.store.Update(ctx, clusterKind, "", cluster, func(o resourceObject) error {
		cl := o.(*meridianv1.Cluster)
		if cl.Status == nil {
			cl.Status = &meridianv1.ClusterStatus{}
		}
		st := cl.Status
		st.LastHeartbeatTime = now
		st.Capacity, st.Allocatable, st.Available = hb.GetCapacity(), hb.GetAllocatable(), hb.GetAvailable()
		st.NodeCount = hb.GetNodeCount()
		return nil
	})
	if err != nil && ctx.Err() == nil {
		f.log.Warn("failed to record heartbeat", "cluster", cluster, "err", err)
	}
}

// setConnected records on the Cluster whether it has a Sync stream.
func (f *Federation) setConnected(ctx context.Context, cluster string, connected bool, hello *meridianv1.SyncHello) {
	now := f.cfg.Now()
	_, err := f.store.Update(ctx, clusterKind, "", cluster, func(o resourceObject) error {
		cl := o.(*meridianv1.Cluster)
		if cl.Status == nil {
			cl.Status = &meridianv1.ClusterStatus{}
		}
		c := &meridianv1.Condition{Type: condConnected, Status: "False", Reason: "StreamClosed", Message: "no Sync stream"}
		if connected {
			c.Status, c.Reason, c.Message = "True", "StreamOpen", "Sync stream open"
			cl.Status.LastHeartbeatTime = timestamppb.New(now)
			if v := hello.GetVersion(); v != "" {
				cl.Status.Version = v
			}
			if ep := hello.GetApiEndpoint(); ep != "" && cl.Spec != nil {
				cl.Spec.ApiEndpoint = ep
			}
		}
		cl.Status.Conditions = setCondition(cl.Status.Conditions, c, now)
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		f.log.Warn("failed to record the stream state", "cluster", cluster, "connected", connected, "err", err)
	}
}

// setCondition replaces the condition of c's type, keeping its transition
// time when the status is unchanged.
func setCondition(conds []*meridianv1.Condition, c *meridianv1.Condition, now time.Time) []*meridianv1.Condition {
	for i, old := range conds {
		if old.GetType() != c.GetType() {
			continue
		}
		c.LastTransitionTime = old.GetLastTransitionTime()
		if old.GetStatus() != c.GetStatus() || c.LastTransitionTime == nil {
			c.LastTransitionTime = timestamppb.New(now)
		}
		out := append([]*meridianv1.Condition(nil), conds...)
		out[i] = c
		return out
	}
	c.LastTransitionTime = timestamppb.New(now)
	return append(append([]*meridianv1.Condition(nil), conds...), c)
}

// Condition types on a Cluster.
const (
	condReady     = "Ready"
	condConnected = "Connected"
	condGossip    = "Gossip"
)

// resourceObject shortens resource.Object in mutate functions.
type resourceObject = resource.Object
