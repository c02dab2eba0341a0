package drill

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// ListFunc lists the admin tokens the hub keeps (every hub node's, from
// etcd).
type ListFunc func(ctx context.Context) ([]pki.AdminTokenRecord, error)

// RevokeFunc removes the admin token with this ID: the next call made with
// it, through any hub node, is Unauthenticated.
type RevokeFunc func(ctx context.Context, id string) error

// Service is DrillService: it mints drill-operator tokens with Mint, lists
// them with List and revokes them with Revoke (admin tokens whose name is
// not a drill operator's are neither listed nor revoked here).
type Service struct {
	meridianv1.UnimplementedDrillServiceServer
	Mint   MintFunc
	List   ListFunc
	Revoke RevokeFunc
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

// operatorTokens is the drill-operator tokens among the hub's admin
// tokens, by operator name then ID.
func (s *Service) operatorTokens(ctx context.Context) ([]*meridianv1.OperatorTokenInfo, error) {
	if s.List == nil {
		return nil, status.Error(codes.Unimplemented, "this hub cannot list drill-operator tokens")
	}
	recs, err := s.List(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to list the drill-operator tokens: %v", err)
	}
	var out []*meridianv1.OperatorTokenInfo
	for _, r := range recs {
		if !strings.HasPrefix(r.Name, OperatorPrefix) {
			continue
		}
		info := &meridianv1.OperatorTokenInfo{Id: r.ID, Name: strings.TrimPrefix(r.Name, OperatorPrefix), Identity: r.Name}
		if !r.Expires.IsZero() {
			info.Expires = timestamppb.New(r.Expires)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b *meridianv1.OperatorTokenInfo) int {
		return cmp.Or(strings.Compare(a.GetName(), b.GetName()), strings.Compare(a.GetId(), b.GetId()))
	})
	return out, nil
}

// ListOperatorTokens implements DrillService.
func (s *Service) ListOperatorTokens(ctx context.Context, _ *meridianv1.ListOperatorTokensRequest) (*meridianv1.ListOperatorTokensResponse, error) {
	toks, err := s.operatorTokens(ctx)
	if err != nil {
		return nil, err
	}
	return &meridianv1.ListOperatorTokensResponse{Tokens: toks}, nil
}

// RevokeOperatorToken implements DrillService: every token of the operator
// name, or the one token id. NotFound when there is none.
func (s *Service) RevokeOperatorToken(ctx context.Context, req *meridianv1.RevokeOperatorTokenRequest) (*meridianv1.RevokeOperatorTokenResponse, error) {
	if (req.GetName() == "") == (req.GetId() == "") {
		return nil, status.Error(codes.InvalidArgument, "give the operator's name or the token's id (one of them)")
	}
	if s.Revoke == nil {
		return nil, status.Error(codes.Unimplemented, "this hub cannot revoke drill-operator tokens")
	}
	toks, err := s.operatorTokens(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, t := range toks {
		if req.GetName() != "" && t.GetName() == req.GetName() || req.GetId() != "" && t.GetId() == req.GetId() {
			ids = append(ids, t.GetId())
		}
	}
	if len(ids) == 0 {
		if req.GetName() != "" {
			return nil, status.Errorf(codes.NotFound, "drill operator %q has no token", req.GetName())
		}
		return nil, status.Errorf(codes.NotFound, "no drill-operator token has id %q", req.GetId())
	}
	for _, id := range ids {
		if err := s.Revoke(ctx, id); err != nil {
			return nil, status.Errorf(codes.Internal, "failed to revoke drill-operator token %s: %v", id, err)
		}
	}
	return &meridianv1.RevokeOperatorTokenResponse{Ids: ids}, nil
}
