// Command testplugin is a Meridian plugin for the host's tests. It speaks
// the meridian.plugin.v1 contract directly (not through plugins/sdk), so
// that it can misbehave in ways the SDK prevents. Its behaviour comes from
// its Configure JSON:
//
//	{"mode": "answer"|"hang"|"error"|"invalid",
//	 "exitAfter": 3,            // exit(1) on the call after the 3rd
//	 "reject": ["c1"],          // Filter: Unschedulable for these clusters
//	 "scores": {"c1": 70},      // Score: these scores (others 50)
//	 "veto": true}              // Failover: veto
//
// The API versions it claims are "v1" unless built with
// -ldflags "-X main.apiVersion=v2".
package main

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/plugins/internal/handshake"
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// apiVersion is the contract version the plugin claims (set by -ldflags).
var apiVersion = "v1"

type config struct {
	Mode      string           `json:"mode"`
	ExitAfter int64            `json:"exitAfter"`
	Reject    []string         `json:"reject"`
	Scores    map[string]int64 `json:"scores"`
	Veto      bool             `json:"veto"`
}

type server struct {
	pluginv1.UnimplementedPluginServiceServer
	pluginv1.UnimplementedFilterServiceServer
	pluginv1.UnimplementedScoreServiceServer
	pluginv1.UnimplementedFailoverServiceServer

	mu    sync.RWMutex
	cfg   config // guarded by mu
	calls atomic.Int64
}

func main() {
	s := &server{}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake.Config(),
		Plugins: handshake.PluginSet(func(g *grpc.Server) {
			pluginv1.RegisterPluginServiceServer(g, s)
			pluginv1.RegisterFilterServiceServer(g, s)
			pluginv1.RegisterScoreServiceServer(g, s)
			pluginv1.RegisterFailoverServiceServer(g, s)
		}),
		GRPCServer: goplugin.DefaultGRPCServer,
	})
}

// GetInfo claims apiVersion and every capability.
func (s *server) GetInfo(context.Context, *pluginv1.GetInfoRequest) (*pluginv1.GetInfoResponse, error) {
	return &pluginv1.GetInfoResponse{
		Name:          "testplugin",
		PluginVersion: "0.0.1",
		ApiVersions:   []string{apiVersion},
		Capabilities: []pluginv1.Capability{
			pluginv1.Capability_CAPABILITY_FILTER,
			pluginv1.Capability_CAPABILITY_SCORE,
			pluginv1.Capability_CAPABILITY_FAILOVER,
		},
		ConfigSchema: `{"type": "object"}`,
	}, nil
}

// Configure installs the behaviour; an unknown mode is InvalidArgument
// naming the field "mode".
func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	var cfg config
	if err := json.Unmarshal(req.GetConfig(), &cfg); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "config: %v", err)
	}
	switch cfg.Mode {
	case "", "answer", "hang", "error", "invalid":
	default:
		st, _ := status.New(codes.InvalidArgument, "mode: unknown mode").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "mode", Description: "unknown mode " + cfg.Mode}},
		})
		return nil, st.Err()
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	return &pluginv1.ConfigureResponse{}, nil
}

// begin applies the behaviours every capability call shares; a non-nil
// error is the call's answer.
func (s *server) begin() (config, error) {
	s.mu.RLock()
	cfg := s.cfg
	s.mu.RUnlock()
	if n := s.calls.Add(1); cfg.ExitAfter > 0 && n > cfg.ExitAfter {
		os.Exit(1)
	}
	switch cfg.Mode {
	case "hang":
		select {} // ignores the deadline, as a wedged plugin would
	case "error":
		return cfg, status.Error(codes.Internal, "testplugin was told to fail")
	}
	return cfg, nil
}

// Filter passes every cluster but those in reject.
func (s *server) Filter(_ context.Context, req *pluginv1.FilterRequest) (*pluginv1.FilterResponse, error) {
	cfg, err := s.begin()
	if err != nil {
		return nil, err
	}
	out := &pluginv1.FilterResponse{}
	if cfg.Mode == "invalid" {
		return out, nil // no results: a protocol violation
	}
	for _, c := range req.GetClusters() {
		r := &pluginv1.FilterResult{Cluster: c.GetName(), Code: pluginv1.Code_CODE_SUCCESS}
		if slices.Contains(cfg.Reject, c.GetName()) {
			r.Code, r.Reason = pluginv1.Code_CODE_UNSCHEDULABLE, "rejected by testplugin"
		}
		out.Results = append(out.Results, r)
	}
	return out, nil
}

// Score answers the configured scores (50 for the others).
func (s *server) Score(_ context.Context, req *pluginv1.ScoreRequest) (*pluginv1.ScoreResponse, error) {
	cfg, err := s.begin()
	if err != nil {
		return nil, err
	}
	out := &pluginv1.ScoreResponse{}
	for _, c := range req.GetClusters() {
		score, ok := cfg.Scores[c.GetName()]
		if !ok {
			score = 50
		}
		if cfg.Mode == "invalid" {
			score = 1000
		}
		out.Scores = append(out.Scores, &pluginv1.ClusterScore{Cluster: c.GetName(), Score: score})
	}
	return out, nil
}

// Failover accepts the proposal, or vetoes it when configured to.
func (s *server) Failover(_ context.Context, req *pluginv1.FailoverRequest) (*pluginv1.FailoverResponse, error) {
	cfg, err := s.begin()
	if err != nil {
		return nil, err
	}
	if cfg.Veto {
		return &pluginv1.FailoverResponse{Veto: true, Reason: "testplugin vetoes"}, nil
	}
	if cfg.Mode == "invalid" {
		return &pluginv1.FailoverResponse{Targets: []*pluginv1.Target{{Replicas: 1}}}, nil // no cluster
	}
	return &pluginv1.FailoverResponse{Reason: "accepted " + req.GetWorkload().GetName()}, nil
}
