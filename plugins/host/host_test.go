//go:build unix

package host

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-fed/meridian/policies/framework"
)

// slack is what a call may take beyond its deadline: scheduling, the race
// detector, a loaded CI machine.
const slack = 500 * time.Millisecond

func TestChecksumMismatch(t *testing.T) {
	cfg := pluginConfig(t, "residency", bins.residency, "")
	pinned := sha256Of(t, bins.costaware)
	cfg.SHA256 = pinned
	_, err := New([]Config{cfg}, testLog(t))
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("New = %v, want ErrChecksumMismatch", err)
	}
	for _, want := range []string{"residency", sha256Of(t, bins.residency), pinned, "plugins[0].sha256"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestIncompatibleAPIVersion(t *testing.T) {
	_, err := New([]Config{pluginConfig(t, "future", bins.testpluginV2, "")}, testLog(t))
	if !errors.Is(err, ErrIncompatible) {
		t.Fatalf("New = %v, want ErrIncompatible", err)
	}
	for _, want := range []string{"future", `"v2"`, `"v1"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestConfigureErrorNamesField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfgs   func(t *testing.T) []Config
		index  int
		field  string
		reason string
	}{
		{"residency", func(t *testing.T) []Config {
			return []Config{pluginConfig(t, "residency", bins.residency, `{"regions": {"region-b": 5}}`)}
		}, 0, "config.regions.region-b", "must be a string"},
		{"costaware second", func(t *testing.T) []Config {
			return []Config{
				pluginConfig(t, "residency", bins.residency, `{"regions": {"region-b": "eu"}}`),
				pluginConfig(t, "costaware", bins.costaware, `{"prices": {"dc-a1": -1}}`),
			}
		}, 1, "config.prices.dc-a1", "must be >= 0"},
		{"unknown field", func(t *testing.T) []Config {
			return []Config{pluginConfig(t, "costaware", bins.costaware, `{"pricez": {}}`)}
		}, 0, "config", "unknown field"},
		{"test plugin", func(t *testing.T) []Config {
			return []Config{pluginConfig(t, "tp", bins.testplugin, `{"mode": "sulk"}`)}
		}, 0, "config.mode", "unknown mode sulk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfgs(t), testLog(t))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New = %v, want a *ConfigError", err)
			}
			if ce.Index != tc.index || ce.Field != tc.field || !strings.Contains(ce.Message, tc.reason) {
				t.Errorf("New = %v, want plugins[%d].%s: ...%s...", err, tc.index, tc.field, tc.reason)
			}
		})
	}
}

func TestFilterThroughHost(t *testing.T) {
	t.Parallel()
	h := newHost(t, []Config{pluginConfig(t, "residency", bins.residency, `{"regions": {"region-a": "us", "region-b": "eu"}}`)})
	p := h.Plugins()[0]
	if p.Name() != "residency" {
		t.Errorf("Name = %q", p.Name())
	}
	bf, ok := p.(framework.BatchFilterPlugin)
	if !ok {
		t.Fatalf("%T is not a BatchFilterPlugin", p)
	}
	if _, ok := p.(framework.ScorePlugin); ok {
		t.Errorf("a filter plugin is a ScorePlugin")
	}
	if _, ok := p.(framework.FailoverPlugin); ok {
		t.Errorf("a filter plugin is a FailoverPlugin")
	}
	clusters := []*framework.Cluster{
		cluster("dc-a1", "region-a", nil),
		cluster("dc-b1", "region-b", nil),
		cluster("dc-a2", "region-a", map[string]string{"meridian.io/jurisdiction": "eu"}),
	}
	ctx := context.Background()

	got := bf.FilterAll(ctx, snapshot(map[string]string{"meridian.io/jurisdiction": "eu"}, clusters...), clusters)
	if len(got) != 3 {
		t.Fatalf("FilterAll = %d statuses", len(got))
	}
	want := `cluster dc-a1 is in jurisdiction "us", the workload requires "eu"`
	if got[0].CodeOf() != framework.UnschedulableAndUnresolvable || got[0].Reason != want || got[0].Plugin != "residency" {
		t.Errorf("dc-a1: %+v, want UnschedulableAndUnresolvable %q", got[0], want)
	}
	if !got[1].IsSuccess() || !got[2].IsSuccess() {
		t.Errorf("dc-b1, dc-a2: %+v %+v, want Success", got[1], got[2])
	}

	for i, st := range bf.FilterAll(ctx, snapshot(nil, clusters...), clusters) {
		if !st.IsSkip() {
			t.Errorf("unlabelled workload, cluster %d: %+v, want Skip", i, st)
		}
	}
	if st := bf.Filter(ctx, snapshot(map[string]string{"meridian.io/jurisdiction": "us"}, clusters...), clusters[0]); !st.IsSuccess() {
		t.Errorf("Filter = %+v, want Success", st)
	}

	info := h.List()[0]
	if info.State != StateRunning || info.PID == 0 || info.PluginVersion != "1.0.0" || info.APIVersion != "v1" ||
		!slices.Equal(info.Capabilities, []Capability{CapabilityFilter}) || info.Calls != 3 || info.Failures != 0 ||
		!strings.Contains(info.ConfigSchema, "regions") || info.FailureMode != FailClosed || info.Timeout != testTimeout {
		t.Errorf("List = %+v", info)
	}
}

func TestScoreThroughHost(t *testing.T) {
	t.Parallel()
	h := newHost(t, []Config{pluginConfig(t, "costaware", bins.costaware, `{"prices": {"dc-a": 1, "dc-b": 3}}`)})
	p := h.Plugins()[0]
	bs, ok := p.(framework.BatchScorePlugin)
	if !ok {
		t.Fatalf("%T is not a BatchScorePlugin", p)
	}
	if _, ok := p.(framework.FilterPlugin); ok {
		t.Errorf("a score plugin is a FilterPlugin")
	}
	clusters := []*framework.Cluster{
		{Name: "a", Datacenter: "dc-a"},
		{Name: "b", Datacenter: "dc-b"},
		{Name: "c", Datacenter: "dc-c", Labels: map[string]string{"meridian.io/price-per-hour": "2"}},
		{Name: "d", Datacenter: "dc-d"},
	}
	scores, st := bs.ScoreAll(context.Background(), snapshot(nil, clusters...), clusters)
	if !st.IsSuccess() || !slices.Equal(scores, []int64{100, 0, 50, 0}) {
		t.Errorf("ScoreAll = %v %+v, want [100 0 50 0] Success", scores, st)
	}
	if score, st := bs.Score(context.Background(), snapshot(nil, clusters...), clusters[1]); !st.IsSuccess() || score != 100 {
		t.Errorf("Score = %d %+v, want 100 (alone, the cheapest)", score, st)
	}
}

func TestFailoverThroughHost(t *testing.T) {
	t.Parallel()
	h := newHost(t, []Config{
		pluginConfig(t, "accepts", bins.testplugin, `{}`),
		pluginConfig(t, "vetoes", bins.testplugin, `{"veto": true}`),
	})
	s := snapshot(nil, cluster("c1", "r", nil), cluster("c2", "r", nil))
	proposed := []framework.Target{{Cluster: "c2", Replicas: 3}}

	d, st := h.Plugins()[0].(framework.FailoverPlugin).Failover(context.Background(), s, []string{"c1"}, proposed)
	if !st.IsSuccess() || d.Veto || d.Targets != nil || d.Reason != "accepted web" {
		t.Errorf("accepts: %+v %+v", d, st)
	}
	d, st = h.Plugins()[1].(framework.FailoverPlugin).Failover(context.Background(), s, []string{"c1"}, proposed)
	if !st.IsSuccess() || !d.Veto || d.Reason != "testplugin vetoes" {
		t.Errorf("vetoes: %+v %+v", d, st)
	}
}

// TestFailureModes: a plugin that answers with an error, or outside the
// contract, gets the failure mode, with a reason naming it.
func TestFailureModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"error", "invalid"} {
		for _, fm := range []FailureMode{FailOpen, FailClosed} {
			t.Run(mode+"/"+string(fm), func(t *testing.T) {
				t.Parallel()
				cfg := pluginConfig(t, "tp", bins.testplugin, `{"mode": "`+mode+`"}`)
				cfg.FailureMode = fm
				h := newHost(t, []Config{cfg})
				p := h.Plugins()[0]
				clusters := []*framework.Cluster{cluster("c1", "r", nil), cluster("c2", "r", nil)}
				s := snapshot(nil, clusters...)
				checkFailureMode(t, p, s, clusters, fm, cfg.Timeout)
				if mode == "invalid" {
					st := p.(framework.BatchFilterPlugin).FilterAll(context.Background(), s, clusters)[0]
					if fm == FailClosed && !errors.Is(st.Err, ErrInvalidAnswer) {
						t.Errorf("invalid answer: Err = %v, want ErrInvalidAnswer", st.Err)
					}
				}
				if info := h.List()[0]; info.State != StateRunning || info.Failures == 0 || info.LastError == "" {
					t.Errorf("List = %+v, want Running with failures", info)
				}
			})
		}
	}
}

// checkFailureMode checks that every capability of p answers with the
// failure mode fm, promptly (within the plugin's deadline plus slack).
// The plugins it is used on fail fast or hang: a hung one costs each call
// its deadline.
func checkFailureMode(t *testing.T, p framework.Plugin, s *framework.Snapshot, clusters []*framework.Cluster, fm FailureMode, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	wantReason := "plugin " + p.Name() + " unavailable"
	within := func(what string, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if d := time.Since(start); d > timeout+slack {
			t.Errorf("%s took %s", what, d)
		}
	}
	within("FilterAll", func() {
		for i, st := range p.(framework.BatchFilterPlugin).FilterAll(ctx, s, clusters) {
			switch {
			case !strings.HasPrefix(st.Reason, wantReason) || st.Plugin != p.Name():
				t.Errorf("FilterAll[%d] = %+v, want a reason starting %q", i, st, wantReason)
			case fm == FailOpen && st.CodeOf() != framework.Success:
				t.Errorf("FilterAll[%d] = %+v, want Success (fail-open)", i, st)
			case fm == FailClosed && st.CodeOf() != framework.Unschedulable:
				t.Errorf("FilterAll[%d] = %+v, want Unschedulable (fail-closed)", i, st)
			}
		}
	})
	within("ScoreAll", func() {
		scores, st := p.(framework.BatchScorePlugin).ScoreAll(ctx, s, clusters)
		if !slices.Equal(scores, make([]int64, len(clusters))) || !strings.HasPrefix(st.Reason, wantReason) {
			t.Errorf("ScoreAll = %v %+v, want zeros and a reason starting %q", scores, st, wantReason)
		}
		if want := map[FailureMode]framework.Code{FailOpen: framework.Success, FailClosed: framework.Unschedulable}[fm]; st.CodeOf() != want {
			t.Errorf("ScoreAll status %+v, want %s", st, want)
		}
	})
	within("Failover", func() {
		d, st := p.(framework.FailoverPlugin).Failover(ctx, s, []string{"c1"}, []framework.Target{{Cluster: "c2", Replicas: 1}})
		if fm == FailOpen && (d.Veto || !st.IsSuccess()) || fm == FailClosed && (!d.Veto || st.CodeOf() != framework.Unschedulable) {
			t.Errorf("Failover (%s) = %+v %+v", fm, d, st)
		}
	})
}

// TestHungPlugin: a plugin that never answers costs each call its deadline
// and no more, gets the failure mode, and is killed and restarted after
// three timeouts in a row.
func TestHungPlugin(t *testing.T) {
	t.Parallel()
	for _, fm := range []FailureMode{FailOpen, FailClosed} {
		t.Run(string(fm), func(t *testing.T) {
			t.Parallel()
			cfg := pluginConfig(t, "hung", bins.testplugin, `{"mode": "hang"}`)
			cfg.FailureMode, cfg.Timeout = fm, 100*time.Millisecond
			h := newHost(t, []Config{cfg})
			p := h.Plugins()[0]
			clusters := []*framework.Cluster{cluster("c1", "r", nil), cluster("c2", "r", nil)}
			firstPID := h.List()[0].PID
			for range 2 {
				checkFailureMode(t, p, snapshot(nil, clusters...), clusters, fm, cfg.Timeout)
			}
			eventually(t, 10*time.Second, "the hung plugin to be restarted", func() bool {
				info := h.List()[0]
				return info.Restarts >= 1 && info.State == StateRunning && info.PID != firstPID
			})
			if !pidGone(firstPID) {
				t.Errorf("the hung process %d is still alive after its restart", firstPID)
			}
		})
	}
}

// TestKilledPluginRestarts: kill -9 the plugin: calls keep answering
// promptly with the failure mode, then the restarted plugin answers again.
func TestKilledPluginRestarts(t *testing.T) {
	t.Parallel()
	cfg := pluginConfig(t, "tp", bins.testplugin, `{"reject": ["c2"]}`)
	cfg.Timeout = time.Second
	h := newHost(t, []Config{cfg}, WithRestartBackoff(200*time.Millisecond, time.Second))
	bf := h.Plugins()[0].(framework.BatchFilterPlugin)
	clusters := []*framework.Cluster{cluster("c1", "r", nil), cluster("c2", "r", nil)}
	s := snapshot(nil, clusters...)
	answered := func(sts []*framework.Status) bool {
		return sts[0].IsSuccess() && sts[1].CodeOf() == framework.Unschedulable && sts[1].Reason == "rejected by testplugin"
	}
	if sts := bf.FilterAll(context.Background(), s, clusters); !answered(sts) {
		t.Fatalf("FilterAll = %+v %+v", sts[0], sts[1])
	}
	pid := h.List()[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	down := 0
	eventually(t, 10*time.Second, "the plugin to answer again", func() bool {
		start := time.Now()
		sts := bf.FilterAll(context.Background(), s, clusters)
		if d := time.Since(start); d > cfg.Timeout+slack {
			t.Fatalf("FilterAll took %s while the plugin was down", d)
		}
		if answered(sts) {
			return true
		}
		for i, st := range sts {
			if st.CodeOf() != framework.Unschedulable || !strings.HasPrefix(st.Reason, "plugin tp unavailable: ") || !errors.Is(st.Err, ErrUnavailable) {
				t.Fatalf("FilterAll[%d] while down = %+v, want fail-closed Unschedulable", i, st)
			}
		}
		down++
		return false
	})
	if down == 0 {
		t.Errorf("no call saw the plugin down")
	}
	info := h.List()[0]
	if info.Restarts != 1 || info.State != StateRunning || info.PID == pid || info.PID == 0 {
		t.Errorf("List = %+v, want Running with a new pid after 1 restart", info)
	}
	if !pidGone(pid) {
		t.Errorf("killed process %d not reaped", pid)
	}
}

// TestCrashingPluginRestarts: a plugin that exits on its own is restarted.
func TestCrashingPluginRestarts(t *testing.T) {
	t.Parallel()
	cfg := pluginConfig(t, "tp", bins.testplugin, `{"exitAfter": 2}`)
	cfg.FailureMode = FailOpen
	h := newHost(t, []Config{cfg})
	bf := h.Plugins()[0].(framework.BatchFilterPlugin)
	clusters := []*framework.Cluster{cluster("c1", "r", nil)}
	s := snapshot(nil, clusters...)
	for i := range 2 {
		if st := bf.FilterAll(context.Background(), s, clusters)[0]; st != nil {
			t.Fatalf("call %d: %+v, want nil (Success)", i, st)
		}
	}
	st := bf.FilterAll(context.Background(), s, clusters)[0] // the plugin exits
	if st.CodeOf() != framework.Success || !strings.Contains(st.Reason, "fail-open") {
		t.Errorf("call 3: %+v, want fail-open Success", st)
	}
	eventually(t, 10*time.Second, "the plugin to be restarted", func() bool {
		info := h.List()[0]
		return info.State == StateRunning && info.Restarts == 1
	})
	if st := bf.FilterAll(context.Background(), s, clusters)[0]; st != nil {
		t.Errorf("after restart: %+v, want nil (Success)", st)
	}
}

// TestCloseLeavesNoProcess: Close kills every plugin, a hung one included,
// promptly; later calls get the failure mode at once.
func TestCloseLeavesNoProcess(t *testing.T) {
	t.Parallel()
	hung := pluginConfig(t, "hung", bins.testplugin, `{"mode": "hang"}`)
	hung.Timeout = 50 * time.Millisecond
	h, err := New([]Config{
		pluginConfig(t, "residency", bins.residency, `{}`),
		pluginConfig(t, "costaware", bins.costaware, `{}`),
		hung,
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	clusters := []*framework.Cluster{cluster("c1", "r", nil)}
	h.Plugins()[2].(framework.FilterPlugin).Filter(context.Background(), snapshot(nil, clusters...), clusters[0]) // leaves a handler hanging
	var pids []int
	for _, info := range h.List() {
		pids = append(pids, info.PID)
	}
	start := time.Now()
	h.Close()
	if d := time.Since(start); d > defaultOptions().killGrace+2*slack {
		t.Errorf("Close took %s", d)
	}
	for _, pid := range pids {
		if !pidGone(pid) {
			t.Errorf("process %d outlived Close", pid)
		}
	}
	for _, info := range h.List() {
		if info.State != StateStopped || info.PID != 0 {
			t.Errorf("after Close: %+v", info)
		}
	}
	st := h.Plugins()[0].(framework.FilterPlugin).Filter(context.Background(), snapshot(map[string]string{"meridian.io/jurisdiction": "eu"}, clusters...), clusters[0])
	if st.CodeOf() != framework.Unschedulable || !errors.Is(st.Err, ErrClosed) {
		t.Errorf("Filter after Close = %+v, want fail-closed", st)
	}
	h.Close() // idempotent
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := newHost(t, []Config{pluginConfig(t, "residency", bins.residency, `{}`)}, WithRegisterer(reg))
	clusters := []*framework.Cluster{cluster("c1", "r", nil)}
	h.Plugins()[0].(framework.FilterPlugin).Filter(context.Background(), snapshot(nil, clusters...), clusters[0])

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "meridian_plugin_calls_total":
				if labels["plugin"] == "residency" && labels["method"] == "Filter" && labels["result"] == "ok" && m.GetCounter().GetValue() == 1 {
					found[f.GetName()] = true
				}
			case "meridian_plugin_call_duration_seconds":
				if labels["plugin"] == "residency" && m.GetHistogram().GetSampleCount() == 1 {
					found[f.GetName()] = true
				}
			case "meridian_plugin_up":
				if labels["plugin"] == "residency" && m.GetGauge().GetValue() == 1 {
					found[f.GetName()] = true
				}
			}
		}
	}
	for _, name := range []string{"meridian_plugin_calls_total", "meridian_plugin_call_duration_seconds", "meridian_plugin_up"} {
		if !found[name] {
			t.Errorf("metric %s missing or wrong", name)
		}
	}
	// A second host on the same registerer (a config reload) shares them.
	newHost(t, []Config{pluginConfig(t, "residency", bins.residency, `{}`)}, WithRegisterer(reg))
}

// pidGone reports whether no process has the id pid.
func pidGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
