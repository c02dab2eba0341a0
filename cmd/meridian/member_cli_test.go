package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member"
)

func startMember(t *testing.T) *member.Member {
	t.Helper()
	cfg := member.DefaultConfig()
	cfg.Standalone = true
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPListen = ""
	cfg.PodCIDR = "127.91.0.0/16"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := member.Start(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	t.Setenv("MERIDIAN_CLIENT_CONFIG", filepath.Join(t.TempDir(), "client.yaml"))
	t.Setenv("MERIDIAN_SERVER", m.Addr())
	t.Setenv("MERIDIAN_INSECURE", "1")
	return m
}

func deployYAML(greeting string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 1
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: ["sh", "-c", "echo ` + greeting + `; exec sleep 3600"]
`
}

func waitCLI(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLogsAndRollout(t *testing.T) {
	startMember(t)
	if _, errOut, err := run(t, deployYAML("hello-v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v %s", err, errOut)
	}
	if out, _, err := run(t, "", "rollout", "status", "deploy/hello", "--timeout", "30s"); err != nil || !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	pod := func() string {
		out, _, _ := run(t, "", "get", "pods", "-l", "app=hello", "-o", "name")
		names := strings.Fields(out)
		if len(names) != 1 {
			return ""
		}
		return strings.TrimPrefix(names[0], "pod/")
	}
	waitCLI(t, "the pod's log", func() bool {
		p := pod()
		if p == "" {
			return false
		}
		out, _, err := run(t, "", "logs", p)
		return err == nil && strings.Contains(out, "hello-v1")
	})

	if _, _, err := run(t, deployYAML("hello-v2"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, "", "rollout", "status", "deploy/hello", "--timeout", "30s"); err != nil {
		t.Fatalf("rollout status v2: %v\n%s", err, out)
	}
	out, _, err := run(t, "", "rollout", "history", "deploy/hello")
	if err != nil || !strings.Contains(out, "REVISION") || strings.Count(out, "hello-") < 2 {
		t.Fatalf("rollout history: %v\n%s", err, out)
	}
	if out, _, err := run(t, "", "rollout", "undo", "deploy/hello"); err != nil || !strings.Contains(out, "rolled back") {
		t.Fatalf("rollout undo: %v\n%s", err, out)
	}
	out, _, err = run(t, "", "get", "deploy", "hello", "-o", "yaml")
	if err != nil || !strings.Contains(out, "hello-v1") || strings.Contains(out, "hello-v2") {
		t.Fatalf("after undo the template should be v1 again: %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "rollout", "undo", "deploy/hello", "--to-revision", "99"); err == nil || !strings.Contains(err.Error(), "--to-revision") {
		t.Errorf("undo to a missing revision: %v", err)
	}
	if _, _, err := run(t, "", "logs", "nope"); err == nil || !strings.Contains(err.Error(), `pod "nope" not found`) {
		t.Errorf("logs of a missing pod: %v", err)
	}
}

func TestMemberConfigErrorsNameTheFlag(t *testing.T) {
	_, _, err := run(t, "", "member", "--data-dir", t.TempDir(), "--pod-cidr", "10.0.0.0/8", "--runtime", "docker",
		"--join-token", "abc.def", "--labels", "tier=gold,bad key=x", "--gossip-listen", "127.0.0.1:0")
	if err == nil {
		t.Fatal("invalid member configuration accepted")
	}
	for _, key := range []string{"hub:", "pod-cidr:", "runtime:", "labels:", "gossip-key:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	_, _, err = run(t, "", "member", "--data-dir", t.TempDir(), "--hub", "127.0.0.1:1", "--join-token", "abc.def", "--standalone")
	for _, key := range []string{"standalone:", "hub-ca-pin:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}
