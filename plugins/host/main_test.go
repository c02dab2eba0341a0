package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/policies/framework"
)

// bins are the plugin executables the tests run, built once by TestMain.
var bins struct {
	residency, costaware string
	// testplugin misbehaves on request; testpluginV2 claims API v2 only.
	testplugin, testpluginV2 string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meridian-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildPlugins(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildPlugins builds the example plugins and the test plugin into dir,
// from their paths relative to this package's directory (where go test
// runs).
func buildPlugins(dir string) error {
	build := func(args ...string) error {
		cmd := exec.Command("go", append([]string{"build"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("failed to build the test plugins (go build %v): %w\n%s", args, err, out)
		}
		return nil
	}
	if err := build("-o", dir+string(filepath.Separator), "../examples/residency", "../examples/costaware", "./internal/testplugin"); err != nil {
		return err
	}
	bins.residency = filepath.Join(dir, "residency")
	bins.costaware = filepath.Join(dir, "costaware")
	bins.testplugin = filepath.Join(dir, "testplugin")
	bins.testpluginV2 = filepath.Join(dir, "testplugin-v2")
	return build("-ldflags", "-X main.apiVersion=v2", "-o", bins.testpluginV2, "./internal/testplugin")
}

// sha256Of returns the hex SHA-256 of the file at path.
func sha256Of(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// testTimeout is the per-call deadline of the tests' plugins unless a test
// sets its own: they answer in well under a millisecond, but a loaded
// machine running the race detector can stall a call past the production
// default, and a test expecting an answer must not get the failure mode.
const testTimeout = 5 * time.Second

// pluginConfig is a valid Config for the executable at path.
func pluginConfig(t testing.TB, name, path, config string) Config {
	return Config{Name: name, Path: path, SHA256: sha256Of(t, path), Config: []byte(config), Timeout: testTimeout}
}

// testLog collects a test's logs and prints them if the test fails. It
// outlives the test: go-plugin may log after Close returns.
func testLog(t testing.TB) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("host log:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ io.Writer = writerFunc(nil)

// newHost starts a host for the test and closes it when the test ends.
func newHost(t testing.TB, cfgs []Config, opts ...Option) *Host {
	t.Helper()
	h, err := New(cfgs, testLog(t), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func cluster(name, region string, labels map[string]string) *framework.Cluster {
	return &framework.Cluster{Name: name, Region: region, Datacenter: "dc-" + name, Labels: labels, Health: framework.HealthReady}
}

func snapshot(workloadLabels map[string]string, clusters ...*framework.Cluster) *framework.Snapshot {
	return &framework.Snapshot{
		Workload: &framework.Workload{Kind: "Deployment", Namespace: "default", Name: "web", UID: "uid-1", Labels: workloadLabels, Replicas: 3, Divisible: true},
		Clusters: clusters,
	}
}
