package drill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// OperatorPrefix starts the name of every drill-operator identity: an
// admin token named "drill-operator.<name>" may read everything through
// the admin API and create, abort and delete Drills — and nothing else.
const OperatorPrefix = "drill-operator."

// IsOperator reports whether id is a drill operator.
func IsOperator(id pki.Identity) bool {
	return id.Role == pki.RoleAdmin && strings.HasPrefix(id.Name, OperatorPrefix)
}

var adminService = "/" + meridianv1.AdminService_ServiceDesc.ServiceName + "/"

// operatorMayCall reports whether a drill operator may make this call.
func operatorMayCall(method string, req any) bool {
	switch method {
	case adminService + "Get", adminService + "List", adminService + "Watch":
		return true
	case adminService + "Apply":
		r, ok := req.(*meridianv1.ApplyRequest)
		if !ok {
			return false
		}
		o, _, err := resource.Unwrap(r.GetObject())
		return err == nil && o.GetKind() == "Drill"
	case adminService + "Delete":
		r, ok := req.(*meridianv1.DeleteRequest)
		if !ok {
			return false
		}
		k, found := resource.Lookup(r.GetKind())
		return found && k.Kind == "Drill"
	}
	return false
}

func refuse(id pki.Identity, method string) error {
	return status.Errorf(codes.PermissionDenied, "%s is a drill operator: it may read and run drills, not call %s", id, method)
}

// OperatorGuard returns the interceptors that hold drill operators to
// drills; put them after the Authenticator and the Policy.
func OperatorGuard() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if id, ok := pki.IdentityFrom(ctx); ok && IsOperator(id) && !operatorMayCall(info.FullMethod, req) {
			return nil, refuse(id, info.FullMethod)
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if id, ok := pki.IdentityFrom(ss.Context()); ok && IsOperator(id) && info.FullMethod != adminService+"Watch" {
			return refuse(id, info.FullMethod)
		}
		return handler(srv, ss)
	}
	return unary, stream
}

// MintFunc makes and stores an admin token named name, valid for ttl (0:
// no end), and returns its value.
type MintFunc func(ctx context.Context, name string, ttl time.Duration) (string, error)

// Service is DrillService: it mints drill-operator tokens with Mint.
type Service struct {
	meridianv1.UnimplementedDrillServiceServer
	Mint MintFunc
}

// CreateOperatorToken implements DrillService.
func (s *Service) CreateOperatorToken(ctx context.Context, req *meridianv1.CreateOperatorTokenRequest) (*meridianv1.CreateOperatorTokenResponse, error) {
	if req.GetTtlSeconds() < 0 {
		return nil, status.Error(codes.InvalidArgument, "ttl_seconds must not be negative")
	}
	name := OperatorPrefix + req.GetName()
	if err := (pki.Identity{Name: name, Role: pki.RoleAdmin}).Validate(); err != nil || req.GetName() == "" {
		return nil, status.Errorf(codes.InvalidArgument, "name %q: give a DNS-1123 name", req.GetName())
	}
	tok, err := s.Mint(ctx, name, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", fmt.Errorf("failed to create the drill-operator token: %w", err))
	}
	return &meridianv1.CreateOperatorTokenResponse{Token: tok, Identity: name}, nil
}
