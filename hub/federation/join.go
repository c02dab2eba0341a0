package federation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/pki"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"github.com/meridian-fed/meridian/proto/meridian/validation"
)

// Join trades a join token and a CSR for a member certificate and registers
// the member: a Cluster object and the namespace of its Works.
func (f *Federation) Join(ctx context.Context, req *meridianv1.JoinRequest) (_ *meridianv1.JoinResponse, err error) {
	defer func() { f.metrics.joins.WithLabelValues(joinResult(err)).Inc() }()
	id := pki.Identity{Name: req.GetName(), Role: pki.RoleMember, Region: req.GetRegion(), Datacenter: req.GetDatacenter()}
	if err := id.Validate(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "join: %v", err)
	}
	if len(req.GetCsr()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "join: csr is required")
	}
	cl := &meridianv1.Cluster{
		ApiVersion: "meridian.io/v1", Kind: "Cluster",
		Metadata: &meridianv1.ObjectMeta{Name: req.GetName(), Labels: req.GetLabels()},
		Spec:     &meridianv1.ClusterSpec{Region: req.GetRegion(), Datacenter: req.GetDatacenter(), ApiEndpoint: req.GetApiEndpoint()},
	}
	if errs := validation.Validate(cl); len(errs) > 0 {
		return nil, status.Errorf(codes.InvalidArgument, "join: %v", errs.ToAggregate())
	}
	// A name that has joined stays taken: a second member with the same
	// name would fight over its Works. Rejoining (after the member lost its
	// data) means deleting the Cluster first.
	if old, err := f.store.Get(ctx, clusterKind, "", req.GetName()); err == nil {
		osp := old.(*meridianv1.Cluster).GetSpec()
		return nil, status.Errorf(codes.AlreadyExists,
			"join: cluster %s has already joined (region %s, datacenter %s); to join again, `meridian delete cluster %s` first",
			req.GetName(), osp.GetRegion(), osp.GetDatacenter(), req.GetName())
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, status.Errorf(codes.Unavailable, "join: read cluster %s: %v", req.GetName(), err)
	}
	certPEM, err := pki.Enroll(ctx, f.cfg.Tokens, f.cfg.CA, pki.EnrollRequest{Token: req.GetToken(), CSR: req.GetCsr(), Identity: id}, f.cfg.Now())
	if err != nil {
		return nil, pki.StatusError(err)
	}
	if err := f.ensureNamespace(ctx, federation.ClusterNamespace(req.GetName())); err != nil {
		return nil, status.Errorf(codes.Unavailable, "join: %v", err)
	}
	cl.Status = &meridianv1.ClusterStatus{
		Version: req.GetVersion(),
		Conditions: []*meridianv1.Condition{{
			Type: condReady, Status: "Unknown", Reason: "Joined", Message: "joined; waiting for its first heartbeat",
			LastTransitionTime: timestamppb.New(f.cfg.Now()),
		}},
	}
	if _, err := f.store.Create(ctx, cl); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return nil, status.Errorf(codes.AlreadyExists, "join: cluster %s has just joined from elsewhere", req.GetName())
		}
		return nil, status.Errorf(codes.Unavailable, "join: create cluster %s: %v", req.GetName(), err)
	}
	f.log.Info("member joined", "cluster", req.GetName(), "region", req.GetRegion(), "datacenter", req.GetDatacenter())
	return &meridianv1.JoinResponse{Certificate: certPEM, Ca: f.cfg.CA.CertPEM(), HubId: f.cfg.HubID}, nil
}

func joinResult(err error) string {
	if err == nil {
		return "ok"
	}
	return status.Code(err).String()
}

func (f *Federation) ensureNamespace(ctx context.Context, name string) error {
	if _, ok := f.namespaces.Load(name); ok {
		return nil // seen this run; a deleted one makes the Apply fail and the key retry
	}
	if _, err := f.store.Get(ctx, namespaceKind, "", name); err == nil {
		f.namespaces.Store(name, true)
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	ns := &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{
		Name: name, Labels: map[string]string{federation.LabelManagedBy: ManagedByFederation},
	}}
	if _, err := f.store.Create(ctx, ns); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	f.namespaces.Store(name, true)
	return nil
}

// ManagedByFederation labels the namespaces the hub makes for Works.
const ManagedByFederation = "federation"

// CreateJoinToken makes a member join token.
func (f *Federation) CreateJoinToken(ctx context.Context, req *meridianv1.CreateJoinTokenRequest) (*meridianv1.CreateJoinTokenResponse, error) {
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if req.GetTtlSeconds() < 0 {
		return nil, status.Error(codes.InvalidArgument, "ttl_seconds: must not be negative")
	}
	if ttl == 0 {
		ttl = pki.DefaultTokenTTL
	}
	if c := req.GetCluster(); c != "" {
		if err := (pki.Identity{Name: c, Role: pki.RoleAdmin}).Validate(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "cluster: %v", err)
		}
	}
	tok, rec, err := pki.NewToken(ttl, pki.JoinUsage(pki.RoleMember))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "make token: %v", err)
	}
	rec.Cluster, rec.SingleUse, rec.Description = req.GetCluster(), req.GetSingleUse(), req.GetDescription()
	if err := f.cfg.Tokens.Add(ctx, rec); err != nil {
		return nil, pki.StatusError(err)
	}
	return &meridianv1.CreateJoinTokenResponse{Token: tok.Value(), CaPin: f.cfg.CA.Pin(), Expires: timestamppb.New(rec.Expires)}, nil
}

// ListJoinTokens lists join tokens without their secrets.
func (f *Federation) ListJoinTokens(ctx context.Context, _ *meridianv1.ListJoinTokensRequest) (*meridianv1.ListJoinTokensResponse, error) {
	recs, err := f.cfg.Tokens.List(ctx)
	if err != nil {
		return nil, pki.StatusError(err)
	}
	out := &meridianv1.ListJoinTokensResponse{}
	for _, r := range recs {
		info := &meridianv1.JoinTokenInfo{Id: r.ID, Expires: timestamppb.New(r.Expires), Cluster: r.Cluster,
			SingleUse: r.SingleUse, Used: !r.UsedAt.IsZero(), Description: r.Description}
		for _, u := range r.Usages {
			info.Usages = append(info.Usages, string(u))
		}
		out.Tokens = append(out.Tokens, info)
	}
	return out, nil
}

// RevokeJoinToken ends a join token.
func (f *Federation) RevokeJoinToken(ctx context.Context, req *meridianv1.RevokeJoinTokenRequest) (*meridianv1.RevokeJoinTokenResponse, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id: required")
	}
	if err := f.cfg.Tokens.Revoke(ctx, req.GetId()); err != nil {
		return nil, pki.StatusError(err)
	}
	return &meridianv1.RevokeJoinTokenResponse{}, nil
}
