package podutil

import (
	"errors"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// SlowStartInitialBatch is the first batch of SlowStartBatch.
const SlowStartInitialBatch = 1

// SlowStartBatch calls fn(i) for i in [0, count) in batches of growing size
// (1, 2, 4, ...), each batch in parallel, as Kubernetes' slowStartBatch: a
// controller whose creations all fail (a quota, an invalid template) makes
// one failed call instead of hundreds. It stops after the first batch with
// an error and returns how many calls succeeded and their errors joined;
// the calls it skipped are the caller's to account for (count - done -
// failed). Every goroutine it starts has returned when it returns.
func SlowStartBatch(count, initial int, fn func(i int) error) (done, failed int, err error) {
	var errs []error
	next := 0
	for batch := min(max(initial, 1), count); batch > 0; batch = min(2*batch, count-next) {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for i := next; i < next+batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		next += batch
		failed = len(errs)
		done = next - failed
		if failed > 0 {
			break
		}
	}
	return done, failed, errors.Join(errs...)
}

// FindCondition returns the condition of type typ, or nil.
func FindCondition(conds []*meridianv1.Condition, typ string) *meridianv1.Condition {
	for _, c := range conds {
		if c.GetType() == typ {
			return c
		}
	}
	return nil
}

// SetCondition returns conds with c in place of the condition of its type.
// The previous lastTransitionTime is kept while the status stays the same,
// so that a condition says since when it holds; otherwise it is now.
func SetCondition(conds []*meridianv1.Condition, c *meridianv1.Condition, now time.Time) []*meridianv1.Condition {
	if old := FindCondition(conds, c.GetType()); old != nil && old.GetStatus() == c.GetStatus() && old.GetLastTransitionTime() != nil {
		c.LastTransitionTime = proto.Clone(old.GetLastTransitionTime()).(*timestamppb.Timestamp)
	} else {
		c.LastTransitionTime = timestamppb.New(now)
	}
	return ReplaceCondition(conds, c)
}

// ReplaceCondition returns a deep copy of conds (which may come from a
// shared cache) with c where the condition of its type was, or appended
// if there was none. Conditions keep their place: a status computed twice
// from the same state is the same, and is not written again.
func ReplaceCondition(conds []*meridianv1.Condition, c *meridianv1.Condition) []*meridianv1.Condition {
	out := make([]*meridianv1.Condition, 0, len(conds)+1)
	replaced := false
	for _, o := range conds {
		if o.GetType() == c.GetType() {
			if !replaced {
				out = append(out, c)
				replaced = true
			}
			continue
		}
		out = append(out, proto.Clone(o).(*meridianv1.Condition))
	}
	if !replaced {
		out = append(out, c)
	}
	return out
}

// RemoveCondition returns a deep copy of conds without the condition of
// type typ (conds may come from a shared cache).
func RemoveCondition(conds []*meridianv1.Condition, typ string) []*meridianv1.Condition {
	out := make([]*meridianv1.Condition, 0, len(conds))
	for _, c := range conds {
		if c.GetType() != typ {
			out = append(out, proto.Clone(c).(*meridianv1.Condition))
		}
	}
	return out
}
