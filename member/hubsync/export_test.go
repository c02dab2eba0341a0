package hubsync

// NextRenewal numbers a renewal as if it were sent now.
func NextRenewal(l *Lease) int64 { return l.next() }
