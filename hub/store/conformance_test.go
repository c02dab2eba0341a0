package store_test

import (
	"testing"

	"github.com/meridian-fed/meridian/hub/store"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	"github.com/meridian-fed/meridian/proto/meridian/storage/storagetest"
)

// TestConformance holds the etcd store to the storage.Interface contract
// shared with the member's bbolt store, each subtest on a fresh etcd node.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Interface {
		s, _ := newStore(t)
		return s
	}, storagetest.WithCompact(func(t *testing.T, st storage.Interface, rev int64) {
		if err := st.(*store.Store).Compact(ctxT(t), rev); err != nil {
			t.Fatalf("Compact(%d): %v", rev, err)
		}
	}))
}
