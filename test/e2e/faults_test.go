package e2e

// The fault harness: a hub and members as real processes, where any member
// can be killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT), and cut
// off from everything (partitioned) and reconnected (healed).
//
// Partitions are real: every member runs in its own network namespace
// (`ip netns`), joined to a bridge in the test's namespace by a veth pair;
// the hub listens (gRPC and gossip) on the bridge's address. Partitioning a
// member takes its veth down, which drops every packet between it and the
// rest — the Sync stream, gossip over UDP and TCP, everything — until heal
// brings it up again. The member's pods run in its namespace too (their
// 127.x addresses are on its own loopback). It needs root and iproute2;
// newNetLab skips the test otherwise.
//
//	lab := newNetLab(t)
//	f := startFaultFederation(t, lab, "--lease-duration", "2s")
//	m := f.startMember(t, memberSpec{...})
//	m.partition(t); m.heal(t); m.pause(t); m.resume(t); m.kill(t)

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// netLab is a bridge and the network namespaces on it.
type netLab struct {
	t      testing.TB
	id     string // short, unique per lab: names the bridge, veths and namespaces
	subnet string // "10.77.N"
	bridge string
	hostIP string // the bridge's address: the hub listens here
	next   int
}

var labSeq atomic.Int32

// newNetLab makes a bridge with a fresh /24, removed when the test ends.
// It skips the test without root or iproute2.
func newNetLab(t testing.TB) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partitions need root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partitions need iproute2 (ip)")
	}
	n := labSeq.Add(1)
	octet := 100 + (os.Getpid()+int(n)*7)%150
	l := &netLab{t: t, id: fmt.Sprintf("%x%x", os.Getpid()%0xfff, n), subnet: fmt.Sprintf("10.77.%d", octet)}
	l.bridge = "mb" + l.id
	l.hostIP = l.subnet + ".1"
	// A bridge left by an earlier, crashed run of the same name is removed.
	_ = exec.Command("ip", "link", "del", l.bridge).Run()
	if err := l.ip("link", "add", l.bridge, "type", "bridge"); err != nil {
		t.Skipf("cannot make a bridge (no CAP_NET_ADMIN?): %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", l.bridge).Run() })
	l.must("addr", "add", l.hostIP+"/24", "dev", l.bridge)
	l.must("link", "set", l.bridge, "up")
	return l
}

func (l *netLab) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if err := l.ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

// netNS is one network namespace on the lab's bridge.
type netNS struct {
	lab  *netLab
	name string
	veth string // the host side: down = partitioned
	ip   string
}

// addNS makes a namespace with an address on the bridge and its loopback
// up, removed when the test ends.
func (l *netLab) addNS() *netNS {
	l.t.Helper()
	l.next++
	n := &netNS{lab: l, name: fmt.Sprintf("mn%s-%d", l.id, l.next), veth: fmt.Sprintf("mv%s%dh", l.id, l.next), ip: fmt.Sprintf("%s.%d", l.subnet, 10+l.next)}
	peer := fmt.Sprintf("mv%s%dn", l.id, l.next)
	_ = exec.Command("ip", "netns", "del", n.name).Run()
	l.must("netns", "add", n.name)
	l.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.name).Run() })
	l.must("link", "add", n.veth, "type", "veth", "peer", "name", peer)
	l.t.Cleanup(func() { _ = exec.Command("ip", "link", "del", n.veth).Run() })
	l.must("link", "set", peer, "netns", n.name)
	l.must("link", "set", n.veth, "master", l.bridge)
	l.must("link", "set", n.veth, "up")
	l.must("netns", "exec", n.name, "ip", "addr", "add", n.ip+"/24", "dev", peer)
	l.must("netns", "exec", n.name, "ip", "link", "set", peer, "up")
	l.must("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// command is a command run inside the namespace (ip netns exec execs it:
// the process's PID is the command's own).
func (n *netNS) command(bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, bin}, args...)...)
}

func (n *netNS) partition(t testing.TB) {
	t.Helper()
	n.lab.must("link", "set", n.veth, "down")
}

func (n *netNS) heal(t testing.TB) {
	t.Helper()
	n.lab.must("link", "set", n.veth, "up")
}

// faultFederation is a hub on the lab's bridge and members in their own
// namespaces.
type faultFederation struct {
	*federation
	lab *netLab
}

// faultMember is a member process in its own namespace.
type faultMember struct {
	*memberProcess
	spec   memberSpec
	ns     *netNS
	paused atomic.Bool
}

// startFaultFederation starts a hub on the bridge with gossip (the dev
// profile); extra flags go last.
func startFaultFederation(t testing.TB, lab *netLab, extra ...string) *faultFederation {
	t.Helper()
	key, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &federation{t: t, hubDir: t.TempDir(), gossipKey: key, hubGossip: lab.hostIP + ":" + freePort(t), members: map[string]*memberProcess{}}
	f.hubArgs = []string{"--gossip-listen", f.hubGossip, "--gossip-key", key, "--gossip-profile", "dev",
		"--region", "region-a", "--datacenter", "dc-a1"}
	f.hubArgs = append(f.hubArgs, extra...)
	p := &hubProcess{dataDir: f.hubDir, api: lab.hostIP + ":" + freePort(t), httpAddr: "127.0.0.1:" + freePort(t), done: make(chan error, 1)}
	p.cmd = exec.Command(meridianBinary(t), append([]string{"hub",
		"--data-dir", f.hubDir, "--listen", p.api, "--http-listen", p.httpAddr,
		"--etcd-client-url", "http://127.0.0.1:" + freePort(t), "--etcd-peer-url", "http://127.0.0.1:" + freePort(t),
		"--log-level", "warn"}, f.hubArgs...)...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	waitReady(t, p.httpAddr, p.done)
	f.hub = p
	return &faultFederation{federation: f, lab: lab}
}

// etcdURL is the hub's embedded etcd client URL.
func (f *faultFederation) etcdURL() string {
	args := f.hub.cmd.Args
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--etcd-client-url" {
			return args[i+1]
		}
	}
	return ""
}

// startMember joins a new member in its own namespace; extra flags go last.
func (f *faultFederation) startMember(t testing.TB, s memberSpec, extra ...string) *faultMember {
	t.Helper()
	ns := f.lab.addNS()
	tok, pin := f.token(t, "--for-cluster", s.name, "--single-use")
	p := &memberProcess{done: make(chan error, 1), api: ns.ip + ":" + freePort(t), httpAddr: ns.ip + ":" + freePort(t), gossipAddr: ns.ip + ":" + freePort(t)}
	args := append(f.memberArgs(s, t.TempDir(), p.api, p.httpAddr, p.gossipAddr), "--join-token", tok, "--hub-ca-pin", pin)
	p.cmd = ns.command(meridianBinary(t), append(args, extra...)...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	m := &faultMember{memberProcess: p, spec: s, ns: ns}
	t.Cleanup(func() { p.stop(t) })
	// Runs before the stop above: a paused process cannot handle SIGTERM,
	// and a partitioned one should leave gossip cleanly.
	t.Cleanup(func() {
		m.resume(t)
		ns.heal(t)
	})
	waitReady(t, p.httpAddr, p.done)
	conn, err := grpc.NewClient(p.api, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.cli = meridianv1.NewAdminServiceClient(conn)
	f.members[s.name] = p
	return m
}

func (m *faultMember) partition(t testing.TB) { m.ns.partition(t) }
func (m *faultMember) heal(t testing.TB)      { m.ns.heal(t) }

// pause stops the member process (SIGSTOP); its pods, separate processes,
// keep running.
func (m *faultMember) pause(t testing.TB) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", m.spec.name, err)
	}
	m.paused.Store(true)
}

// resume continues a paused member (SIGCONT).
func (m *faultMember) resume(t testing.TB) {
	if m.paused.Swap(false) {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// kill sends SIGKILL; the pods die with the agent (Pdeathsig).
func (m *faultMember) kill(t testing.TB) {
	t.Helper()
	m.resume(t)
	m.kill9(t)
}

// fault is one randomized fault on a member.
type fault struct {
	kind string // partition, pause or kill
	hold time.Duration
}

func (x fault) String() string {
	return fmt.Sprintf("%s for %s", x.kind, x.hold.Round(time.Millisecond))
}

// randomFault picks a fault and how long it lasts.
func randomFault(r *rand.Rand, min, max time.Duration) fault {
	kinds := []string{"partition", "partition", "pause", "kill"}
	return fault{kind: kinds[r.IntN(len(kinds))], hold: min + time.Duration(r.Int64N(int64(max-min)+1))}
}
