package service_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/service"
	mstore "github.com/meridian-fed/meridian/member/store"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var (
	serviceKind = resource.MustLookup("Service")
	podKind     = resource.MustLookup("Pod")
	eventKind   = resource.MustLookup("Event")
	nsKind      = resource.MustLookup("Namespace")
)

// Addresses: every test process takes its own second octet (tests of other
// packages use 127.1-199.x.x), every test its own third octet for its
// service range, and endpoints live at <net>.250.x.
var (
	octet    = 240 + os.Getpid()%10
	rangeSeq atomic.Int32
	epSeq    atomic.Int32
)

// newRange returns a fresh /24 service range for one test.
func newRange() string { return fmt.Sprintf("127.%d.%d.0/24", octet, rangeSeq.Add(1)) }

// newEndpointIP returns a fresh loopback address for a fake endpoint.
func newEndpointIP() string { return fmt.Sprintf("127.%d.250.%d", octet, epSeq.Add(1)) }

// env is a member's store and informers with a service controller over
// them. The store is real (bbolt in a temporary directory).
type env struct {
	t     *testing.T
	dir   string
	cidr  string
	logs  *logBuffer
	store *mstore.Store
	c     *service.Controller
	stop  func()
}

// logBuffer keeps the controller's debug log, shown if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnv(t *testing.T, cidr string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), cidr: cidr, logs: &logBuffer{}}
	e.open()
	t.Cleanup(func() {
		e.close()
		if t.Failed() {
			t.Logf("controller log:\n%s", e.logs)
		}
	})
	if _, _, err := e.store.Apply(e.ctx(), &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: "default"}}, storage.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// open opens the store and starts informers and a controller over it.
func (e *env) open() {
	e.t.Helper()
	st, err := mstore.Open(filepath.Join(e.dir, "state.db"), mstore.WithNoSync())
	if err != nil {
		e.t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inf := controller.NewInformerSet(st, log)
	c, err := service.New(service.Config{
		Store: st, Informers: inf, CIDR: e.cidr, DialTimeout: time.Second,
		Recorder: controller.NewRecorder(st, "test", log), Log: log,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); inf.Run(ctx) }()
	go func() { defer wg.Done(); c.Run(ctx) }()
	e.store, e.c = st, c
	e.stop = func() {
		cancel()
		wg.Wait()
		st.Close()
	}
}

func (e *env) close() {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
}

// restart stops the controller and the store and starts them again.
func (e *env) restart() {
	e.close()
	e.open()
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func svcOf(name string, selector map[string]string, ports ...*meridianv1.ServicePort) *meridianv1.Service {
	return &meridianv1.Service{
		ApiVersion: "v1", Kind: "Service",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:     &meridianv1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

func tcpPort(name string, port int32, target *meridianv1.IntOrString) *meridianv1.ServicePort {
	return &meridianv1.ServicePort{Name: name, Port: port, TargetPort: target}
}

func intTarget(p int) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: int32(p)}}
}

func namedTarget(n string) *meridianv1.IntOrString {
	return &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: n}}
}

func (e *env) apply(o resource.Object) {
	e.t.Helper()
	if _, _, err := e.store.Apply(e.ctx(), o, storage.ApplyOptions{}); err != nil {
		e.t.Fatalf("apply %s: %v", o.GetMetadata().GetName(), err)
	}
}

func (e *env) service(name string) *meridianv1.Service {
	e.t.Helper()
	o, err := e.store.Get(e.ctx(), serviceKind, "default", name)
	if err != nil {
		e.t.Fatal(err)
	}
	return o.(*meridianv1.Service)
}

// waitClusterIP waits until the Service has an address and returns it.
func (e *env) waitClusterIP(name string) netip.Addr {
	e.t.Helper()
	var ip netip.Addr
	e.waitFor("a clusterIP on "+name, func() bool {
		s := e.service(name)
		a, err := netip.ParseAddr(s.GetSpec().GetClusterIp())
		ip = a
		return err == nil && len(s.GetSpec().GetClusterIps()) == 1 && s.GetSpec().GetClusterIps()[0] == a.String()
	})
	return ip
}

// waitEndpoints waits until every port of the Service is proxied with n
// endpoints.
func (e *env) waitEndpoints(name string, n int) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s to have %d endpoints", name, n), func() bool {
		st := e.c.Stats("default", name)
		for _, p := range st {
			if p.Endpoints != n {
				return false
			}
		}
		return len(st) > 0
	})
}

// events returns the reasons of the Events recorded on a Service.
func (e *env) events(name string) []string {
	e.t.Helper()
	objs, _, err := e.store.List(e.ctx(), eventKind, "default", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		ev := o.(*meridianv1.Event)
		if ev.GetInvolvedObject().GetKind() == "Service" && ev.GetInvolvedObject().GetName() == name {
			out = append(out, ev.GetReason())
		}
	}
	return out
}

// pod creates a pod with one container declaring ports, and makes it
// Running and Ready at ip.
func (e *env) pod(name string, labels map[string]string, ip string, ports ...*meridianv1.ContainerPort) {
	e.t.Helper()
	p := &meridianv1.Pod{
		ApiVersion: "v1", Kind: "Pod",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec:     &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "c", Command: []string{"true"}, Ports: ports}}},
	}
	if _, err := e.store.Create(e.ctx(), p); err != nil {
		e.t.Fatal(err)
	}
	e.setReady(name, ip, true)
}

// setReady writes a Running pod status at ip with Ready as given.
func (e *env) setReady(name, ip string, ready bool) {
	e.t.Helper()
	status := "False"
	if ready {
		status = "True"
	}
	_, err := e.store.Update(e.ctx(), podKind, "default", name, func(o resource.Object) error {
		o.(*meridianv1.Pod).Status = &meridianv1.PodStatus{
			Phase: "Running", PodIp: ip,
			Conditions: []*meridianv1.Condition{{Type: "Ready", Status: status, LastTransitionTime: timestamppb.Now()}},
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// echo is a fake endpoint: it greets every connection with its id and a
// newline, then echoes what it reads until EOF, then closes.
type echo struct {
	id   string
	addr netip.AddrPort
}

func startEcho(t *testing.T, id, ip string, port int) (*echo, error) {
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		return nil, err
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
				fmt.Fprintf(c, "%s\n", id)
				io.Copy(c, c)
			}()
		}
	}()
	return &echo{id: id, addr: netip.MustParseAddrPort(ln.Addr().String())}, nil
}

// echoPair starts two endpoints on distinct addresses and the same port.
func echoPair(t *testing.T) (a, b *echo) {
	t.Helper()
	for range 20 {
		a, err := startEcho(t, "a", newEndpointIP(), 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := startEcho(t, "b", newEndpointIP(), int(a.addr.Port()))
		if err == nil {
			return a, b
		}
	}
	t.Fatal("no free port shared by two addresses")
	return nil, nil
}

// call connects to addr, sends msg, half-closes and returns the endpoint's
// id and the echoed text.
func call(addr netip.AddrPort, msg string) (id, echoed string, err error) {
	c, err := net.DialTimeout("tcp4", addr.String(), 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", "", err
	}
	r := bufio.NewReader(c)
	id, err = r.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("failed to read the greeting: %w", err)
	}
	rest, err := io.ReadAll(r)
	return strings.TrimSuffix(id, "\n"), string(rest), err
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
	return isClosed(c)
}

// isClosed reports whether a read on c ends (EOF or reset) rather than
// times out.
func isClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}
