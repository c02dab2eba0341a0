package ipam

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestNewValidatesRange(t *testing.T) {
	tests := []struct {
		cidr    string
		wantErr bool
		size    int
	}{
		{cidr: "127.1.0.0/16", size: 65533},
		{cidr: "127.1.2.3/24", size: 253}, // masked to 127.1.2.0/24
		{cidr: "127.0.0.0/8", size: 1<<24 - 3},
		{cidr: "127.9.9.0/30", size: 1},
		{cidr: "127.9.9.0/31", wantErr: true},
		{cidr: "10.0.0.0/16", wantErr: true},
		{cidr: "126.0.0.0/7", wantErr: true},
		{cidr: "::1/128", wantErr: true},
		{cidr: "nonsense", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			a, err := New(tt.cidr)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New(%q) = nil error, want one", tt.cidr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.cidr, err)
			}
			if a.Size() != tt.size {
				t.Errorf("Size() = %d, want %d", a.Size(), tt.size)
			}
		})
	}
}

func TestAllocateSkipsReservedAddresses(t *testing.T) {
	a, err := New("127.3.0.0/29") // .0 network, .1 services, .7 broadcast
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.ServiceAddr(), netip.MustParseAddr("127.3.0.1"); got != want {
		t.Errorf("ServiceAddr() = %s, want %s", got, want)
	}
	var got []string
	for i := 0; i < 5; i++ {
		ip, err := a.Allocate(fmt.Sprintf("pod-%d", i))
		if err != nil {
			t.Fatalf("Allocate %d: %v", i, err)
		}
		got = append(got, ip.String())
	}
	want := []string{"127.3.0.2", "127.3.0.3", "127.3.0.4", "127.3.0.5", "127.3.0.6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("allocated %v, want %v", got, want)
	}
	if _, err := a.Allocate("one-too-many"); !errors.Is(err, ErrExhausted) {
		t.Errorf("Allocate on a full range: err = %v, want ErrExhausted", err)
	}
	// Allocate is idempotent per UID.
	if ip, err := a.Allocate("pod-2"); err != nil || ip.String() != "127.3.0.4" {
		t.Errorf("Allocate(pod-2) again = %s, %v; want 127.3.0.4", ip, err)
	}
}

func TestReleaseAndNextFit(t *testing.T) {
	a, err := New("127.3.1.0/29")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := a.Allocate("a")
	if _, err := a.Allocate("b"); err != nil {
		t.Fatal(err)
	}
	a.Release("a")
	a.Release("a") // idempotent
	next, err := a.Allocate("c")
	if err != nil {
		t.Fatal(err)
	}
	if next == first {
		t.Errorf("released address %s was handed out again at once", first)
	}
	if a.Len() != 2 {
		t.Errorf("Len() = %d, want 2", a.Len())
	}
	// Fill the range; the released address comes back when nothing else is free.
	for i := 0; a.Len() < a.Size(); i++ {
		if _, err := a.Allocate(fmt.Sprintf("fill-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := a.Lookup("a"); ok {
		t.Error("Lookup(a) after Release found an address")
	}
}

func TestRestore(t *testing.T) {
	a, err := New("127.3.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("127.3.2.50")
	if err := a.Restore("adopted", ip); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := a.Restore("adopted", ip); err != nil {
		t.Errorf("Restore of the same pair again: %v", err)
	}
	if err := a.Restore("other", ip); !errors.Is(err, ErrInUse) {
		t.Errorf("Restore of a taken address: err = %v, want ErrInUse", err)
	}
	for _, bad := range []string{"127.3.2.0", "127.3.2.1", "127.3.2.255", "127.3.3.9", "10.0.0.1"} {
		if err := a.Restore("x", netip.MustParseAddr(bad)); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Restore(%s): err = %v, want ErrOutOfRange", bad, err)
		}
	}
	if got, ok := a.Lookup("adopted"); !ok || got != ip {
		t.Errorf("Lookup(adopted) = %s, %v", got, ok)
	}
	// A restored address is never allocated to someone else.
	for i := 0; i < a.Size()-1; i++ {
		got, err := a.Allocate(fmt.Sprintf("p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if got == ip {
			t.Fatalf("Allocate handed out restored address %s", ip)
		}
	}
}

func TestConcurrentAllocateIsUnique(t *testing.T) {
	a, err := New("127.3.4.0/22")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := make(map[netip.Addr]string)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				uid := fmt.Sprintf("g%d-%d", g, i)
				ip, err := a.Allocate(uid)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := seen[ip]; dup {
					t.Errorf("%s given to %s and %s", ip, prev, uid)
				}
				seen[ip] = uid
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestLoopbackAddressesBindSamePort checks the premise of the package: two
// allocated loopback addresses accept listeners on the same port.
func TestLoopbackAddressesBindSamePort(t *testing.T) {
	a, err := New("127.3.8.0/24")
	if err != nil {
		t.Fatal(err)
	}
	ip1, _ := a.Allocate("one")
	ip2, _ := a.Allocate("two")
	l1, err := net.Listen("tcp", net.JoinHostPort(ip1.String(), "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip1, err)
	}
	defer l1.Close()
	port := l1.Addr().(*net.TCPAddr).Port
	l2, err := net.Listen("tcp", net.JoinHostPort(ip2.String(), fmt.Sprint(port)))
	if err != nil {
		t.Fatalf("listen on %s:%d while %s holds the port: %v", ip2, port, ip1, err)
	}
	defer l2.Close()
	for _, l := range []net.Listener{l1, l2} {
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, l.Addr().String())
			c.Close()
		}()
	}
	for _, ip := range []netip.Addr{ip1, ip2} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(port)), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", ip, err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := net.JoinHostPort(ip.String(), fmt.Sprint(port)); string(b) != want {
			t.Errorf("%s answered %q, want %q", ip, b, want)
		}
	}
}
