package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/plugins/internal/handshake"
	pluginv1 "github.com/meridian-fed/meridian/proto/meridian/plugin/v1"
)

// apiVersions are the contract versions this SDK speaks.
var apiVersions = []string{handshake.APIVersion}

// server serves one Plugin's gRPC services.
type server struct {
	pluginv1.UnimplementedPluginServiceServer
	pluginv1.UnimplementedFilterServiceServer
	pluginv1.UnimplementedScoreServiceServer
	pluginv1.UnimplementedFailoverServiceServer

	p   *Plugin
	log *slog.Logger

	// mu orders Configure before the capability calls: Configure holds it
	// exclusively, Filter, Score and Failover share it. The author's code
	// therefore needs no locks for the config Configure installs.
	mu         sync.RWMutex
	configured bool // guarded by mu
}

func newServer(p *Plugin, log *slog.Logger) (*server, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &server{p: p, log: log}, nil
}

// register registers the base service and the capability services the
// author set, and no others: the host sees Unimplemented for the rest.
func (s *server) register(g *grpc.Server) {
	pluginv1.RegisterPluginServiceServer(g, s)
	if s.p.Filter != nil {
		pluginv1.RegisterFilterServiceServer(g, s)
	}
	if s.p.Score != nil {
		pluginv1.RegisterScoreServiceServer(g, s)
	}
	if s.p.Failover != nil {
		pluginv1.RegisterFailoverServiceServer(g, s)
	}
}

// GetInfo implements PluginService.
func (s *server) GetInfo(context.Context, *pluginv1.GetInfoRequest) (*pluginv1.GetInfoResponse, error) {
	var caps []pluginv1.Capability
	if s.p.Filter != nil {
		caps = append(caps, pluginv1.Capability_CAPABILITY_FILTER)
	}
	if s.p.Score != nil {
		caps = append(caps, pluginv1.Capability_CAPABILITY_SCORE)
	}
	if s.p.Failover != nil {
		caps = append(caps, pluginv1.Capability_CAPABILITY_FAILOVER)
	}
	return &pluginv1.GetInfoResponse{
		Name:          s.p.Name,
		PluginVersion: s.p.Version,
		ApiVersions:   slices.Clone(apiVersions),
		Capabilities:  caps,
		ConfigSchema:  s.p.ConfigSchema,
	}, nil
}

// Configure implements PluginService.
func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (_ *pluginv1.ConfigureResponse, err error) {
	defer s.recoverTo(&err, "Configure")
	if !slices.Contains(apiVersions, req.GetApiVersion()) {
		return nil, status.Errorf(codes.FailedPrecondition, "API version %q is not one this plugin speaks (%v)", req.GetApiVersion(), apiVersions)
	}
	raw := bytes.TrimSpace(req.GetConfig())
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if !json.Valid(raw) {
		return nil, status.Error(codes.InvalidArgument, "config is not valid JSON")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.Configure == nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || len(m) > 0 {
			return nil, status.Errorf(codes.InvalidArgument, "plugin %s takes no config", s.p.Name)
		}
	} else if err := s.p.Configure(raw); err != nil {
		return nil, configStatus(err)
	}
	s.configured = true
	return &pluginv1.ConfigureResponse{}, nil
}

// configStatus turns a Configure error into InvalidArgument, with a
// BadRequest detail naming the field when the error does.
func configStatus(err error) error {
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field == "" {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	st := status.New(codes.InvalidArgument, err.Error())
	withField, detailErr := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: ce.Field, Description: ce.Message}},
	})
	if detailErr != nil {
		return st.Err()
	}
	return withField.Err()
}

// Filter implements FilterService: the author's Filter once per cluster.
func (s *server) Filter(ctx context.Context, req *pluginv1.FilterRequest) (_ *pluginv1.FilterResponse, err error) {
	defer s.recoverTo(&err, "Filter")
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.configured {
		return nil, errNotConfigured
	}
	w := workloadFrom(req.GetWorkload())
	clusters := clustersFrom(req.GetClusters())
	// One allocation for every result of the batch.
	results := make([]pluginv1.FilterResult, len(clusters))
	out := &pluginv1.FilterResponse{Results: make([]*pluginv1.FilterResult, len(clusters))}
	for i := range clusters {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		r := s.p.Filter(ctx, w, &clusters[i])
		code, ok := codeToProto(r.Code)
		if !ok {
			return nil, status.Errorf(codes.Internal, "Filter answered %s for cluster %s", r.Code, clusters[i].Name)
		}
		results[i].Cluster, results[i].Code, results[i].Reason = clusters[i].Name, code, r.Reason
		out.Results[i] = &results[i]
	}
	return out, nil
}

// Score implements ScoreService.
func (s *server) Score(ctx context.Context, req *pluginv1.ScoreRequest) (_ *pluginv1.ScoreResponse, err error) {
	defer s.recoverTo(&err, "Score")
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.configured {
		return nil, errNotConfigured
	}
	clusters := clustersFrom(req.GetClusters())
	ptrs := make([]*Cluster, len(clusters))
	for i := range clusters {
		ptrs[i] = &clusters[i]
	}
	scores, err := s.p.Score(ctx, workloadFrom(req.GetWorkload()), ptrs)
	if errors.Is(err, ErrSkip) {
		return &pluginv1.ScoreResponse{Skip: true}, nil
	}
	if err != nil {
		return nil, callStatus(ctx, "Score", err)
	}
	if len(scores) != len(clusters) {
		return nil, status.Errorf(codes.Internal, "Score returned %d scores for %d clusters", len(scores), len(clusters))
	}
	out := &pluginv1.ScoreResponse{Scores: make([]*pluginv1.ClusterScore, len(clusters))}
	all := make([]pluginv1.ClusterScore, len(clusters))
	for i, score := range scores {
		if score < 0 || score > 100 {
			return nil, status.Errorf(codes.Internal, "Score gave cluster %s a score of %d, outside 0..100", clusters[i].Name, score)
		}
		all[i].Cluster, all[i].Score = clusters[i].Name, score
		out.Scores[i] = &all[i]
	}
	return out, nil
}

// Failover implements FailoverService.
func (s *server) Failover(ctx context.Context, req *pluginv1.FailoverRequest) (_ *pluginv1.FailoverResponse, err error) {
	defer s.recoverTo(&err, "Failover")
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.configured {
		return nil, errNotConfigured
	}
	clusters := clustersFrom(req.GetClusters())
	ptrs := make([]*Cluster, len(clusters))
	for i := range clusters {
		ptrs[i] = &clusters[i]
	}
	d, err := s.p.Failover(ctx, &FailoverRequest{
		Workload: workloadFrom(req.GetWorkload()),
		Failed:   slices.Clone(req.GetFailedClusters()),
		Proposed: targetsFrom(req.GetProposed()),
		Clusters: ptrs,
	})
	if err != nil {
		return nil, callStatus(ctx, "Failover", err)
	}
	out := &pluginv1.FailoverResponse{Veto: d.Veto, Reason: d.Reason}
	if !d.Veto {
		out.Targets = targetsToProto(d.Targets)
	}
	return out, nil
}

var errNotConfigured = status.Error(codes.FailedPrecondition, "plugin is not configured: the host must call Configure first")

// callStatus turns an author's error into a gRPC status: one the author
// built keeps its code, a context error becomes Canceled or
// DeadlineExceeded, anything else is Internal.
func callStatus(ctx context.Context, method string, err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(codes.Internal, "%s failed: %v", method, err)
}

// recoverTo turns a panic in the author's code into an Internal error, so
// that one bad input fails one call instead of killing the process.
func (s *server) recoverTo(err *error, method string) {
	r := recover()
	if r == nil {
		return
	}
	s.log.Error("plugin panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	*err = status.Errorf(codes.Internal, "%s panicked: %v", method, r)
}
