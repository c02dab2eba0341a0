package main

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// adminStore reads and updates objects through an Admin API, so that code
// written against a store (deployment.Rollback, deployment.History) runs
// from the CLI unchanged.
type adminStore struct{ c *client }

// fromStatus turns the API's NotFound back into storage.ErrNotFound, which
// store-facing code tests for; other errors keep their explanation.
func (s adminStore) fromStatus(err error) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s: %w", status.Convert(err).Message(), storage.ErrNotFound)
	}
	return s.c.explain(err)
}

func (s adminStore) Get(ctx context.Context, kind *resource.Kind, namespace, name string) (resource.Object, error) {
	resp, err := s.c.AdminServiceClient.Get(ctx, &meridianv1.GetRequest{Kind: kind.Kind, Namespace: namespace, Name: name})
	if err != nil {
		return nil, s.fromStatus(err)
	}
	o, _, err := resource.Unwrap(resp.GetObject())
	return o, err
}

func (s adminStore) List(ctx context.Context, kind *resource.Kind, namespace string, sel labels.Selector) ([]resource.Object, int64, error) {
	req := &meridianv1.ListRequest{Kind: kind.Kind, Namespace: namespace}
	if sel != nil {
		req.LabelSelector = sel.String()
	}
	resp, err := s.c.AdminServiceClient.List(ctx, req)
	if err != nil {
		return nil, 0, s.fromStatus(err)
	}
	out := make([]resource.Object, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		o, _, err := resource.Unwrap(it)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, o)
	}
	return out, 0, nil
}

// updateAttempts bounds Update's read-modify-apply loop against writers
// that keep changing the object (a controller writing status).
const updateAttempts = 5

// Update reads the object, applies mutate to a copy and writes it back
// conditionally on the resourceVersion it read, retrying when another
// writer got there first.
func (s adminStore) Update(ctx context.Context, kind *resource.Kind, namespace, name string, mutate func(resource.Object) error) (resource.Object, error) {
	for range updateAttempts {
		cur, err := s.Get(ctx, kind, namespace, name)
		if err != nil {
			return nil, err
		}
		next := proto.Clone(cur).(resource.Object)
		if err := mutate(next); err != nil {
			return nil, err
		}
		if proto.Equal(cur, next) {
			return cur, nil
		}
		resp, err := s.c.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(next)})
		if status.Code(err) == codes.Aborted {
			continue // changed since we read it: read again
		}
		if err != nil {
			return nil, s.fromStatus(err)
		}
		o, _, err := resource.Unwrap(resp.GetObject())
		return o, err
	}
	return nil, fmt.Errorf("%s %s/%s kept changing while being updated: %w", kind.Kind, namespace, name, storage.ErrConflict)
}
