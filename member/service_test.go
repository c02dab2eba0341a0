package member_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestServiceProxiesToPods: a Service gets a virtual address from the
// member's service range; HTTP requests to it reach both pods of a
// Deployment through the proxy (targetPort by name); a pod started after
// the Service sees it in its environment.
func TestServiceProxiesToPods(t *testing.T) {
	// A service range of this test process's own (pod ranges use 127.100-199).
	cidr := fmt.Sprintf("127.%d.0.0/16", 200+os.Getpid()%40)
	e := startMember(t, t.TempDir(), func(c *member.Config) { c.ServiceCIDR = cidr })

	e.apply(&meridianv1.Service{
		ApiVersion: "v1", Kind: "Service",
		Metadata: &meridianv1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: &meridianv1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports: []*meridianv1.ServicePort{{
				Name: "http", Port: 80,
				TargetPort: &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: "http"}},
			}},
		},
	})
	var ip netip.Addr
	e.waitFor("a clusterIP on Service web", 10*time.Second, func() bool {
		resp, err := e.cli.Get(e.ctx(), &meridianv1.GetRequest{Kind: "service", Namespace: "default", Name: "web"})
		if err != nil {
			return false
		}
		ip, err = netip.ParseAddr(resp.GetObject().GetService().GetSpec().GetClusterIp())
		return err == nil
	})
	if !netip.MustParsePrefix(cidr).Contains(ip) {
		t.Fatalf("clusterIP %s is outside the service range %s", ip, cidr)
	}

	e.apply(deploymentOf("web", 2, httpTemplate("web", "v1")))
	e.waitFor("2 ready web pods", 30*time.Second, func() bool { return len(readyPods(e.pods("app=web"))) == 2 })

	// A new connection per request, so that each one is balanced afresh.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + net.JoinHostPort(ip.String(), "80") + "/"
	answered := map[string]int{}
	e.waitFor("both pods to answer through the Service", 20*time.Second, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false
		}
		answered[strings.Fields(string(b))[0]]++
		return len(answered) == 2
	})
	for range 4 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered[strings.Fields(string(b))[0]]++
	}
	for _, p := range readyPods(e.pods("app=web")) {
		if answered[p.GetMetadata().GetName()] < 2 {
			t.Errorf("pod %s answered %d times: %v", p.GetMetadata().GetName(), answered[p.GetMetadata().GetName()], answered)
		}
	}

	// A pod started after the Service has its variables.
	self, _ := os.Executable()
	e.apply(deploymentOf("envcheck", 1, &meridianv1.PodTemplateSpec{
		Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "envcheck"}},
		Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{
			Name: "env", Command: []string{self},
			Env: []*meridianv1.EnvVar{
				{Name: "MERIDIAN_TEST_WORKLOAD", Value: "env"},
				{Name: "ENV_NAMES", Value: "WEB_SERVICE_HOST WEB_SERVICE_PORT WEB_SERVICE_PORT_HTTP"},
			},
		}}},
	}))
	want := fmt.Sprintf("WEB_SERVICE_HOST=%s\nWEB_SERVICE_PORT=80\nWEB_SERVICE_PORT_HTTP=80\n", ip)
	var got string
	e.waitFor("the envcheck pod to print the Service variables", 30*time.Second, func() bool {
		ps := e.pods("app=envcheck")
		if len(ps) != 1 || ps[0].GetStatus().GetPhase() != "Running" {
			return false
		}
		got = e.logs(ps[0].GetMetadata().GetName())
		return strings.Contains(got, "WEB_SERVICE_PORT_HTTP=")
	})
	if !strings.Contains(got, want) {
		t.Errorf("the pod printed\n%s\nwant it to contain\n%s", got, want)
	}
}

// logs returns what a pod's only container has written so far.
func (e *env) logs(pod string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := e.log.Logs(ctx, &meridianv1.LogsRequest{Namespace: "default", Pod: pod})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for {
		resp, err := stream.Recv()
		if err != nil {
			return b.String()
		}
		b.Write(resp.GetData())
	}
}

// TestServiceCIDRValidation: the service range must be a loopback CIDR of
// its own.
func TestServiceCIDRValidation(t *testing.T) {
	for _, tc := range []struct {
		pods, services string
		wantErr        string
	}{
		{"127.1.0.0/16", "127.2.0.0/16", ""},
		{"127.1.0.0/16", "127.1.128.0/17", "overlaps pod-cidr"},
		{"127.0.0.0/8", "127.2.0.0/16", "overlaps pod-cidr"},
		{"127.1.0.0/16", "10.96.0.0/12", "must lie inside 127.0.0.0/8"},
		{"127.1.0.0/16", "127.2.0.0/31", "must lie inside 127.0.0.0/8"},
		{"127.1.0.0/16", "nonsense", "is not a CIDR"},
	} {
		cfg := member.DefaultConfig()
		cfg.Standalone = true
		cfg.PodCIDR, cfg.ServiceCIDR = tc.pods, tc.services
		err := cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("pod-cidr %s, service-cidr %s: %v", tc.pods, tc.services, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), "service-cidr: ") || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("pod-cidr %s, service-cidr %s: got %v, want service-cidr: …%s", tc.pods, tc.services, err, tc.wantErr)
		}
	}
}
