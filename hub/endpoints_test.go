package hub_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthMetricsAndReflection checks what operators and tools rely on:
// /healthz, /readyz, /metrics, the gRPC health service and reflection.
func TestHealthMetricsAndReflection(t *testing.T) {
	h := hubtest.Start(t, hubtest.Config(t, t.TempDir()))
	cli := hubtest.Client(t, h)
	if _, err := cli.List(ctx(t), &meridianv1.ListRequest{Kind: "ns"}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+h.HTTPAddr()+path); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	code, body := httpGet(t, "http://"+h.HTTPAddr()+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, `grpc_server_handled_total{grpc_code="OK",grpc_method="List",grpc_service="meridian.v1.AdminService",grpc_type="unary"} 1`) ||
		!strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics lacks per-method gRPC or Go metrics (%d)", code)
	}

	conn := hubtest.Conn(t, h)
	hr, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{Service: "meridian.v1.AdminService"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health: %v %v", hr, err)
	}
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	lr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range lr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, ","), "meridian.v1.AdminService") {
		t.Errorf("reflection lists %v", names)
	}
}

// TestWatchFromCompactedRevisionSaysRelist: a watcher that fell behind
// compaction gets gRPC OutOfRange telling it to relist, not silence.
func TestWatchFromCompactedRevisionSaysRelist(t *testing.T) {
	h := hubtest.Start(t, hubtest.Config(t, t.TempDir()))
	cli := hubtest.Client(t, h)
	first, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(deployment("old", "v1"))})
	if err != nil {
		t.Fatal(err)
	}
	old := first.GetObject().GetDeployment().GetMetadata().GetResourceVersion()
	for i := 0; i < 3; i++ {
		if _, err := cli.Apply(ctx(t), &meridianv1.ApplyRequest{Object: resource.MustWrap(deployment("old", "v"+strconv.Itoa(i+2)))}); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := h.Store().Revision(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store().Compact(ctx(t), rev); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := cli.Watch(wctx, &meridianv1.WatchRequest{Kind: "deploy", Namespace: "default", ResourceVersion: old})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.OutOfRange || !strings.Contains(status.Convert(err).Message(), "relist") {
		t.Fatalf("watch from a compacted revision: %v, want OutOfRange telling to relist", err)
	}
}
