package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Proxy.Sync once the proxy is closed.
var ErrClosed = errors.New("service proxy closed")

// DefaultDialTimeout bounds one connection attempt to an endpoint. Endpoints
// are local pods: an attempt that takes longer than this is to a process
// that is not answering, and the next endpoint is a better bet.
const DefaultDialTimeout = 3 * time.Second

// Port is one TCP port of a Service as the proxy serves it: connections to
// the Service's address on Port go to one of Endpoints.
type Port struct {
	// Name is the Service port's name (may be empty), for logs and stats.
	Name string
	// Port is the port the proxy listens on, at the Service's address.
	Port uint16
	// Endpoints are the ready pods' addresses and target ports. The proxy
	// keeps its own copy.
	Endpoints []netip.AddrPort
}

// PortStats counts what happened on one listener since it opened.
type PortStats struct {
	Name string
	// Addr is where the proxy listens: the Service's address and port.
	Addr netip.AddrPort
	// Endpoints is how many endpoints the port has now.
	Endpoints int
	// Accepted counts accepted connections.
	Accepted uint64
	// Proxied counts connections forwarded to an endpoint.
	Proxied uint64
	// NoEndpoints counts connections closed at once because the port had
	// no ready endpoint (or none that answered).
	NoEndpoints uint64
	// DialFailures counts failed connection attempts to endpoints; after
	// one, the next endpoint is tried.
	DialFailures uint64
	// Active is the number of connections open now.
	Active int
}

// Proxy is a user-space L4 proxy for TCP: for every Service port it listens
// on the Service's virtual address and relays each accepted connection to
// one endpoint, round-robin. It is safe for concurrent use; Close stops
// every listener and connection it owns.
type Proxy struct {
	dialTimeout time.Duration
	log         *slog.Logger

	mu       sync.Mutex
	services map[string]*serviceListeners // by Service key; guarded by mu
	closed   bool                         // guarded by mu
}

// serviceListeners are the listeners of one Service, all on one address.
type serviceListeners struct {
	addr  netip.Addr
	ports map[uint16]*listener
}

// NewProxy returns a proxy that serves nothing yet. dialTimeout bounds each
// attempt to reach an endpoint (DefaultDialTimeout if not positive).
func NewProxy(dialTimeout time.Duration, log *slog.Logger) *Proxy {
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	return &Proxy{dialTimeout: dialTimeout, log: log, services: map[string]*serviceListeners{}}
}

// Sync makes the proxy serve exactly ports on addr for the Service key:
// listeners of ports no longer there close (with their connections), new
// ones open, and the endpoints of the others change in place without
// disturbing open connections. A change of address closes and reopens
// everything. The error names every port that could not listen; the
// others are served.
func (p *Proxy) Sync(key string, addr netip.Addr, ports []Port) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	sl := p.services[key]
	if sl != nil && sl.addr != addr {
		sl.close()
		sl = nil
	}
	if sl == nil {
		sl = &serviceListeners{addr: addr, ports: map[uint16]*listener{}}
		p.services[key] = sl
	}
	want := make(map[uint16]bool, len(ports))
	for _, pt := range ports {
		want[pt.Port] = true
	}
	for port, l := range sl.ports {
		if !want[port] {
			l.close()
			delete(sl.ports, port)
		}
	}
	var errs []error
	for _, pt := range ports {
		if l := sl.ports[pt.Port]; l != nil {
			l.setEndpoints(pt.Name, pt.Endpoints)
			continue
		}
		l, err := p.listen(key, netip.AddrPortFrom(addr, pt.Port), pt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sl.ports[pt.Port] = l
	}
	return errors.Join(errs...)
}

// Remove stops serving the Service key: its listeners and their
// connections close. Removing a Service the proxy does not serve is a no-op.
func (p *Proxy) Remove(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sl := p.services[key]; sl != nil {
		sl.close()
		delete(p.services, key)
	}
}

// Stats returns the counters of the Service key's listeners, by port.
func (p *Proxy) Stats(key string) []PortStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	sl := p.services[key]
	if sl == nil {
		return nil
	}
	out := make([]PortStats, 0, len(sl.ports))
	for _, l := range sl.ports {
		out = append(out, l.stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Port() < out[j].Addr.Port() })
	return out
}

// Close stops every listener and connection and waits for their goroutines.
// Calls after the first do nothing.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for key, sl := range p.services {
		sl.close()
		delete(p.services, key)
	}
}

func (sl *serviceListeners) close() {
	for _, l := range sl.ports {
		l.close()
	}
}

func (p *Proxy) listen(key string, addr netip.AddrPort, pt Port) (*listener, error) {
	ln, err := net.Listen("tcp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s for port %d: %w", addr, pt.Port, err)
	}
	l := &listener{
		ln:          ln.(*net.TCPListener),
		addr:        addr,
		dialTimeout: p.dialTimeout,
		log:         p.log.With("service", key, "listen", addr.String()),
		done:        make(chan struct{}),
		sessions:    map[*session]struct{}{},
	}
	l.setEndpoints(pt.Name, pt.Endpoints)
	l.wg.Add(1)
	go l.serve()
	return l, nil
}

// listener serves one Service port. It owns its accept loop and, for every
// accepted connection, the goroutines that relay it (wg); close ends all of
// them.
type listener struct {
	ln          *net.TCPListener
	addr        netip.AddrPort
	dialTimeout time.Duration
	log         *slog.Logger
	done        chan struct{} // closed by close: the accept loop stops backing off
	wg          sync.WaitGroup

	accepted, proxied, noEndpoints, dialFailures atomic.Uint64

	mu        sync.Mutex
	name      string                // guarded by mu
	endpoints []netip.AddrPort      // replaced, never changed in place; guarded by mu
	next      int                   // round-robin position; guarded by mu
	sessions  map[*session]struct{} // open connections; guarded by mu
	closed    bool                  // guarded by mu
}

// session is one accepted connection and, once dialled, its upstream.
type session struct {
	client   *net.TCPConn
	upstream *net.TCPConn       // nil until dialled; guarded by listener.mu
	cancel   context.CancelFunc // ends an attempt to dial
}

func (l *listener) setEndpoints(name string, eps []netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.name = name
	l.endpoints = append([]netip.AddrPort(nil), eps...)
}

func (l *listener) stats() PortStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return PortStats{
		Name: l.name, Addr: l.addr, Endpoints: len(l.endpoints),
		Accepted: l.accepted.Load(), Proxied: l.proxied.Load(),
		NoEndpoints: l.noEndpoints.Load(), DialFailures: l.dialFailures.Load(),
		Active: len(l.sessions),
	}
}

// pick returns the endpoints in the order to try them: round-robin, so each
// connection starts one further along, and the rest after it in case the
// first does not answer.
func (l *listener) pick() []netip.AddrPort {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.endpoints)
	if n == 0 {
		return nil
	}
	start := l.next % n
	l.next = (start + 1) % n
	out := make([]netip.AddrPort, 0, n)
	out = append(out, l.endpoints[start:]...)
	return append(out, l.endpoints[:start]...)
}

func (l *listener) serve() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: back off as net/http does
			// rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("failed to accept a connection; retrying", "err", err, "in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		l.accepted.Add(1)
		s := l.track(c)
		if s == nil {
			c.Close()
			return
		}
		// wg is above zero here (serve holds one), so Add cannot race close's Wait.
		l.wg.Add(1)
		go l.handle(s)
	}
}

// track registers an accepted connection, or returns nil if the listener
// is closing.
func (l *listener) track(c *net.TCPConn) *session {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	s := &session{client: c}
	l.sessions[s] = struct{}{}
	return s
}

func (l *listener) untrack(s *session) {
	l.mu.Lock()
	delete(l.sessions, s)
	up := s.upstream
	l.mu.Unlock()
	s.client.Close()
	if up != nil {
		up.Close()
	}
}

// handle relays one connection to an endpoint, or closes it at once if no
// endpoint answers.
func (l *listener) handle(s *session) {
	defer l.wg.Done()
	defer l.untrack(s)
	eps := l.pick()
	if len(eps) == 0 {
		l.noEndpoints.Add(1)
		reset(s.client)
		return
	}
	up, err := l.dial(s, eps)
	if err != nil {
		l.noEndpoints.Add(1)
		l.log.Debug("no endpoint answered", "endpoints", len(eps), "err", err)
		reset(s.client)
		return
	}
	l.proxied.Add(1)
	// Both directions must end before untrack closes the connections: after
	// one side's EOF the other may still have plenty to send.
	sent := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(sent)
		pipe(up, s.client)
	}()
	pipe(s.client, up)
	<-sent
}

// dial connects to the first endpoint of eps that answers, each attempt
// bounded by the dial timeout and all of them by the listener's life.
func (l *listener) dial(s *session, eps []netip.AddrPort) (*net.TCPConn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	s.cancel = cancel
	l.mu.Unlock()
	var d net.Dialer
	var errs []error
	for _, ep := range eps {
		actx, acancel := context.WithTimeout(ctx, l.dialTimeout)
		c, err := d.DialContext(actx, "tcp4", ep.String())
		acancel()
		if err != nil {
			l.dialFailures.Add(1)
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		up := c.(*net.TCPConn)
		l.mu.Lock()
		s.upstream, s.cancel = up, nil
		closed := l.closed
		l.mu.Unlock()
		if closed {
			up.Close()
			return nil, ErrClosed
		}
		return up, nil
	}
	return nil, fmt.Errorf("failed to reach an endpoint: %w", errors.Join(errs...))
}

// close stops accepting, ends every open connection and in-flight dial, and
// waits until the listener's goroutines are done.
func (l *listener) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	var conns []*net.TCPConn
	var cancels []context.CancelFunc
	for s := range l.sessions {
		conns = append(conns, s.client)
		if s.upstream != nil {
			conns = append(conns, s.upstream)
		}
		if s.cancel != nil {
			cancels = append(cancels, s.cancel)
		}
	}
	l.mu.Unlock()
	close(l.done)
	l.ln.Close()
	for _, cancel := range cancels {
		cancel()
	}
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
}

// pipe copies src to dst until src's EOF, then half-closes dst, so that a
// client that shuts down its sending side (and waits for the answer) works
// through the proxy. A failed copy (a reset, a closed connection) ends both
// directions: neither side will get more through.
func pipe(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		reset(dst)
		reset(src)
		return
	}
	dst.CloseWrite()
}

// reset closes c with a RST rather than a FIN, so that the peer sees its
// connection refused or broken rather than a clean, empty answer.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
