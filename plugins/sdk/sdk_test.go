package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/plugins/internal/handshake"
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// clients are the contract's clients connected to a plugin served in
// process, over go-plugin's gRPC transport.
type clients struct {
	base     pluginv1.PluginServiceClient
	filter   pluginv1.FilterServiceClient
	score    pluginv1.ScoreServiceClient
	failover pluginv1.FailoverServiceClient
}

func serve(t *testing.T, p *Plugin) clients {
	t.Helper()
	s, err := newServer(p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	client, server := goplugin.TestPluginGRPCConn(t, false, handshake.PluginSet(s.register))
	t.Cleanup(func() {
		client.Close() // asks the server to stop, as the host does
		select {
		case <-server.DoneCh:
		case <-time.After(10 * time.Second):
			t.Error("the plugin server did not stop")
		}
	})
	raw, err := client.Dispense(handshake.Name)
	if err != nil {
		t.Fatal(err)
	}
	conn := raw.(*handshake.Conn).Conn
	return clients{
		base:     pluginv1.NewPluginServiceClient(conn),
		filter:   pluginv1.NewFilterServiceClient(conn),
		score:    pluginv1.NewScoreServiceClient(conn),
		failover: pluginv1.NewFailoverServiceClient(conn),
	}
}

func configure(t *testing.T, c clients, config string) {
	t.Helper()
	if _, err := c.base.Configure(context.Background(), &pluginv1.ConfigureRequest{Config: []byte(config), ApiVersion: "v1"}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
}

func pass(context.Context, *Workload, *Cluster) Result { return Result{} }

func TestGetInfoFollowsCapabilities(t *testing.T) {
	c := serve(t, &Plugin{Name: "only-score", Version: "2.0.0", ConfigSchema: `{"type": "object"}`,
		Score: func(context.Context, *Workload, []*Cluster) ([]int64, error) { return nil, ErrSkip }})
	info, err := c.base.GetInfo(context.Background(), &pluginv1.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "only-score" || info.GetPluginVersion() != "2.0.0" || info.GetConfigSchema() != `{"type": "object"}` ||
		len(info.GetApiVersions()) != 1 || info.GetApiVersions()[0] != "v1" ||
		len(info.GetCapabilities()) != 1 || info.GetCapabilities()[0] != pluginv1.Capability_CAPABILITY_SCORE {
		t.Errorf("GetInfo = %v", info)
	}
	configure(t, c, "")
	if _, err := c.filter.Filter(context.Background(), &pluginv1.FilterRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("Filter on a score plugin: %v, want Unimplemented", err)
	}
	if _, err := c.failover.Failover(context.Background(), &pluginv1.FailoverRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("Failover on a score plugin: %v, want Unimplemented", err)
	}
}

func TestConfigure(t *testing.T) {
	var got []byte
	p := &Plugin{Name: "p", Version: "1", Filter: pass, Configure: func(raw []byte) error {
		var cfg struct {
			Regions map[string]string `json:"regions"`
		}
		if err := DecodeConfig(raw, &cfg); err != nil {
			return err
		}
		if cfg.Regions["region-b"] == "mars" {
			return FieldError("regions.region-b", "%q is not a jurisdiction", "mars")
		}
		got = raw
		return nil
	}}
	c := serve(t, p)
	ctx := context.Background()
	for _, tc := range []struct {
		name, config, version string
		code                  codes.Code
		field                 string
	}{
		{"wrong API version", `{}`, "v9", codes.FailedPrecondition, ""},
		{"not JSON", `{regions`, "v1", codes.InvalidArgument, ""},
		{"field error", `{"regions": {"region-b": "mars"}}`, "v1", codes.InvalidArgument, "regions.region-b"},
		{"type error", `{"regions": 5}`, "v1", codes.InvalidArgument, "regions"},
		{"unknown field", `{"regionz": {}}`, "v1", codes.InvalidArgument, ""},
		{"ok", `{"regions": {"region-b": "eu"}}`, "v1", codes.OK, ""},
		{"empty is {}", ``, "v1", codes.OK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.base.Configure(ctx, &pluginv1.ConfigureRequest{Config: []byte(tc.config), ApiVersion: tc.version})
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("Configure = %v, want %s", err, tc.code)
			}
			if field := violatedField(st); field != tc.field {
				t.Errorf("BadRequest field = %q, want %q (%v)", field, tc.field, err)
			}
		})
	}
	if string(got) != "{}" {
		t.Errorf("the last config Configure saw is %q, want {}", got)
	}

	noConfig := serve(t, &Plugin{Name: "p", Version: "1", Filter: pass})
	if _, err := noConfig.base.Configure(ctx, &pluginv1.ConfigureRequest{Config: []byte(`{"a": 1}`), ApiVersion: "v1"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("config for a plugin without Configure: %v, want InvalidArgument", err)
	}
	configure(t, noConfig, `{}`)
}

func violatedField(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func TestFilterBatch(t *testing.T) {
	var seen []string
	c := serve(t, &Plugin{Name: "p", Version: "1", Filter: func(_ context.Context, w *Workload, c *Cluster) Result {
		seen = append(seen, c.Name)
		switch {
		case w.Labels["app"] != "web" || w.PerReplica.MilliCPU != 250 || !w.Divisible || len(w.Tolerations) != 1 || *w.Tolerations[0].TolerationSeconds != 30:
			return NewResult(Error, "workload not converted: %+v", w)
		case c.Name == "b":
			return NewResult(Unschedulable, "%s is full", c.Name)
		case c.Name == "c":
			return NewResult(UnschedulableAndUnresolvable, "never %s", c.Labels["zone"])
		case c.Name == "d" && (c.Health != HealthSuspect || c.Available.Pods != 7 || c.Taints[0].Effect != "NoSchedule"):
			return NewResult(Error, "cluster not converted: %+v", c)
		}
		return Result{}
	}})
	if _, err := c.filter.Filter(context.Background(), &pluginv1.FilterRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Filter before Configure: %v, want FailedPrecondition", err)
	}
	configure(t, c, `{}`)
	secs := int64(30)
	resp, err := c.filter.Filter(context.Background(), &pluginv1.FilterRequest{
		Workload: &pluginv1.Workload{Name: "web", Labels: map[string]string{"app": "web"}, Divisible: true,
			PerReplica:  &pluginv1.Resources{MilliCpu: 250},
			Tolerations: []*pluginv1.Toleration{{Key: "k", TolerationSeconds: &secs}}},
		Clusters: []*pluginv1.Cluster{
			{Name: "a"}, {Name: "b"}, {Name: "c", Labels: map[string]string{"zone": "z1"}},
			{Name: "d", Health: pluginv1.Health_HEALTH_SUSPECT, Available: &pluginv1.Resources{Pods: 7},
				Taints: []*pluginv1.Taint{{Key: "k", Effect: "NoSchedule"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		code   pluginv1.Code
		reason string
	}{
		{pluginv1.Code_CODE_SUCCESS, ""},
		{pluginv1.Code_CODE_UNSCHEDULABLE, "b is full"},
		{pluginv1.Code_CODE_UNSCHEDULABLE_AND_UNRESOLVABLE, "never z1"},
		{pluginv1.Code_CODE_SUCCESS, ""},
	}
	if len(resp.GetResults()) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.GetResults()), len(want))
	}
	for i, r := range resp.GetResults() {
		if r.GetCluster() != []string{"a", "b", "c", "d"}[i] || r.GetCode() != want[i].code || r.GetReason() != want[i].reason {
			t.Errorf("result %d = %v, want %v", i, r, want[i])
		}
	}
	if strings.Join(seen, ",") != "a,b,c,d" {
		t.Errorf("Filter saw %v", seen)
	}
}

func TestScore(t *testing.T) {
	answer := func(scores []int64, err error) *Plugin {
		return &Plugin{Name: "p", Version: "1", Score: func(context.Context, *Workload, []*Cluster) ([]int64, error) { return scores, err }}
	}
	req := &pluginv1.ScoreRequest{Clusters: []*pluginv1.Cluster{{Name: "a"}, {Name: "b"}}}
	for _, tc := range []struct {
		name string
		p    *Plugin
		code codes.Code
		skip bool
	}{
		{"ok", answer([]int64{0, 100}, nil), codes.OK, false},
		{"skip", answer(nil, ErrSkip), codes.OK, true},
		{"wrapped skip", answer(nil, errors.Join(errors.New("no prices"), ErrSkip)), codes.OK, true},
		{"too few", answer([]int64{1}, nil), codes.Internal, false},
		{"out of range", answer([]int64{1, 101}, nil), codes.Internal, false},
		{"error", answer(nil, errors.New("boom")), codes.Internal, false},
		{"status kept", answer(nil, status.Error(codes.ResourceExhausted, "later")), codes.ResourceExhausted, false},
		{"panic", &Plugin{Name: "p", Version: "1", Score: func(context.Context, *Workload, []*Cluster) ([]int64, error) { panic("oops") }}, codes.Internal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, tc.p)
			configure(t, c, `{}`)
			resp, err := c.score.Score(context.Background(), req)
			if status.Code(err) != tc.code {
				t.Fatalf("Score = %v, want %s", err, tc.code)
			}
			if err == nil && resp.GetSkip() != tc.skip {
				t.Errorf("skip = %v, want %v", resp.GetSkip(), tc.skip)
			}
			if tc.code == codes.OK && !tc.skip && (resp.GetScores()[1].GetCluster() != "b" || resp.GetScores()[1].GetScore() != 100) {
				t.Errorf("Score = %v", resp)
			}
			// The process survives a panic: the next call is answered.
			if _, err := c.base.GetInfo(context.Background(), &pluginv1.GetInfoRequest{}); err != nil {
				t.Errorf("GetInfo after Score: %v", err)
			}
		})
	}
}

func TestFailover(t *testing.T) {
	var got *FailoverRequest
	decide := Decision{Targets: []Target{{Cluster: "c3", Replicas: 2}}, Reason: "c3 is closer"}
	c := serve(t, &Plugin{Name: "p", Version: "1", Failover: func(_ context.Context, req *FailoverRequest) (Decision, error) {
		got = req
		return decide, nil
	}})
	configure(t, c, `{}`)
	req := &pluginv1.FailoverRequest{
		Workload:       &pluginv1.Workload{Name: "web"},
		FailedClusters: []string{"c1"},
		Proposed:       []*pluginv1.Target{{Cluster: "c2", Replicas: 2}},
		Clusters:       []*pluginv1.Cluster{{Name: "c1", Health: pluginv1.Health_HEALTH_UNREACHABLE}, {Name: "c2"}, {Name: "c3"}},
	}
	resp, err := c.failover.Failover(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVeto() || len(resp.GetTargets()) != 1 || resp.GetTargets()[0].GetCluster() != "c3" || resp.GetReason() != "c3 is closer" {
		t.Errorf("Failover = %v", resp)
	}
	if got.Workload.Name != "web" || got.Failed[0] != "c1" || got.Proposed[0] != (Target{"c2", 2}) || len(got.Clusters) != 3 || got.Clusters[0].Health != HealthUnreachable {
		t.Errorf("the plugin saw %+v", got)
	}

	decide = Decision{Veto: true, Targets: []Target{{Cluster: "c3"}}, Reason: "wait"}
	if resp, err = c.failover.Failover(context.Background(), req); err != nil || !resp.GetVeto() || len(resp.GetTargets()) != 0 {
		t.Errorf("veto: %v %v, want a veto without targets", resp, err)
	}
}

func TestPluginValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Plugin
		want string
	}{
		{"nil", nil, "no plugin"},
		{"no name", &Plugin{Version: "1", Filter: pass}, "no Name"},
		{"no version", &Plugin{Name: "p", Filter: pass}, "no Version"},
		{"no capability", &Plugin{Name: "p", Version: "1"}, "none of Filter, Score and Failover"},
		{"bad schema", &Plugin{Name: "p", Version: "1", Filter: pass, ConfigSchema: "{"}, "ConfigSchema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newServer(tc.p, slog.Default()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newServer = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestLoggerFormat: the plugin's log lines are in the JSON form go-plugin's
// host parses (hclog's @level, @message, @timestamp).
func TestLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	slog.New(newHCLogHandler(&buf)).Warn("disk almost full", "free", 3)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["@level"] != "warn" || line["@message"] != "disk almost full" || line["free"] != 3.0 {
		t.Errorf("log line = %s", buf.String())
	}
	if ts, _ := line["@timestamp"].(string); len(ts) != len("2006-01-02T15:04:05.000000Z07:00") && !strings.HasSuffix(ts, "Z") {
		t.Errorf("@timestamp = %q", ts)
	}
}
