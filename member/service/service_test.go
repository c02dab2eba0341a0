package service_test

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/member/service"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestClusterIPAllocation: Services without an address get one from the
// range; a user-given address inside it is kept; headless Services get
// nothing; an address outside the range or taken is refused with an
// Event, and a taken one is served once its holder goes; re-applying a
// manifest without clusterIP keeps the address; a restart rebuilds the
// allocator from the stored Services.
func TestClusterIPAllocation(t *testing.T) {
	e := newEnv(t, newRange())
	prefix := netip.MustParsePrefix(e.cidr)
	port := tcpPort("", 7000, nil)

	e.apply(svcOf("auto", nil, port))
	auto := e.waitClusterIP("auto")
	if !prefix.Contains(auto) {
		t.Fatalf("auto got %s, outside %s", auto, prefix)
	}
	e.waitFor("a ClusterIPAllocated event", func() bool {
		return slices.Contains(e.events("auto"), service.ReasonClusterIPAllocated)
	})

	b := prefix.Addr().As4()
	b[3] = 10
	fixed := netip.AddrFrom4(b)
	mine := svcOf("mine", nil, port)
	mine.Spec.ClusterIp = fixed.String()
	e.apply(mine)
	if got := e.waitClusterIP("mine"); got != fixed {
		t.Fatalf("mine: clusterIP %s, want the given %s", got, fixed)
	}

	none := svcOf("headless", map[string]string{"app": "x"}, port)
	none.Spec.ClusterIp = "None"
	e.apply(none)

	outside := svcOf("outside", nil, port)
	outside.Spec.ClusterIp = "127.0.0.99"
	e.apply(outside)
	taken := svcOf("taken", nil, port)
	taken.Spec.ClusterIp = fixed.String()
	e.apply(taken)
	for _, name := range []string{"outside", "taken"} {
		e.waitFor("a warning on "+name, func() bool {
			return slices.Contains(e.events(name), service.ReasonClusterIPNotAllocated)
		})
		if st := e.c.Stats("default", name); st != nil {
			t.Errorf("%s is proxied: %v", name, st)
		}
	}
	e.waitFor("mine to be proxied", func() bool { return e.c.Stats("default", "mine") != nil })
	if got := e.service("headless").GetSpec(); got.GetClusterIp() != "None" || e.c.Stats("default", "headless") != nil {
		t.Errorf("headless Service changed or proxied: %v", got)
	}

	// Re-applying auto's manifest (no clusterIP) keeps its address.
	e.apply(svcOf("auto", nil, port))
	if got := e.waitClusterIP("auto"); got != auto {
		t.Errorf("re-applied auto moved from %s to %s", auto, got)
	}

	// Once mine goes, taken gets the address it asked for.
	if _, err := e.store.Delete(e.ctx(), serviceKind, "default", "mine", ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor("taken to be proxied after mine is gone", func() bool {
		st := e.c.Stats("default", "taken")
		return len(st) == 1 && st[0].Addr.Addr() == fixed
	})

	// After a restart the allocator knows auto's and taken's addresses: a
	// new Service gets neither.
	e.restart()
	e.apply(svcOf("later", nil, port))
	later := e.waitClusterIP("later")
	if later == auto || later == fixed || !prefix.Contains(later) {
		t.Errorf("later got %s after a restart (auto %s, taken %s, range %s)", later, auto, fixed, prefix)
	}
	e.waitFor("auto and taken proxied again", func() bool {
		return e.c.Stats("default", "auto") != nil && e.c.Stats("default", "taken") != nil
	})
}

// TestProxy: connections to a Service go round-robin to its ready
// endpoints, with half-close; a pod that is not ready stops getting
// connections; with no endpoints a connection is closed at once; deleting
// the Service closes its listener and its open connections.
func TestProxy(t *testing.T) {
	e := newEnv(t, newRange())
	a, b := echoPair(t)
	labels := map[string]string{"app": "echo"}
	e.apply(svcOf("echo", labels, tcpPort("", 7001, intTarget(int(a.addr.Port())))))
	ip := e.waitClusterIP("echo")
	e.pod("echo-a", labels, a.addr.Addr().String())
	e.pod("echo-b", labels, b.addr.Addr().String())
	e.pod("other", map[string]string{"app": "other"}, newEndpointIP())
	e.waitEndpoints("echo", 2)
	svc := netip.AddrPortFrom(ip, 7001)

	var seen []string
	for i := range 6 {
		id, echoed, err := call(svc, "hello")
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if echoed != "hello" {
			t.Fatalf("call %d: echoed %q", i, echoed)
		}
		seen = append(seen, id)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("not round-robin: %v", seen)
		}
	}

	// b is no longer ready: only a answers.
	e.setReady("echo-b", b.addr.Addr().String(), false)
	e.waitEndpoints("echo", 1)
	for i := range 3 {
		if id, _, err := call(svc, "x"); err != nil || id != "a" {
			t.Fatalf("call %d with b not ready: %q, %v", i, id, err)
		}
	}

	// Neither is ready: a connection is accepted and closed at once.
	e.setReady("echo-a", a.addr.Addr().String(), false)
	e.waitEndpoints("echo", 0)
	if !refused(svc) {
		t.Fatal("a connection without endpoints stayed open")
	}
	if st := e.c.Stats("default", "echo"); st[0].NoEndpoints != 1 || st[0].Proxied != 9 {
		t.Errorf("stats: %+v, want 1 without endpoints and 9 proxied", st[0])
	}

	// Ready again, then the Service goes: an open connection ends and the
	// address no longer accepts.
	e.setReady("echo-a", a.addr.Addr().String(), true)
	e.waitEndpoints("echo", 1)
	open, err := net.Dial("tcp4", svc.String())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	greeting := make([]byte, 2)
	if _, err := open.Read(greeting); err != nil || string(greeting) != "a\n" {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	if _, err := e.store.Delete(e.ctx(), serviceKind, "default", "echo", ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the listener to close", func() bool { return e.c.Stats("default", "echo") == nil })
	if !isClosed(open) {
		t.Error("a proxied connection outlived its Service")
	}
	if c, err := net.Dial("tcp4", svc.String()); err == nil {
		c.Close()
		t.Error("the Service's address still accepts connections")
	}
}

// TestNamedTargetPort: targetPort names a containerPort, which differs
// from pod to pod; pods without that port are no endpoints.
func TestNamedTargetPort(t *testing.T) {
	e := newEnv(t, newRange())
	a, err := startEcho(t, "a", newEndpointIP(), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := startEcho(t, "b", newEndpointIP(), 0)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "named"}
	named := func(port uint16) *meridianv1.ContainerPort {
		return &meridianv1.ContainerPort{Name: "echo", ContainerPort: int32(port)}
	}
	e.pod("named-a", labels, a.addr.Addr().String(), named(a.addr.Port()))
	e.pod("named-b", labels, b.addr.Addr().String(), named(b.addr.Port()))
	e.pod("unnamed", labels, newEndpointIP(), &meridianv1.ContainerPort{Name: "web", ContainerPort: 8080})
	e.apply(svcOf("named", labels, tcpPort("", 7002, namedTarget("echo"))))
	ip := e.waitClusterIP("named")
	e.waitEndpoints("named", 2)
	got := map[string]int{}
	for range 4 {
		id, _, err := call(netip.AddrPortFrom(ip, 7002), "x")
		if err != nil {
			t.Fatal(err)
		}
		got[id]++
	}
	if got["a"] != 2 || got["b"] != 2 {
		t.Errorf("answers by endpoint: %v, want 2 each", got)
	}
}

// TestEnv: a namespace's Services with an address become Kubernetes-style
// variables; headless Services do not.
func TestEnv(t *testing.T) {
	e := newEnv(t, newRange())
	e.apply(svcOf("my-web", nil, tcpPort("http", 80, nil), tcpPort("admin-port", 9000, nil)))
	ip := e.waitClusterIP("my-web")
	none := svcOf("db", map[string]string{"app": "db"}, tcpPort("", 5432, nil))
	none.Spec.ClusterIp = "None"
	e.apply(none)
	udp := proto.Clone(svcOf("dns", nil, tcpPort("", 53, nil))).(*meridianv1.Service)
	udp.Spec.Ports[0].Protocol = "UDP"
	e.apply(udp)
	dnsIP := e.waitClusterIP("dns")
	e.waitFor("a PortNotSupported warning on dns", func() bool {
		return slices.Contains(e.events("dns"), service.ReasonPortNotSupported)
	})

	env := e.c.Env(e.ctx(), "default")
	want := []string{
		"DNS_SERVICE_HOST=" + dnsIP.String(),
		"DNS_SERVICE_PORT=53",
		"DNS_PORT=udp://" + dnsIP.String() + ":53",
		"DNS_PORT_53_UDP_PROTO=udp",
		"MY_WEB_SERVICE_HOST=" + ip.String(),
		"MY_WEB_SERVICE_PORT=80",
		"MY_WEB_SERVICE_PORT_HTTP=80",
		"MY_WEB_SERVICE_PORT_ADMIN_PORT=9000",
		"MY_WEB_PORT=tcp://" + ip.String() + ":80",
		"MY_WEB_PORT_9000_TCP=tcp://" + ip.String() + ":9000",
		"MY_WEB_PORT_9000_TCP_PORT=9000",
		"MY_WEB_PORT_9000_TCP_ADDR=" + ip.String(),
	}
	for _, w := range want {
		if !slices.Contains(env, w) {
			t.Errorf("missing %s in %v", w, env)
		}
	}
	for _, v := range env {
		if strings.HasPrefix(v, "DB_") {
			t.Errorf("headless Service in the environment: %s", v)
		}
	}
	if got := e.c.Env(e.ctx(), "elsewhere"); len(got) != 0 {
		t.Errorf("another namespace sees %v", got)
	}
}
