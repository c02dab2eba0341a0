package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// quiet logs only errors.
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// haNode is one node of an in-process multi-node hub.
type haNode struct {
	name string
	cfg  hub.Config
	hub  *hub.Hub
	cli  meridianv1.AdminServiceClient

	closeOnce sync.Once
}

// stop closes the node once (the test's cleanup may call it again).
func (n *haNode) stop(t *testing.T) {
	n.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- n.hub.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("close %s: %v", n.name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("hub node %s did not close within 30s", n.name)
		}
	})
}

// startHA starts one embedded hub node per name, forming one etcd cluster
// (short etcd timings), and waits until every node serves.
func startHA(t *testing.T, names ...string) []*haNode {
	t.Helper()
	dir := t.TempDir()
	nodes := make([]*haNode, len(names))
	var initial []string
	for i, n := range names {
		cfg := hubtest.Config(t, filepath.Join(dir, n))
		cfg.EtcdName = n
		nodes[i] = &haNode{name: n, cfg: cfg}
		initial = append(initial, n+"="+cfg.EtcdPeerURL)
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		n.cfg.EtcdInitialCluster = strings.Join(initial, ",")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			n.hub, errs[i] = hub.Start(c, n.cfg, quiet)
		}()
	}
	wg.Wait()
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("failed to start hub node %s: %v", n.name, errs[i])
		}
		t.Cleanup(func() { n.stop(t) })
		n.cli = hubtest.Client(t, n.hub)
	}
	return nodes
}

// isLeader reads meridian_hub_leader from the node's /metrics.
func isLeader(h *hub.Hub) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + h.HTTPAddr() + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), "\nmeridian_hub_leader 1")
}

// waitLeader waits until exactly one of nodes leads and returns it.
func waitLeader(t *testing.T, nodes []*haNode, within time.Duration) *haNode {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var leaders []*haNode
		for _, n := range nodes {
			if isLeader(n.hub) {
				leaders = append(leaders, n)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single hub leader after %s (%d leaders)", within, len(leaders))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func configMap(name string) *meridianv1.ConfigMap {
	return &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap",
		Metadata: &meridianv1.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string]string{"n": name}}
}

func applyCM(cli meridianv1.AdminServiceClient, name string, timeout time.Duration) error {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := cli.Apply(c, &meridianv1.ApplyRequest{Object: resource.MustWrap(configMap(name))})
	return err
}

// applyRetry applies until an attempt succeeds or within has passed,
// retrying Unavailable only: an etcd leader change, which the short test
// timings make likely on a busy machine, is answered with it.
func applyRetry(cli meridianv1.AdminServiceClient, name string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := applyCM(cli, name, within)
		if err == nil || status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkAll asserts that every named ConfigMap is readable through cli.
func checkAll(t *testing.T, node string, cli meridianv1.AdminServiceClient, names []string) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp *meridianv1.ListResponse
	var err error
	for { // Unavailable (an etcd leader change) is retried until c ends
		resp, err = cli.List(c, &meridianv1.ListRequest{Kind: "configmaps", Namespace: "default"})
		if err == nil || status.Code(err) != codes.Unavailable || c.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("list through %s: %v", node, err)
	}
	have := map[string]bool{}
	for _, it := range resp.GetItems() {
		have[it.GetConfigMap().GetMetadata().GetName()] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged writes missing through %s: %v", len(missing), node, missing)
	}
}

// TestHubHALosesLeaderNode runs a 3-node hub (one node per datacenter), has
// a writer apply objects through whichever node answers while the leading
// node (hub leader and, usually, etcd leader) goes away, and checks that a
// new leader runs the controllers within seconds, writes go on through the
// survivors, and no acknowledged write is lost. The node here is closed in
// process; test/e2e kills a node process with SIGKILL.
func TestHubHALosesLeaderNode(t *testing.T) {
	nodes := startHA(t, "dc-a1", "dc-a2", "dc-b1")
	// Any node serves the API, writes through followers included.
	for _, n := range nodes {
		if err := applyRetry(n.cli, "through-"+n.name, 10*time.Second); err != nil {
			t.Fatalf("apply through %s: %v", n.name, err)
		}
	}
	leader := waitLeader(t, nodes, 15*time.Second)
	t.Logf("hub leader: %s", leader.name)

	const total = 200
	var (
		mu    sync.Mutex
		acked []string
	)
	// gone lets the writer skip the node being closed (its calls would
	// only fail).
	var gone atomic.Bool
	killAt := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		next := 0
		for i := 0; i < total; i++ {
			if i == total/2 {
				close(killAt)
			}
			name := fmt.Sprintf("w-%03d", i)
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				n := nodes[next%len(nodes)]
				next++
				if n == leader && gone.Load() {
					continue
				}
				if err := applyCM(n.cli, name, 2*time.Second); err == nil {
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
					break
				}
			}
		}
	}()
	<-killAt
	began := time.Now()
	gone.Store(true)
	leader.stop(t)
	var survivors []*haNode
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	newLeader := waitLeader(t, survivors, 20*time.Second)
	t.Logf("new hub leader %s after %s", newLeader.name, time.Since(began).Round(time.Millisecond))
	select {
	case <-writerDone:
	case <-time.After(60 * time.Second):
		t.Fatal("the writer did not finish within 60s")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < total*9/10 {
		t.Errorf("only %d of %d writes acknowledged", len(acked), total)
	}
	for _, n := range survivors {
		checkAll(t, n.name, n.cli, acked)
	}
}

// TestHubMajorityLossRecover loses two of three hub nodes (the majority
// region): the survivor refuses reads and writes quickly with a clear
// error. Recover on its data (refused without confirmation) then makes it a
// writable single-node hub with every object, the same CA and hub ID; a
// new node joins it with AddNode.
func TestHubMajorityLossRecover(t *testing.T) {
	nodes := startHA(t, "dc-a1", "dc-a2", "dc-b1")
	var names []string
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("before-%02d", i)
		if err := applyRetry(nodes[i%3].cli, name, 10*time.Second); err != nil {
			t.Fatalf("apply: %v", err)
		}
		names = append(names, name)
	}
	surv := nodes[2]
	hubID, caPEM := surv.hub.ID(), string(surv.hub.CA().CertPEM())

	// The survivor has applied every write (a linearizable read waits for
	// that); recovery keeps what the survivor had applied.
	checkAll(t, "dc-b1 before the loss", surv.cli, names)
	began := time.Now()
	nodes[0].stop(t)
	nodes[1].stop(t)
	t.Logf("dc-a1 and dc-a2 stopped in %s", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	err := applyCM(surv.cli, "no-quorum", 20*time.Second)
	took := time.Since(began)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no etcd quorum") || !strings.Contains(err.Error(), "hub recover") {
		t.Fatalf("write without quorum: got %v, want Unavailable naming the lost quorum and hub recover", err)
	}
	if took > 5*time.Second {
		t.Errorf("write without quorum took %s to fail, want a fast refusal", took)
	}
	t.Logf("write without quorum refused after %s: %v", took.Round(time.Millisecond), err)
	began = time.Now()
	surv.stop(t)
	t.Logf("the survivor stopped in %s", time.Since(began).Round(time.Millisecond))

	// Without confirmation nothing changes.
	refused := errors.New("operator said no")
	if _, err := hub.Recover(ctx(t), hub.RecoverOptions{Config: surv.cfg, Confirm: func(hub.RecoverPlan) error { return refused }}); !errors.Is(err, refused) {
		t.Fatalf("recover without confirmation: %v", err)
	}
	if ms, err := hub.ReadMembers(surv.cfg.DataDir); err != nil || len(ms) != 3 {
		t.Fatalf("members after a refused recover: %v %v, want the three untouched", ms, err)
	}
	// A wrong name or peer URL is refused before any change.
	bad := surv.cfg
	bad.EtcdName = "dc-zz"
	bad.EtcdInitialCluster = ""
	if _, err := hub.PlanRecover(bad); err == nil || !strings.Contains(err.Error(), "etcd-name") {
		t.Errorf("plan with an unknown node name: %v", err)
	}

	var plan hub.RecoverPlan
	res, err := hub.Recover(ctx(t), hub.RecoverOptions{Config: surv.cfg, Confirm: func(p hub.RecoverPlan) error { plan = p; return nil }, Log: quiet})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	var removed []string
	for _, m := range plan.Removed {
		removed = append(removed, m.Name)
	}
	if plan.Node.Name != "dc-b1" || !slices.Equal(removed, []string{"dc-a1", "dc-a2"}) {
		t.Errorf("plan keeps %s and removes %v, want dc-b1 and [dc-a1 dc-a2]", plan.Node.Name, removed)
	}
	if res.HubID != hubID {
		t.Errorf("recovery changed the hub ID: %s → %s", hubID, res.HubID)
	}

	// The operator starts the hub normally, as a single node.
	cfg := surv.cfg
	cfg.EtcdInitialCluster = ""
	rec := &haNode{name: "dc-b1", cfg: cfg, hub: hubtest.Start(t, cfg)}
	rec.cli = hubtest.Client(t, rec.hub)
	if rec.hub.ID() != hubID || string(rec.hub.CA().CertPEM()) != caPEM {
		t.Errorf("the recovered hub has another ID or CA (id %s, want %s)", rec.hub.ID(), hubID)
	}
	if err := applyRetry(rec.cli, "after-recover", 10*time.Second); err != nil {
		t.Fatalf("write after recover: %v", err)
	}
	checkAll(t, "recovered dc-b1", rec.cli, append(slices.Clone(names), "after-recover"))
	began = time.Now()
	waitLeader(t, []*haNode{rec}, 20*time.Second)
	t.Logf("the recovered hub leads after %s", time.Since(began).Round(time.Millisecond))

	// A new node joins the recovered hub.
	add := hubtest.Config(t, filepath.Join(t.TempDir(), "dc-a1-new"))
	add.EtcdName = "dc-a1-new"
	initial, err := hub.AddNode(ctx(t), []string{cfg.EtcdClientURL}, add.EtcdName, add.EtcdPeerURL)
	if err != nil {
		t.Fatalf("add node: %v", err)
	}
	add.EtcdInitialCluster, add.EtcdInitialClusterState = initial, "existing"
	joined := hubtest.Start(t, add)
	checkAll(t, "the added node", hubtest.Client(t, joined), append(names, "after-recover"))
	// The new member's arrival may move the etcd leadership: Unavailable
	// is the retryable answer then.
	if err := applyRetry(hubtest.Client(t, joined), "through-new-node", 10*time.Second); err != nil {
		t.Fatalf("write through the added node: %v", err)
	}
	if _, err := hub.AddNode(ctx(t), []string{cfg.EtcdClientURL}, add.EtcdName, "http://127.0.0.1:1"); err == nil {
		t.Error("adding a second node of the same name succeeded")
	}
}
