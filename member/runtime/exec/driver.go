// Package exec is the runtime driver that runs each container's command as a
// real process on the member's machine.
//
// Every pod gets a directory, <RootDir>/pods/<uid>/, which is the working
// directory of its containers (unless they name another), holds the files of
// its ConfigMap and Secret volumes, one log file per container under logs/,
// and one <container>.pid file per running container. Each container runs in
// its own process group, started with Pdeathsig=SIGKILL from a dedicated
// thread, so that nothing outlives the agent; CleanupOrphans kills what a
// previous agent left behind anyway (grandchildren do not get the death
// signal).
//
// Processes started here do not survive an agent restart, so there is
// nothing to adopt: after a restart Pods is empty and the agent starts the
// pods again (their logs are appended to).
package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
	"google.golang.org/protobuf/proto"
)

// Name is the driver's name, as returned by Name.
const Name = "exec"

// Config configures a Driver. The zero value of every field but RootDir
// means its default.
type Config struct {
	// RootDir holds the pods' directories, <RootDir>/pods/<uid>. Required.
	RootDir string
	// BackoffBase is the crash-loop delay before a container's second
	// consecutive restart (the first is immediate); later delays double.
	// Default 10 s, as the kubelet.
	BackoffBase time.Duration
	// BackoffCap is the longest crash-loop delay. Default 5 min, as the
	// kubelet.
	BackoffCap time.Duration
	// BackoffReset is how long a container must run for its back-off to be
	// forgotten when it exits. Default 10 min, as the kubelet.
	BackoffReset time.Duration
	// ProbeSecond is how long one second of a probe's fields lasts
	// (initialDelaySeconds, periodSeconds, timeoutSeconds). Default 1 s;
	// tests shorten it because the API allows no period below 1 s.
	ProbeSecond time.Duration
	// ShutdownGrace bounds the grace period each pod gets when the driver is
	// closed, so that an agent shutting down is not held for 30 s per pod.
	// Default 10 s.
	ShutdownGrace time.Duration
	// BaseEnv is the environment every container starts from, as
	// NAME=value. Default: PATH, LANG, LC_ALL and TZ of the agent, so that
	// commands are found without leaking the agent's own settings.
	BaseEnv []string
	// OnChange, if set, is told about status changes (see
	// runtime.ChangeFunc).
	OnChange runtime.ChangeFunc
	// KeepPodDirs keeps a pod's directory (logs included) after Stop, for
	// debugging. By default Stop removes it.
	KeepPodDirs bool
	// Logger receives the driver's own diagnostics. Default: discarded.
	Logger *slog.Logger
	// Fence, if set, is asked before each container process starts and
	// told about each one started and ended. The member's fence watchdog
	// (member/fence/watchdog) lists the fenced pods' process groups
	// through it.
	Fence FenceHook
}

// PodRef names a pod for a FenceHook.
type PodRef struct {
	UID, Namespace, Name string
}

// FenceHook follows the driver's container processes. Its methods are
// called from the goroutine that runs the container, never with a lock of
// the driver held, and must not block for long.
type FenceHook interface {
	// Starting is called before a container process of pod starts; an
	// error keeps it from starting (the run fails with a StartError, as
	// when the command cannot be found).
	Starting(pod PodRef, container string) error
	// Started is called as soon as the process pid has started, before
	// anything else is done with it. pid is also its process group's ID,
	// and start its start time in clock ticks since boot (field 22 of
	// /proc/PID/stat; 0 if it could not be read).
	Started(pod PodRef, container string, pid int, start uint64)
	// Exited is called once the process and what it left in its group
	// have been killed or have exited.
	Exited(pod PodRef, container string, pid int)
}

func (c Config) withDefaults() Config {
	if c.BackoffBase == 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = 5 * time.Minute
	}
	if c.BackoffReset == 0 {
		c.BackoffReset = 10 * time.Minute
	}
	if c.ProbeSecond == 0 {
		c.ProbeSecond = time.Second
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.BaseEnv == nil {
		c.BaseEnv = defaultBaseEnv()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.RootDir == "":
		return errors.New("exec driver: RootDir is required")
	case c.BackoffBase < 0 || c.BackoffCap < 0 || c.BackoffReset < 0:
		return errors.New("exec driver: back-off durations must not be negative")
	case c.BackoffCap < c.BackoffBase:
		return fmt.Errorf("exec driver: BackoffCap %s is below BackoffBase %s", c.BackoffCap, c.BackoffBase)
	case c.ProbeSecond < 0 || c.ShutdownGrace < 0:
		return errors.New("exec driver: ProbeSecond and ShutdownGrace must not be negative")
	}
	return nil
}

// Driver runs pods as real processes. It implements runtime.Driver and is
// safe for concurrent use. Create it with New and release it with Close.
type Driver struct {
	cfg     Config
	podsDir string
	backoff runtime.Backoff
	// spawner starts every process; owned by the Driver, stopped by Close
	// after the last pod is gone.
	spawner *spawner
	// probeClient sends HTTP probes; safe for concurrent use.
	probeClient *http.Client

	mu sync.Mutex
	// pods holds the pods being run or stopped, by UID; guarded by mu.
	pods map[string]*pod
	// closed is set by Close; guarded by mu.
	closed bool
}

var _ runtime.Driver = (*Driver)(nil)

// New validates cfg, creates <RootDir>/pods and returns a running driver.
func New(cfg Config) (*Driver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve root dir %s: %w", cfg.RootDir, err)
	}
	podsDir := filepath.Join(root, "pods")
	if err := os.MkdirAll(podsDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create pods dir: %w", err)
	}
	return &Driver{
		cfg:         cfg,
		podsDir:     podsDir,
		backoff:     runtime.Backoff{Base: cfg.BackoffBase, Cap: cfg.BackoffCap},
		spawner:     newSpawner(),
		probeClient: newProbeClient(),
		pods:        make(map[string]*pod),
	}, nil
}

// Name returns "exec".
func (d *Driver) Name() string { return Name }

// Start implements runtime.Driver: it creates the pod's directory, writes
// req.Files there, and starts the pod's containers in the background.
func (d *Driver) Start(ctx context.Context, req *runtime.PodRequest) error {
	if err := runtime.ValidateRequest(req); err != nil {
		return err
	}
	for rel := range req.Files {
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("%w: file path %q must be relative and stay inside the pod directory", runtime.ErrInvalidPod, rel)
		}
	}
	p := newPod(req, filepath.Join(d.podsDir, req.UID))

	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		return runtime.ErrClosed
	case d.pods[req.UID] != nil:
		d.mu.Unlock()
		return fmt.Errorf("failed to start pod %s: %w", req.UID, runtime.ErrPodExists)
	}
	d.pods[req.UID] = p
	d.mu.Unlock()

	if err := d.prepare(ctx, p, req.Files); err != nil {
		d.mu.Lock()
		if d.pods[req.UID] == p {
			delete(d.pods, req.UID)
		}
		d.mu.Unlock()
		close(p.done) // nobody will run it; Close and Stop may be waiting
		return err
	}
	go d.runPod(p)
	d.changed(req.UID)
	return nil
}

// prepare creates the pod's directories and files.
func (d *Driver) prepare(ctx context.Context, p *pod, files map[string][]byte) error {
	if err := os.MkdirAll(filepath.Join(p.dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("failed to create pod dir: %w", err)
	}
	// Sorted so that a failure is reported the same way every time.
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("failed to write pod files: %w", err)
		}
		path := filepath.Join(p.dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("failed to create dir for %s: %w", rel, err)
		}
		if err := os.WriteFile(path, files[rel], 0o640); err != nil {
			return fmt.Errorf("failed to write %s: %w", rel, err)
		}
	}
	return nil
}

// Stop implements runtime.Driver. Unless Config.KeepPodDirs is set, the
// pod's directory, logs included, is removed once its processes are gone.
// Calling Stop again for a pod already stopping can shorten its grace
// period (Close does so too), never lengthen it.
func (d *Driver) Stop(ctx context.Context, uid string, grace time.Duration) error {
	d.mu.Lock()
	p := d.pods[uid]
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	p.requestStop(runtime.GracePeriod(p.req.spec, grace))
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("failed to stop pod %s: %w", uid, ctx.Err())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pods[uid] != p {
		return nil // another Stop finished first
	}
	delete(d.pods, uid)
	// Removed under mu so that a Start of the same UID cannot create the
	// directory in between.
	if !d.cfg.KeepPodDirs {
		if err := os.RemoveAll(p.dir); err != nil {
			return fmt.Errorf("failed to remove pod dir of %s: %w", uid, err)
		}
	}
	return nil
}

// Status implements runtime.Driver.
func (d *Driver) Status(uid string) (*meridianv1.PodStatus, bool) {
	d.mu.Lock()
	p := d.pods[uid]
	d.mu.Unlock()
	if p == nil {
		return nil, false
	}
	return p.status(), true
}

// Pods implements runtime.Driver.
func (d *Driver) Pods() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.pods))
}

// Close implements runtime.Driver: it stops every pod, giving each at most
// Config.ShutdownGrace, waits for every process to exit, and stops the
// spawner thread.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	pods := make([]*pod, 0, len(d.pods))
	for _, p := range d.pods {
		pods = append(pods, p)
	}
	d.mu.Unlock()

	for _, p := range pods {
		p.requestStop(min(runtime.GracePeriod(p.req.spec, -1), d.cfg.ShutdownGrace))
	}
	for _, p := range pods {
		<-p.done
	}
	d.spawner.close()
	d.mu.Lock()
	clear(d.pods)
	d.mu.Unlock()
	return nil
}

// PodDir returns the directory of the pod with this UID, which is also its
// containers' default working directory and HOME.
func (d *Driver) PodDir(uid string) (string, error) {
	if err := runtime.CheckName(uid); err != nil {
		return "", fmt.Errorf("invalid pod uid: %w", err)
	}
	return filepath.Join(d.podsDir, uid), nil
}

// LogPath returns the log file of a container: stdout and stderr of every
// run, appended, each run starting with a marker line. The file may not
// exist yet.
func (d *Driver) LogPath(uid, container string) (string, error) {
	dir, err := d.PodDir(uid)
	if err != nil {
		return "", err
	}
	if err := runtime.CheckName(container); err != nil {
		return "", fmt.Errorf("invalid container name: %w", err)
	}
	return logPath(dir, container), nil
}

func logPath(podDir, container string) string {
	return filepath.Join(podDir, "logs", container+".log")
}

func pidPath(podDir, container string) string {
	return filepath.Join(podDir, container+".pid")
}

// changed tells Config.OnChange about uid. Never called with a lock held.
func (d *Driver) changed(uid string) {
	if d.cfg.OnChange != nil {
		d.cfg.OnChange(uid)
	}
}

// update applies fn to p's state under p.mu, then reports the change.
func (d *Driver) update(p *pod, fn func()) {
	p.mu.Lock()
	fn()
	p.noteReadyLocked(time.Now())
	p.mu.Unlock()
	d.changed(p.req.uid)
}

// cloneSpec copies a spec so that the caller may change theirs.
func cloneSpec(s *meridianv1.PodSpec) *meridianv1.PodSpec {
	c, ok := proto.Clone(s).(*meridianv1.PodSpec)
	if !ok {
		return &meridianv1.PodSpec{}
	}
	return c
}
