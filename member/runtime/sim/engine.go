// Package sim is the runtime driver that simulates pods, for scale tests: no
// process runs, but pods go through the phases a real driver reports, with a
// configurable start delay, start failures, crash-loop back-off and
// completion.
//
// One Engine simulates any number of nodes (Engine.Node returns each node's
// runtime.Driver). It keeps every pod in a compact record and every pending
// transition in one timer heap served by a single goroutine, so tens of
// thousands of pods on thousands of nodes cost one goroutine and a few
// hundred bytes per pod.
//
// Randomness is deterministic: whether a start attempt fails and how much
// jitter it gets are derived from Config.Seed, the pod's UID and the attempt
// number, so a run can be replayed whatever order pods start in.
package sim

import (
	"errors"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
)

// Name is the drivers' name, as returned by Node.Name.
const Name = "sim"

// Config configures an Engine. The zero value simulates pods that start at
// once, never fail and run until stopped.
type Config struct {
	// StartDelay is how long a container takes to start (image pull,
	// process start) on each attempt.
	StartDelay time.Duration
	// StartJitter adds a uniform random delay in [0, StartJitter) to each
	// start.
	StartJitter time.Duration
	// FailureRate is the probability, in [0, 1], that a start attempt fails:
	// the container exits with status 1 as soon as it starts.
	FailureRate float64
	// Seed seeds the engine's randomness.
	Seed uint64
	// CompleteAfter is how long batch pods (restartPolicy OnFailure or
	// Never) run before they exit with status 0. Zero: they run until
	// stopped, like service pods.
	CompleteAfter time.Duration
	// StopDelay is how long a simulated container takes to exit once asked
	// to stop; a shorter grace period cuts it short.
	StopDelay time.Duration
	// BackoffBase and BackoffCap are the crash-loop back-off (see
	// runtime.Backoff). Defaults 10 s and 5 min, as the kubelet.
	BackoffBase, BackoffCap time.Duration
	// OnChange, if set, is told about status changes (see
	// runtime.ChangeFunc). It is called from the engine's goroutine and
	// from Start; a slow OnChange slows the whole simulation.
	OnChange runtime.ChangeFunc
}

func (c Config) withDefaults() Config {
	if c.BackoffBase == 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = 5 * time.Minute
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.FailureRate < 0 || c.FailureRate > 1:
		return errors.New("sim: FailureRate must be within [0, 1]")
	case c.StartDelay < 0 || c.StartJitter < 0 || c.CompleteAfter < 0 || c.StopDelay < 0:
		return errors.New("sim: durations must not be negative")
	case c.BackoffBase < 0 || c.BackoffCap < c.BackoffBase:
		return errors.New("sim: BackoffCap must be at least BackoffBase, both non-negative")
	}
	return nil
}

// Stats counts the engine's pods by phase.
type Stats struct {
	Pods      int
	Pending   int
	Running   int
	Succeeded int
	Failed    int
	// Ready counts the Running pods that are ready.
	Ready int
}

// Engine simulates the pods of any number of nodes. Create it with New and
// stop it with Close; it is safe for concurrent use.
type Engine struct {
	cfg     Config
	backoff runtime.Backoff

	// wake nudges the loop when an event earlier than the ones it waits
	// for is queued (buffered, never blocks).
	wake chan struct{}
	// quit is closed by Close to stop the loop; done is closed by the loop.
	quit chan struct{}
	done chan struct{}

	mu sync.Mutex
	// pods holds every simulated pod by UID; guarded by mu.
	pods map[string]*pod
	// nodes holds the nodes handed out by Node; guarded by mu.
	nodes map[string]*Node
	// events are the pending transitions, earliest first; guarded by mu.
	events eventHeap
	// names interns container name lists, shared by the pods of a
	// workload; guarded by mu.
	names map[string][]string
	// stats is kept up to date at every transition; guarded by mu.
	stats Stats
	// closed is set by Close; guarded by mu.
	closed bool
}

// New validates cfg and starts the engine's goroutine.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		backoff: runtime.Backoff{Base: cfg.BackoffBase, Cap: cfg.BackoffCap},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		pods:    make(map[string]*pod),
		nodes:   make(map[string]*Node),
		names:   make(map[string][]string),
	}
	go e.loop()
	return e, nil
}

// Node returns the driver of the simulated node with this name, creating it
// on first use. Every call with the same name returns the same *Node.
func (e *Engine) Node(name string) *Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.nodes[name]
	if n == nil {
		n = &Node{e: e, name: name}
		e.nodes[name] = n
	}
	return n
}

// Stats returns the current pod counts.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Close stops the engine's goroutine and forgets every pod; pods stopping
// are released at once. Calls after the first return nil.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, p := range e.pods {
		e.removeLocked(p)
	}
	e.events = nil
	e.mu.Unlock()
	close(e.quit)
	<-e.done
	return nil
}

// maxBatch bounds how many events the loop handles per hold of the lock, so
// that Status and Start calls are not starved during a burst.
const maxBatch = 1024

// loop is the engine's goroutine: it applies due events and sleeps until the
// next one. Owned by the Engine; quit stops it.
func (e *Engine) loop() {
	defer close(e.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var changed []string
	for {
		e.mu.Lock()
		now := time.Now().UnixNano()
		changed = changed[:0]
		for n := 0; n < maxBatch && len(e.events) > 0 && e.events[0].at <= now; n++ {
			ev := e.events.pop()
			if ev.pod.gen != ev.gen || ev.pod.removed {
				continue // superseded
			}
			if e.apply(ev, now) {
				changed = append(changed, ev.pod.uid)
			}
		}
		wait := time.Hour
		busy := len(e.events) > 0 && e.events[0].at <= now
		if len(e.events) > 0 && !busy {
			wait = time.Duration(e.events[0].at - now)
		}
		e.mu.Unlock()

		for _, uid := range changed {
			e.notify(uid)
		}
		if busy {
			select {
			case <-e.quit:
				return
			default:
				continue
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-e.wake:
		case <-e.quit:
			return
		}
	}
}

// scheduleLocked queues an event for p and wakes the loop if it is now the
// earliest. e.mu must be held.
func (e *Engine) scheduleLocked(p *pod, at int64, kind eventKind) {
	earliest := len(e.events) == 0 || at < e.events[0].at
	e.events.push(event{at: at, pod: p, gen: p.gen, kind: kind})
	if earliest {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *Engine) notify(uid string) {
	if e.cfg.OnChange != nil {
		e.cfg.OnChange(uid)
	}
}

// internNames returns a shared copy of a container name list. e.mu must be
// held.
func (e *Engine) internNames(names []string) []string {
	key := strings.Join(names, "\x00")
	if s, ok := e.names[key]; ok {
		return s
	}
	s := append([]string(nil), names...)
	e.names[key] = s
	return s
}

// random returns a deterministic number in [0, 1) for a pod's start
// attempt and a purpose (salt).
func (e *Engine) random(uid string, attempt uint32, salt uint64) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	x := splitmix64(e.cfg.Seed ^ h.Sum64() ^ uint64(attempt)*0x9e3779b97f4a7c15 ^ salt)
	return float64(x>>11) / (1 << 53)
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// eventKind is what an event does to its pod.
type eventKind uint8

const (
	// evStarted: a start attempt completes, successfully or not.
	evStarted eventKind = iota
	// evExited: a running container exits with status 0 (batch pods).
	evExited
	// evRestart: the crash-loop back-off has passed; a new attempt begins.
	evRestart
	// evStopped: a stopping pod's containers have exited.
	evStopped
)

// event is one pending transition. gen must match the pod's gen for the
// event to apply; bumping gen cancels a pod's pending events.
type event struct {
	at   int64 // unix nanoseconds
	pod  *pod
	gen  uint32
	kind eventKind
}

// eventHeap is a binary min-heap of events by time. It is written out,
// rather than using container/heap, to keep events unboxed: one allocation
// per event would dominate the engine's cost.
type eventHeap []event

func (h *eventHeap) push(ev event) {
	*h = append(*h, ev)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if s[parent].at <= s[i].at {
			break
		}
		s[parent], s[i] = s[i], s[parent]
		i = parent
	}
}

// pop removes and returns the earliest event; the heap must not be empty.
func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = event{}
	s = s[:last]
	for i := 0; ; {
		l, r, least := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].at < s[least].at {
			least = l
		}
		if r < len(s) && s[r].at < s[least].at {
			least = r
		}
		if least == i {
			break
		}
		s[i], s[least] = s[least], s[i]
		i = least
	}
	*h = s
	return top
}
