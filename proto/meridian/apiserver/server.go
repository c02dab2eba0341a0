package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Options configure a Server. Zero values take the defaults noted on each field.
type Options struct {
	// GRPCListen is the gRPC API address (host:port; port 0 picks one).
	GRPCListen string
	// HTTPListen serves /healthz, /readyz and /metrics; empty disables it.
	HTTPListen string
	// MaxRequestBytes bounds one request message. Default 4 MiB: a manifest
	// bigger than that is a mistake, and the bound keeps one caller from
	// holding the hub's memory.
	MaxRequestBytes int
	// RequestTimeout is the deadline given to unary calls that carry none.
	// Default 30 s: long enough for a slow etcd, short enough that a stuck
	// call frees its resources.
	RequestTimeout time.Duration
	// Ready reports whether the server can serve (for /readyz and gRPC health).
	Ready func(ctx context.Context) error
	// Registry receives the server's metrics; a new one is made when nil.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// TLS, when set, serves gRPC over TLS with this configuration
	// (pki.ServerTLSClientCertOptional on the hub); nil serves plaintext.
	TLS *tls.Config
	// UnaryInterceptors and StreamInterceptors run after metrics and panic
	// recovery, before the handler: authentication and authorization.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
}

// Server is a running gRPC API server with its HTTP side.
type Server struct {
	grpc    *grpc.Server
	health  *health.Server
	http    *http.Server
	grpcLis net.Listener
	httpLis net.Listener
	done    chan struct{} // closed when both serve loops have returned
	log     *slog.Logger
}

// ServiceRegistrar lets the caller register its services before serving.
type ServiceRegistrar func(s *grpc.Server)

// Start listens and serves admin (and whatever register adds) until Stop.
func Start(opts Options, admin meridianv1.AdminServiceServer, register ServiceRegistrar) (_ *Server, err error) {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 4 << 20
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Ready == nil {
		opts.Ready = func(context.Context) error { return nil }
	}
	s := &Server{health: health.NewServer(), log: opts.Logger, done: make(chan struct{})}

	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	for _, c := range []prometheus.Collector{metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := opts.Registry.Register(c); err != nil && !isAlreadyRegistered(err) {
			return nil, fmt.Errorf("failed to register metrics: %w", err)
		}
	}
	unary := append([]grpc.UnaryServerInterceptor{metrics.UnaryServerInterceptor(), recoverUnary(opts.Logger)}, opts.UnaryInterceptors...)
	unary = append(unary, deadlineUnary(opts.RequestTimeout))
	stream := append([]grpc.StreamServerInterceptor{metrics.StreamServerInterceptor(), recoverStream(opts.Logger)}, opts.StreamInterceptors...)
	serverOpts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxRequestBytes),
		// Members keep a Sync stream open for days: ping idle connections
		// so that a vanished peer is noticed in seconds, and let members
		// ping every 5 s to notice a vanished hub.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 15 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(serverOpts...)
	meridianv1.RegisterAdminServiceServer(s.grpc, admin)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	if register != nil {
		register(s.grpc)
	}
	metrics.InitializeMetrics(s.grpc)

	if s.grpcLis, err = net.Listen("tcp", opts.GRPCListen); err != nil {
		return nil, fmt.Errorf("failed to listen on %s (listen): %w", opts.GRPCListen, err)
	}
	defer func() {
		if err != nil {
			s.grpcLis.Close()
		}
	}()
	if opts.HTTPListen != "" {
		if s.httpLis, err = net.Listen("tcp", opts.HTTPListen); err != nil {
			return nil, fmt.Errorf("failed to listen on %s (http-listen): %w", opts.HTTPListen, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := opts.Ready(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		mux.Handle("/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}))
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}

	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(meridianv1.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	grpcDone := make(chan struct{})
	go func() {
		defer close(grpcDone)
		if err := s.grpc.Serve(s.grpcLis); err != nil {
			s.log.Error("gRPC server stopped", "err", err)
		}
	}()
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if s.http == nil {
			return
		}
		if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", "err", err)
		}
	}()
	go func() {
		<-grpcDone
		<-httpDone
		close(s.done)
	}()
	return s, nil
}

// GRPCAddr is the address the gRPC API listens on.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the address of /healthz, /readyz and /metrics ("" if disabled).
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Stop stops taking calls, lets running ones finish until ctx ends, then
// cuts the rest off.
func (s *Server) Stop(ctx context.Context) {
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop() // watch streams never end on their own
		<-stopped
	}
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
		}
	}
	<-s.done
}

func isAlreadyRegistered(err error) bool {
	var are prometheus.AlreadyRegisteredError
	return errors.As(err, &are)
}

func deadlineUnary(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return h(ctx, req)
	}
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return h(srv, ss)
	}
}
