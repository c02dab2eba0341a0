package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/hub/hubtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// meridianBinary builds ./cmd/meridian once per test run.
func meridianBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meridian-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "meridian")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/meridian").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort is hubtest.FreePort: outside the ephemeral range, so that no
// outgoing connection takes it before the process listens on it.
func freePort(t testing.TB) string {
	t.Helper()
	return strconv.Itoa(hubtest.FreePort(t))
}

// hubProcess is a `meridian hub` running as its own OS process.
type hubProcess struct {
	dataDir  string
	cmd      *exec.Cmd
	api      string
	httpAddr string
	done     chan error
}

func startHubProcess(t testing.TB, dataDir string, extra ...string) *hubProcess {
	t.Helper()
	p := &hubProcess{dataDir: dataDir, api: "127.0.0.1:" + freePort(t), httpAddr: "127.0.0.1:" + freePort(t), done: make(chan error, 1)}
	p.cmd = exec.Command(meridianBinary(t), append([]string{"hub",
		"--data-dir", dataDir,
		"--listen", p.api,
		"--http-listen", p.httpAddr,
		"--etcd-client-url", "http://127.0.0.1:" + freePort(t),
		"--etcd-peer-url", "http://127.0.0.1:" + freePort(t),
		"--log-level", "warn"}, extra...)...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	waitReady(t, p.httpAddr, p.done)
	return p
}

// stop sends SIGTERM and waits for an orderly exit.
func (p *hubProcess) stop(t testing.TB) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Error("hub did not stop within 20s of SIGTERM")
	}
}

// rssMiB reads the resident set size of a process from /proc.
func rssMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// runCLI runs the built binary as an administrator of the hub h.
func runCLI(t testing.TB, h *hubProcess, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := os.ReadFile(filepath.Join(h.dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("the hub wrote no admin token: %v", err)
	}
	cmd := exec.CommandContext(ctx, meridianBinary(t), append([]string{"--server", h.api}, args...)...)
	cmd.Env = append(os.Environ(), "MERIDIAN_CLIENT_CONFIG="+filepath.Join(t.TempDir(), "client.yaml"),
		"MERIDIAN_CA_FILE="+filepath.Join(h.dataDir, "ca.crt"), "MERIDIAN_TOKEN="+strings.TrimSpace(string(tok)))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
