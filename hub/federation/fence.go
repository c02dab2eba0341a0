package federation

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub/fencing"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Fence releases a singleton for failover: hub/fencing.Table implements it,
// and hub/failover declares the same interface.
type Fence interface {
	// Release lets a replacement of workload ("namespace/Kind/name"), which
	// cluster holds, start elsewhere: it returns the new fencing epoch once
	// cluster's lease has expired plus the safety margin, or how long to
	// wait until then.
	Release(ctx context.Context, workload, cluster string) (epoch int64, wait time.Duration, err error)
}

// Revoker begins the planned release of a singleton off a cluster that
// keeps its lease (a failback, a switchover): hub/fencing.Table implements
// it next to Fence (type-assert Config.Fence). After Revoke, Release
// answers with the epoch once the member reports its copy fenced, without
// waiting for the lease to run out.
type Revoker interface {
	Revoke(ctx context.Context, workload, cluster string) error
}

// Leases grants member leases on the Sync stream: hub/fencing.Table
// implements it.
type Leases interface {
	// Grant extends cluster's lease for a renewal received at received.
	Grant(ctx context.Context, cluster string, received time.Time) (fencing.Grant, error)
	// Ack records the epoch floors a member reports it enforces (fenced).
	Ack(ctx context.Context, cluster string, fenced map[string]int64) error
}

// grantLease answers a lease renewal (seq, received at received) with a
// LeaseGrant. Without Config.Leases the hub grants nothing: members then
// never hear that the hub does leases, and send no renewals. hello says
// the renewal came with the hello: a member renews only after its hello's
// grant, so failing that one ends the stream (the member reconnects and
// asks again) rather than leave it without a lease.
func (f *Federation) grantLease(ctx context.Context, s *memberStream, stream meridianv1.FederationService_SyncServer, seq int64, received time.Time, hello bool) error {
	if f.cfg.Leases == nil || seq == 0 {
		return nil
	}
	g, err := f.cfg.Leases.Grant(ctx, s.cluster, received)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.log.Warn("failed to grant a lease", "cluster", s.cluster, "seq", seq, "err", err)
		if hello {
			return status.Errorf(codes.Unavailable, "sync: failed to grant the lease of %s: %v", s.cluster, err)
		}
		// No grant this time: the member renews again, and fences itself
		// if none comes in time. The stream itself is fine.
		return nil
	}
	msg := &meridianv1.LeaseGrant{
		Seq: seq, DurationMs: g.Duration.Milliseconds(), RenewIntervalMs: g.RenewInterval.Milliseconds(), MinEpochs: g.MinEpochs,
	}
	if err := s.send(stream, &meridianv1.SyncResponse{Message: &meridianv1.SyncResponse_LeaseGrant{LeaseGrant: msg}}); err != nil {
		return status.Errorf(codes.Unavailable, "sync: failed to send a lease grant: %v", err)
	}
	return nil
}

// renewed handles a lease renewal: the member's fencing report, then the
// grant.
func (f *Federation) renewed(ctx context.Context, s *memberStream, stream meridianv1.FederationService_SyncServer, r *meridianv1.LeaseRenewal) error {
	received := f.cfg.Now()
	if f.cfg.Leases == nil {
		return nil
	}
	if err := f.cfg.Leases.Ack(ctx, s.cluster, r.GetFenced()); err != nil && ctx.Err() == nil {
		f.log.Warn("failed to record a fencing report", "cluster", s.cluster, "err", err)
	}
	return f.grantLease(ctx, s, stream, r.GetSeq(), received, false)
}

// send sends one message on the stream; the sender and lease grants share
// it.
func (s *memberStream) send(stream meridianv1.FederationService_SyncServer, m *meridianv1.SyncResponse) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return stream.Send(m)
}

// Fence is the hub's fence (Config.Fence; nil without one).
func (f *Federation) Fence() Fence { return f.cfg.Fence }
