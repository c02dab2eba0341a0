package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// run executes the CLI in-process, as a user would from a shell.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func startHub(t *testing.T) *hub.Hub {
	t.Helper()
	dir := t.TempDir()
	h := hubtest.Start(t, hubtest.Config(t, dir))
	t.Setenv("MERIDIAN_CLIENT_CONFIG", filepath.Join(t.TempDir(), "client.yaml"))
	t.Setenv("MERIDIAN_SERVER", h.Addr())
	t.Setenv("MERIDIAN_CA_FILE", filepath.Join(dir, hub.CAFile))
	tok, err := os.ReadFile(filepath.Join(dir, hub.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MERIDIAN_TOKEN", strings.TrimSpace(string(tok)))
	return h
}

const good = "../../test/testdata/good"

func firstOfKind(t *testing.T, kind string) *manifest.Document {
	docs, err := manifest.Load([]string{good}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range docs {
		if docs[i].Kind.Kind == kind {
			return &docs[i]
		}
	}
	t.Fatalf("no %s in %s", kind, good)
	return nil
}

func TestApplyGetDescribeDelete(t *testing.T) {
	startHub(t)
	out, errOut, err := run(t, "", "apply", "-f", good)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "namespace/demo created") || !strings.Contains(out, "deployment/") {
		t.Errorf("apply output:\n%s", out)
	}
	// Applying again changes nothing.
	out, _, err = run(t, "", "apply", "-f", good)
	if err != nil || strings.Contains(out, "created") || !strings.Contains(out, "unchanged") {
		t.Errorf("second apply: %v\n%s", err, out)
	}

	d := firstOfKind(t, "Deployment")
	name, ns := d.Object.GetMetadata().GetName(), d.Object.GetMetadata().GetNamespace()
	out, _, err = run(t, "", "get", "deploy", "-n", ns)
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "READY") || !strings.Contains(out, name) {
		t.Errorf("get deploy: %v\n%s", err, out)
	}
	out, _, err = run(t, "", "get", "deployments", "-A", "-o", "wide")
	if err != nil || !strings.Contains(out, "NAMESPACE") || !strings.Contains(out, "SELECTOR") {
		t.Errorf("get -A -o wide: %v\n%s", err, out)
	}

	out, _, err = run(t, "", "get", "deploy", name, "-n", ns, "-o", "yaml")
	if err != nil {
		t.Fatalf("get -o yaml: %v", err)
	}
	back, err := manifest.Decode([]byte(out), "get.yaml")
	if err != nil || len(back) != 1 {
		t.Fatalf("get -o yaml does not decode: %v\n%s", err, out)
	}
	if back[0].Object.GetMetadata().GetUid() == "" {
		t.Error("get -o yaml has no uid")
	}
	out, _, err = run(t, "", "get", "deploy", "-n", ns, "-o", "json")
	if err != nil || !strings.Contains(out, `"kind": "List"`) {
		t.Errorf("get -o json: %v\n%s", err, out)
	}

	out, _, err = run(t, "", "describe", "deploy", name, "-n", ns)
	if err != nil || !strings.Contains(out, "Name:") || !strings.Contains(out, "Spec:") || !strings.Contains(out, "Namespace:") {
		t.Errorf("describe: %v\n%s", err, out)
	}

	out, _, err = run(t, "", "delete", "deploy", name, "-n", ns)
	if err != nil || !strings.Contains(out, "deployment/"+name+" deleted") {
		t.Errorf("delete: %v\n%s", err, out)
	}
	_, _, err = run(t, "", "get", "deploy", name, "-n", ns)
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("get after delete: %v", err)
	}
	out, _, err = run(t, "", "delete", "-f", good)
	if err == nil {
		t.Errorf("delete -f of an already deleted object should report it:\n%s", out)
	}
	if _, _, err = run(t, "", "delete", "-f", good, "--ignore-not-found"); err != nil {
		t.Errorf("delete -f --ignore-not-found: %v", err)
	}
}

func TestApplyRefusesBadManifestsAndStoresNothing(t *testing.T) {
	startHub(t)
	bad := `apiVersion: v1
kind: Namespace
metadata:
  name: fine
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: fine
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        imagee: nginx
`
	_, errOut, err := run(t, bad, "apply", "-f", "-")
	if err == nil {
		t.Fatal("bad manifest applied")
	}
	if !strings.Contains(errOut, `<stdin>: document 2: spec.template.spec.containers[0].imagee: unknown field "imagee"`) {
		t.Errorf("error does not name source, document and field:\n%s", errOut)
	}
	if !strings.Contains(err.Error(), "nothing was applied") {
		t.Errorf("error = %v", err)
	}
	if _, _, err := run(t, "", "get", "ns", "fine"); err == nil {
		t.Error("the valid document of a rejected batch was applied")
	}
}

func TestClientErrorsAreClear(t *testing.T) {
	t.Setenv("MERIDIAN_CLIENT_CONFIG", filepath.Join(t.TempDir(), "client.yaml"))
	t.Setenv("MERIDIAN_SERVER", "127.0.0.1:"+itoa(int32(hubtest.FreePort(t))))
	_, _, err := run(t, "", "get", "deploy", "--request-timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("hub without a CA: %v", err)
	}
	t.Setenv("MERIDIAN_INSECURE", "1")
	_, _, err = run(t, "", "get", "deploy", "--request-timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the API") && !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("unreachable server: %v", err)
	}
	_, _, err = run(t, "", "get", "deploymnts")
	if err == nil || !strings.Contains(err.Error(), `unknown kind "deploymnts"`) {
		t.Errorf("bad kind: %v", err)
	}
	_, _, err = run(t, "", "get", "deploy", "-o", "xml")
	if err == nil || !strings.Contains(err.Error(), "-o") {
		t.Errorf("bad -o: %v", err)
	}
}

func TestContextFile(t *testing.T) {
	h := startHub(t)
	os.Unsetenv("MERIDIAN_SERVER")
	caFile, token := os.Getenv("MERIDIAN_CA_FILE"), os.Getenv("MERIDIAN_TOKEN")
	os.Unsetenv("MERIDIAN_CA_FILE")
	os.Unsetenv("MERIDIAN_TOKEN")
	if _, _, err := run(t, "", "context", "set", "mine", "--server", h.Addr(), "--namespace", "default"); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("context set without a CA: %v", err)
	}
	if _, _, err := run(t, "", "context", "set", "mine", "--server", h.Addr(), "--namespace", "default", "--ca-file", caFile, "--token", "bad"); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("context set with a malformed token: %v", err)
	}
	if _, _, err := run(t, "", "context", "set", "mine", "--server", h.Addr(), "--namespace", "default", "--ca-file", caFile); err != nil {
		t.Fatal(err)
	}
	// TLS without the token: the hub says who is missing.
	if _, _, err := run(t, "", "get", "ns"); err == nil || !strings.Contains(err.Error(), "Unauthenticated") && !strings.Contains(err.Error(), "credential") {
		t.Errorf("get without a token: %v", err)
	}
	if _, _, err := run(t, "", "context", "set", "mine", "--server", h.Addr(), "--namespace", "default", "--ca-file", caFile, "--token", token); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "", "context", "list")
	if err != nil || !strings.Contains(out, "*") || !strings.Contains(out, h.Addr()) {
		t.Errorf("context list: %v\n%s", err, out)
	}
	// No --server: the current context is used.
	if _, _, err := run(t, "", "get", "ns"); err != nil {
		t.Errorf("get through the context: %v", err)
	}
	if _, _, err := run(t, "", "context", "use", "nope"); err == nil {
		t.Error("use of a missing context succeeded")
	}
}

func TestHubConfigPrecedenceAndUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1111\nlog-level: warn\ndata-dir: /from/file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := hub.DefaultConfig()
	cmd := newHubCommand()
	t.Setenv("MERIDIAN_LOG_LEVEL", "debug")
	if err := cmd.ParseFlags([]string{"--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if err := loadConfig(cmd, file, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:1111" || cfg.LogLevel != "debug" || cfg.DataDir != "/from/flag" {
		t.Errorf("precedence file < env < flag broken: %+v", cfg)
	}
	if err := os.WriteFile(file, []byte("listn: 127.0.0.1:1111\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := loadConfig(newHubCommand(), file, &cfg)
	if err == nil || !strings.Contains(err.Error(), "unknown keys listn") {
		t.Errorf("unknown key: %v", err)
	}
	_, _, err = run(t, "", "hub", "--listen", "nonsense", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "listen:") {
		t.Errorf("invalid flag value: %v", err)
	}
}

func TestGetSeveralKinds(t *testing.T) {
	startHub(t)
	if _, errOut, err := run(t, "", "apply", "-f", good); err != nil {
		t.Fatalf("apply: %v %s", err, errOut)
	}
	out, _, err := run(t, "", "get", "deploy,svc,cm", "-n", "demo")
	if err != nil || !strings.Contains(out, "UP-TO-DATE") || !strings.Contains(out, "PORT(S)") || !strings.Contains(out, "DATA") {
		t.Errorf("get deploy,svc,cm: %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "get", "deploy,nope"); err == nil || !strings.Contains(err.Error(), `unknown kind "nope"`) {
		t.Errorf("get with a bad kind in a list: %v", err)
	}
}

func TestPodStatusWordIsWhatKubectlShows(t *testing.T) {
	ts := timestamppb.Now()
	for _, tc := range []struct {
		pod  *meridianv1.Pod
		want string
	}{
		{&meridianv1.Pod{Status: &meridianv1.PodStatus{Phase: "Running"}}, "Running"},
		{&meridianv1.Pod{Status: &meridianv1.PodStatus{Phase: "Running", ContainerStatuses: []*meridianv1.ContainerStatus{{State: "Waiting", Reason: "CrashLoopBackOff"}}}}, "CrashLoopBackOff"},
		{&meridianv1.Pod{Status: &meridianv1.PodStatus{Phase: "Pending", ContainerStatuses: []*meridianv1.ContainerStatus{{State: "Waiting", Reason: "ImageNotSupported"}}}}, "ImageNotSupported"},
		{&meridianv1.Pod{Status: &meridianv1.PodStatus{Phase: "Pending", Reason: "CreateContainerConfigError"}}, "CreateContainerConfigError"},
		{&meridianv1.Pod{Status: &meridianv1.PodStatus{Phase: "Succeeded", ContainerStatuses: []*meridianv1.ContainerStatus{{State: "Terminated", Reason: "Completed"}}}}, "Succeeded"},
		{&meridianv1.Pod{Metadata: &meridianv1.ObjectMeta{DeletionTimestamp: ts}, Status: &meridianv1.PodStatus{Phase: "Running"}}, "Terminating"},
	} {
		if got := podStatusWord(tc.pod); got != tc.want {
			t.Errorf("podStatusWord(%v) = %q, want %q", tc.pod.GetStatus(), got, tc.want)
		}
	}
}

func TestTokensCordonAndTaint(t *testing.T) {
	startHub(t)
	out, _, err := run(t, "", "token", "create", "--ttl", "1h", "--for-cluster", "dc-a1", "--single-use", "--description", "for the test")
	if err != nil || !strings.Contains(out, "--join-token ") || !strings.Contains(out, "--hub-ca-pin sha256:") || !strings.Contains(out, "--name dc-a1") {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	id := strings.SplitN(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), ".", 2)[0]
	out, _, err = run(t, "", "token", "list")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "dc-a1") || !strings.Contains(out, "for the test") {
		t.Errorf("token list: %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "token", "revoke", id); err != nil {
		t.Errorf("token revoke: %v", err)
	}
	if out, _, _ := run(t, "", "token", "list"); strings.Contains(out, id) {
		t.Errorf("a revoked token is still listed:\n%s", out)
	}
	if _, _, err := run(t, "", "token", "create", "--ttl", "-1s"); err == nil || !strings.Contains(err.Error(), "--ttl") {
		t.Errorf("negative ttl: %v", err)
	}

	cluster := "apiVersion: meridian.io/v1\nkind: Cluster\nmetadata: {name: dc-b1}\nspec: {region: region-b, datacenter: dc-b1}\n"
	if _, errOut, err := run(t, cluster, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply cluster: %v %s", err, errOut)
	}
	if out, _, err := run(t, "", "cordon", "dc-b1"); err != nil || !strings.Contains(out, "cordoned") {
		t.Errorf("cordon: %v %s", err, out)
	}
	if out, _, _ := run(t, "", "get", "clusters", "-o", "wide"); !strings.Contains(out, "false (cordoned)") || !strings.Contains(out, "CPU(AVAIL/ALLOC)") {
		t.Errorf("get clusters -o wide after cordon:\n%s", out)
	}
	if out, _, err := run(t, "", "uncordon", "dc-b1"); err != nil || !strings.Contains(out, "uncordoned") {
		t.Errorf("uncordon: %v %s", err, out)
	}
	if _, _, err := run(t, "", "taint", "dc-b1", "maintenance=true:NoExecute", "dr=yes:NoSchedule"); err != nil {
		t.Fatalf("taint: %v", err)
	}
	out, _, _ = run(t, "", "get", "clusters", "-o", "wide")
	if !strings.Contains(out, "maintenance=true:NoExecute") || !strings.Contains(out, "dr=yes:NoSchedule") {
		t.Errorf("taints not shown:\n%s", out)
	}
	if _, _, err := run(t, "", "taint", "dc-b1", "maintenance:NoExecute-"); err != nil {
		t.Errorf("taint removal: %v", err)
	}
	if out, _, _ := run(t, "", "get", "clusters", "-o", "wide"); strings.Contains(out, "maintenance") || !strings.Contains(out, "dr=yes:NoSchedule") {
		t.Errorf("after removing one taint:\n%s", out)
	}
	for _, bad := range []string{"k=v:Sometimes", "=v:NoSchedule", "k=v"} {
		if _, _, err := run(t, "", "taint", "dc-b1", bad); err == nil || !strings.Contains(err.Error(), "taint") {
			t.Errorf("taint %q: %v", bad, err)
		}
	}
	if _, _, err := run(t, "", "taint", "dc-b1", "absent-"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("removing an absent taint: %v", err)
	}
	if _, _, err := run(t, "", "cordon", "nope"); err == nil {
		t.Error("cordon of a missing cluster succeeded")
	}
}
