// Package apiserver serves the Admin API over gRPC, for the hub and for every
// member's local control plane alike: it validates what
// callers send, keeps namespaces honest, and maps storage outcomes to gRPC
// status codes that clients can act on (see proto/meridian/v1/admin.proto).
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"github.com/meridian-fed/meridian/proto/meridian/validation"
)

// DefaultNamespace is where namespaced objects go when the caller names none.
const DefaultNamespace = "default"

// Admin implements meridianv1.AdminServiceServer on top of any storage.Interface.
type Admin struct {
	meridianv1.UnimplementedAdminServiceServer
	store storage.Interface
	log   *slog.Logger
}

var _ meridianv1.AdminServiceServer = (*Admin)(nil)

// NewAdmin returns the Admin service over st.
func NewAdmin(st storage.Interface, log *slog.Logger) *Admin {
	if log == nil {
		log = slog.Default()
	}
	return &Admin{store: st, log: log}
}

// Apply validates the object and stores it (the store refuses a namespaced
// object whose namespace does not exist).
func (a *Admin) Apply(ctx context.Context, req *meridianv1.ApplyRequest) (*meridianv1.ApplyResponse, error) {
	obj, kind, err := resource.Unwrap(req.GetObject())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "object: %v", err)
	}
	md := resource.Meta(obj)
	if kind.Namespaced && md.Namespace == "" {
		md.Namespace = DefaultNamespace
	}
	if obj.GetApiVersion() == "" || obj.GetKind() == "" {
		resource.SetTypeMeta(obj, kind.APIVersions[0], kind.Kind)
	}
	if errs := validation.Validate(obj); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		return nil, status.Errorf(codes.InvalidArgument, "%s %q is invalid: %s", kind.Kind, md.Name, strings.Join(msgs, "; "))
	}
	stored, result, err := a.store.Apply(ctx, obj, storage.ApplyOptions{DryRun: req.GetDryRun()})
	if err != nil {
		return nil, toStatus(err)
	}
	wrapped, err := resource.Wrap(stored)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to wrap stored object: %v", err)
	}
	return &meridianv1.ApplyResponse{Object: wrapped, Result: applyResult(result)}, nil
}

// Get returns one object.
func (a *Admin) Get(ctx context.Context, req *meridianv1.GetRequest) (*meridianv1.GetResponse, error) {
	kind, ns, err := kindAndNamespace(req.GetKind(), req.GetNamespace())
	if err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name: required")
	}
	obj, err := a.store.Get(ctx, kind, ns, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &meridianv1.GetResponse{Object: resource.MustWrap(obj)}, nil
}

// List returns the objects of a kind that match the request.
func (a *Admin) List(ctx context.Context, req *meridianv1.ListRequest) (*meridianv1.ListResponse, error) {
	kind, ns, err := kindAndNamespace(req.GetKind(), req.GetNamespace())
	if err != nil {
		return nil, err
	}
	sel, err := parseSelector(req.GetLabelSelector())
	if err != nil {
		return nil, err
	}
	objs, rev, err := a.store.List(ctx, kind, ns, sel)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &meridianv1.ListResponse{ResourceVersion: strconv.FormatInt(rev, 10), Items: make([]*meridianv1.Object, 0, len(objs))}
	for _, o := range objs {
		resp.Items = append(resp.Items, resource.MustWrap(o))
	}
	return resp, nil
}

// Delete removes one object (a Namespace with everything in it).
func (a *Admin) Delete(ctx context.Context, req *meridianv1.DeleteRequest) (*meridianv1.DeleteResponse, error) {
	kind, ns, err := kindAndNamespace(req.GetKind(), req.GetNamespace())
	if err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name: required")
	}
	if kind.Kind == "Namespace" && req.GetName() == DefaultNamespace {
		return nil, status.Errorf(codes.PermissionDenied, "namespace %q cannot be deleted", DefaultNamespace)
	}
	if rv := req.GetResourceVersion(); rv != "" {
		if _, err := strconv.ParseInt(rv, 10, 64); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "resource_version: %q is not a revision number", rv)
		}
	}
	obj, err := a.store.Delete(ctx, kind, ns, req.GetName(), req.GetResourceVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &meridianv1.DeleteResponse{Object: resource.MustWrap(obj)}, nil
}

// Watch streams changes until the caller goes away or the store cannot go on.
func (a *Admin) Watch(req *meridianv1.WatchRequest, stream meridianv1.AdminService_WatchServer) error {
	kind, ns, err := kindAndNamespace(req.GetKind(), req.GetNamespace())
	if err != nil {
		return err
	}
	sel, err := parseSelector(req.GetLabelSelector())
	if err != nil {
		return err
	}
	var from int64
	if rv := req.GetResourceVersion(); rv != "" {
		if from, err = strconv.ParseInt(rv, 10, 64); err != nil || from < 0 {
			return status.Errorf(codes.InvalidArgument, "resource_version: %q is not a revision number", rv)
		}
	}
	ctx := stream.Context()
	for ev := range a.store.Watch(ctx, kind, ns, sel, from) {
		resp := &meridianv1.WatchResponse{ResourceVersion: strconv.FormatInt(ev.Revision, 10)}
		switch ev.Type {
		case storage.Added:
			resp.Type = meridianv1.EventType_EVENT_TYPE_ADDED
		case storage.Modified:
			resp.Type = meridianv1.EventType_EVENT_TYPE_MODIFIED
		case storage.Deleted:
			resp.Type = meridianv1.EventType_EVENT_TYPE_DELETED
		case storage.Bookmark:
			resp.Type = meridianv1.EventType_EVENT_TYPE_BOOKMARK
		case storage.Error:
			return toStatus(ev.Err)
		default:
			return status.Errorf(codes.Internal, "unknown watch event type %v", ev.Type)
		}
		if ev.Object != nil {
			resp.Object = resource.MustWrap(ev.Object)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unavailable, "watch ended; re-watch from the last resource_version")
}

func kindAndNamespace(name, ns string) (*resource.Kind, string, error) {
	if name == "" {
		return nil, "", status.Error(codes.InvalidArgument, "kind: required")
	}
	kind, ok := resource.Lookup(name)
	if !ok {
		return nil, "", status.Errorf(codes.InvalidArgument, "kind: %v", resource.LookupError(name))
	}
	if !kind.Namespaced {
		if ns != "" {
			return nil, "", status.Errorf(codes.InvalidArgument, "namespace: %s is cluster-scoped; do not give a namespace", kind.Plural)
		}
		return kind, "", nil
	}
	return kind, ns, nil
}

func parseSelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "label_selector: %v", err)
	}
	return sel, nil
}

func applyResult(r storage.ApplyResult) meridianv1.ApplyResult {
	switch r {
	case storage.Created:
		return meridianv1.ApplyResult_APPLY_RESULT_CREATED
	case storage.Configured:
		return meridianv1.ApplyResult_APPLY_RESULT_CONFIGURED
	case storage.Unchanged:
		return meridianv1.ApplyResult_APPLY_RESULT_UNCHANGED
	}
	return meridianv1.ApplyResult_APPLY_RESULT_UNSPECIFIED
}

// toStatus maps a store error to the gRPC status the Admin API documents.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, storage.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, storage.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, storage.ErrCompacted):
		return status.Errorf(codes.OutOfRange, "%v: relist, then watch from the list's resource_version", err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("store: %v", err))
}
