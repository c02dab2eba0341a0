package drill

import "sync"

// writers bounds the store writes a drill makes at once (copies,
// bindings): the disruption of many workloads is one burst, not a
// sequence of fsyncs.
const writers = 16

// each runs f on every element of xs, writers at a time, and returns the
// first error. Every goroutine ends before it returns.
func each[T any](xs []T, f func(x T) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, writers)
	for _, x := range xs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(x); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
