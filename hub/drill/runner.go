package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Config configures a Runner.
type Config struct {
	// Store is the hub's object store (required).
	Store storage.Interface
	// Engine is the placement engine (required for unplanned and planned
	// drills: it re-places the scope's replicas on the survivors — an
	// unplanned drill checks beforehand that a placement off the scope
	// exists; the failover controller makes the move).
	Engine *placement.Engine
	Log    *slog.Logger
	// Poll is how often a drill looks at the federation (default
	// DefaultPoll); Scan how often new drills are looked for (default
	// 4×Poll).
	Poll time.Duration
	Scan time.Duration
	// MaxDuration is the hard cap of a drill's disruption (default
	// DefaultMaxDuration); a drill with an RTO objective is aborted at
	// ObjectiveFactor times the objective when that comes first.
	MaxDuration time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fence fences the singletons a planned or unplanned drill moves
	// (hub/fencing.Table, through federation.Config.Fence; it must also be
	// a Revoker): each cluster a singleton leaves is revoked and released
	// until it answers with an epoch before the binding moves, with that
	// epoch. Nil: a singleton is scaled to 0 where it leaves, moved once
	// that cluster's Work reports nothing running, with the binding's
	// epoch plus one. Other workloads are not fenced.
	Fence Fence
}

// Runner runs drills. Only the hub leader runs one.
type Runner struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	running map[string]bool // drills with a goroutine
	wg      sync.WaitGroup
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil {
		return nil, errors.New("drill: Store is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Scan <= 0 {
		cfg.Scan = 4 * cfg.Poll
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg, log: cfg.Log.With("component", "drill"), running: map[string]bool{}}, nil
}

// Run starts drills as they are created until ctx ends, then waits for
// every drill goroutine to stop. A drill found Running that no goroutine
// of this runner owns was left by an earlier leader: its changes are
// undone and it fails (a drill is not resumed half-way: its measurements
// would not be true).
func (r *Runner) Run(ctx context.Context) {
	defer r.wg.Wait()
	t := time.NewTicker(r.cfg.Scan)
	defer t.Stop()
	for {
		if err := r.scan(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("failed to scan drills", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scan admits pending drills (one at a time, so that the one-drill-per-
// scope guard sees every drill admitted before) and recovers orphans.
func (r *Runner) scan(ctx context.Context) error {
	objs, _, err := r.cfg.Store.List(ctx, drillKind, "", nil)
	if err != nil {
		return fmt.Errorf("failed to list drills: %w", err)
	}
	drills := make([]*meridianv1.Drill, 0, len(objs))
	for _, o := range objs {
		drills = append(drills, o.(*meridianv1.Drill))
	}
	for _, d := range drills {
		name := d.GetMetadata().GetName()
		r.mu.Lock()
		owned := r.running[name]
		r.mu.Unlock()
		if owned {
			continue
		}
		switch d.GetStatus().GetPhase() {
		case "", PhasePending:
			e, refusal, err := r.admit(ctx, d, drills)
			if err != nil {
				r.log.Warn("failed to admit drill", "drill", name, "err", err)
				continue
			}
			if refusal != "" {
				continue
			}
			d.Status = e.status // now Running: later drills of this scan see it
			r.start(ctx, name, e.run)
		case PhaseRunning:
			r.start(ctx, name, func(ctx context.Context) {
				// The list may predate the end of a drill whose goroutine
				// has just stopped: only a drill still Running is an orphan.
				o, err := r.cfg.Store.Get(ctx, drillKind, "", name)
				if err != nil {
					return
				}
				if cur := o.(*meridianv1.Drill); cur.GetStatus().GetPhase() == PhaseRunning {
					r.recoverOrphan(ctx, cur)
				}
			})
		}
	}
	return nil
}

func (r *Runner) start(ctx context.Context, name string, f func(context.Context)) {
	r.mu.Lock()
	r.running[name] = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, name)
			r.mu.Unlock()
		}()
		f(ctx)
	}()
}

// recoverOrphan undoes what a drill left by an earlier leader changed and
// marks it Failed.
func (r *Runner) recoverOrphan(ctx context.Context, d *meridianv1.Drill) {
	e := r.newExecution(d)
	e.step("Recover", "the hub leader changed during the drill: undoing its changes")
	err := e.restore(ctx, true)
	msg := "the hub leader changed during the drill; its changes were undone"
	if err != nil {
		msg = fmt.Sprintf("the hub leader changed during the drill; failed to undo its changes: %v", err)
	}
	e.finish(ctx, PhaseFailed, msg)
}

// updateDrill writes status (and reads the spec back).
func (r *Runner) updateDrill(ctx context.Context, name string, status *meridianv1.DrillStatus) (*meridianv1.Drill, error) {
	o, err := r.cfg.Store.Update(ctx, drillKind, "", name, func(o resource.Object) error {
		o.(*meridianv1.Drill).Status = status
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to write drill %s: %w", name, err)
	}
	return o.(*meridianv1.Drill), nil
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
