package federation

import (
	"context"
	"testing"
	"time"
)

// TestSyncWindow: a member with window unacknowledged batches gets nothing
// more until it acks; an ack frees every batch up to its revision.
func TestSyncWindow(t *testing.T) {
	s := &memberStream{cluster: "slow", ackCh: make(chan struct{})}
	for rev := int64(1); rev <= 3; rev++ {
		s.sent(rev * 10)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.waitWindow(ctx, 3); err == nil {
		t.Fatal("a full window did not block the sender")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.waitWindow(ctx, 3)
	}()
	s.ack(15) // frees revision 10 only
	if err := <-done; err != nil {
		t.Fatalf("an ack did not reopen the window: %v", err)
	}
	s.ack(30)
	s.mu.Lock()
	n := len(s.inflight)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d batches still in flight after acking the last revision", n)
	}
}
