package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub"
	"github.com/meridian-fed/meridian/hub/hubtest"
)

// TestHubRecoverConfirmation runs `meridian hub recover` on a single-node
// hub's data: refused while the hub runs on it, refused without a terminal
// and without --yes, refused on a wrong name, done on the right one.
func TestHubRecoverConfirmation(t *testing.T) {
	cfg := hubtest.Config(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := hub.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"hub", "recover", "--data-dir", cfg.DataDir, "--etcd-name", cfg.EtcdName,
		"--etcd-peer-url", cfg.EtcdPeerURL, "--etcd-client-url", cfg.EtcdClientURL, "--log-level", "error"}
	if _, _, err := run(t, "", append(args, "--yes")...); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("recover while the hub runs on the data: %v, want a refusal saying it is in use", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	terminal := false
	old := stdinIsTerminal
	stdinIsTerminal = func() bool { return terminal }
	t.Cleanup(func() { stdinIsTerminal = old })
	if _, _, err := run(t, "", args...); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("recover without a terminal or --yes: %v, want a refusal naming --yes", err)
	}
	terminal = true
	if _, _, err := run(t, "dc-a1\n", args...); err == nil || !strings.Contains(err.Error(), "not the node name") {
		t.Errorf("recover confirmed with another name: %v", err)
	}
	bad := append([]string(nil), args...)
	bad[5] = "nobody"
	if _, _, err := run(t, "nobody\n", bad...); err == nil || !strings.Contains(err.Error(), "etcd-name") {
		t.Errorf("recover with an unknown etcd-name: %v", err)
	}
	out, _, err := run(t, cfg.EtcdName+"\n", args...)
	if err != nil || !strings.Contains(out, "Recovered: "+cfg.EtcdName) || !strings.Contains(out, "remove: none") {
		t.Fatalf("recover confirmed by name: %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "hub", "add-node", "dc-a2", "--etcd-endpoints", cfg.EtcdClientURL); err == nil || !strings.Contains(err.Error(), "peer-url") {
		t.Errorf("add-node without --peer-url: %v", err)
	}
}
