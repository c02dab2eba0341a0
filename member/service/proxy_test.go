package service

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// testAddr returns a loopback address of this test process (other packages'
// tests use 127.1-199.x.x): 127.<240+pid%10>.251.n.
func testAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(240 + os.Getpid()%10), 251, byte(n)})
}

// serveUpper is an endpoint that answers with what it read, upper-cased,
// once the client has half-closed its side.
func serveUpper(t *testing.T, addr netip.Addr) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				if err == nil {
					io.WriteString(c, strings.ToUpper(string(b)))
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// freePort returns a port on addr that nothing listens on.
func freePort(t *testing.T, addr netip.Addr) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

// refused reports whether a connection to addr is closed at once: the
// dial fails (the proxy's reset can beat the end of a loopback connect) or
// the first read ends with an error that is not a timeout.
func refused(addr netip.AddrPort) bool {
	c, err := net.DialTimeout("tcp4", addr.String(), 2*time.Second)
	if err != nil {
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func roundTrip(t *testing.T, to netip.AddrPort, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp4", to.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	// The endpoint answers only after our EOF: half-close must get through.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("read through the proxy: %v", err)
	}
	return string(b)
}

// TestProxyHalfCloseAndFallback: the client's half-close reaches the
// endpoint and the answer comes back; an endpoint that refuses is skipped
// for the next one (and counted); endpoints change without a new listener;
// Close ends everything.
func TestProxyHalfCloseAndFallback(t *testing.T) {
	p := NewProxy(time.Second, nil)
	defer p.Close()
	up := serveUpper(t, testAddr(1))
	dead := freePort(t, testAddr(2))
	vip := testAddr(3)
	port := freePort(t, vip).Port()

	if err := p.Sync("ns/up", vip, []Port{{Name: "p", Port: port, Endpoints: []netip.AddrPort{dead, up}}}); err != nil {
		t.Fatal(err)
	}
	svc := netip.AddrPortFrom(vip, port)
	for i := range 4 {
		if got := roundTrip(t, svc, "hello"); got != "HELLO" {
			t.Fatalf("round trip %d: %q", i, got)
		}
	}
	st := p.Stats("ns/up")
	if len(st) != 1 || st[0].Proxied != 4 || st[0].DialFailures != 2 || st[0].NoEndpoints != 0 {
		t.Fatalf("stats %+v: want 4 proxied, 2 dial failures (every other connection starts at the dead endpoint)", st)
	}

	// Only the dead endpoint: connections are closed, counted.
	if err := p.Sync("ns/up", vip, []Port{{Name: "p", Port: port, Endpoints: []netip.AddrPort{dead}}}); err != nil {
		t.Fatal(err)
	}
	if !refused(svc) {
		t.Fatal("a connection with no live endpoint stayed open")
	}
	if st := p.Stats("ns/up"); st[0].NoEndpoints != 1 || st[0].Accepted != 5 {
		t.Fatalf("stats %+v: want 5 accepted, 1 without endpoints", st)
	}

	p.Close()
	if _, err := net.Dial("tcp4", svc.String()); err == nil {
		t.Error("the proxy still listens after Close")
	}
	if err := p.Sync("ns/up", vip, nil); err != ErrClosed {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
}
