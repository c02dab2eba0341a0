package fence

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/fence/watchdog"
	"github.com/meridian-fed/meridian/member/runtime/exec"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// Fenced reports whether pod is a copy of a singleton the gate fences (a
// pod Allow may forbid).
func (g *Gate) Fenced(pod *meridianv1.Pod) bool {
	_, singleton := g.workloadOf(pod)
	return singleton
}

// WatchdogHook is the exec runtime's exec.FenceHook for the fence watchdog
// (member/fence/watchdog): it lists the process group of every container
// of a pod the gate fences with the watchdog's Publisher while it runs,
// and lets such a container start only while the gate allows its pod, the
// published deadline is ahead and the watchdog runs. The last check
// matters after the watchdog has killed a paused agent's pods: when the
// agent runs again, its driver sees the containers exit and would restart
// them at once, before the gate has stopped the pod.
type WatchdogHook struct {
	gate    *Gate
	pods    *controller.Informer
	pub     *watchdog.Publisher
	running func() bool
	log     *slog.Logger
}

var _ exec.FenceHook = (*WatchdogHook)(nil)

// WatchdogHook returns the hook over the watchdog's publisher; running
// tells whether the watchdog process runs. Like New, call it before the
// informers run.
func (g *Gate) WatchdogHook(informers *controller.InformerSet, pub *watchdog.Publisher, running func() bool, log *slog.Logger) *WatchdogHook {
	if log == nil {
		log = slog.Default()
	}
	return &WatchdogHook{gate: g, pods: informers.For(resource.MustLookup("Pod")), pub: pub, running: running, log: log}
}

// fenced looks the pod up and reports whether the gate fences it; a pod
// the cache does not hold (deleted meanwhile) counts as fenced.
func (h *WatchdogHook) fenced(ref exec.PodRef) (*meridianv1.Pod, bool) {
	obj, ok := h.pods.Get(ref.Namespace, ref.Name)
	if !ok || obj.GetMetadata().GetUid() != ref.UID {
		return nil, true
	}
	pod, ok := obj.(*meridianv1.Pod)
	if !ok {
		return nil, true
	}
	return pod, h.gate.Fenced(pod)
}

// Starting implements exec.FenceHook.
func (h *WatchdogHook) Starting(ref exec.PodRef, _ string) error {
	pod, fenced := h.fenced(ref)
	if !fenced {
		return nil
	}
	if pod != nil {
		if ok, reason := h.gate.Allow(pod); !ok {
			return fmt.Errorf("fenced: %s", reason)
		}
	} else if !h.gate.lease.Held() {
		return errors.New("fenced: the member holds no lease from the hub for its singletons")
	}
	if !h.running() {
		return errors.New("fenced: the fence watchdog does not run")
	}
	if left := h.pub.Remaining(); left <= 0 {
		return errors.New("fenced: the fence watchdog's deadline has passed")
	}
	return nil
}

// Started implements exec.FenceHook.
func (h *WatchdogHook) Started(ref exec.PodRef, container string, pid int, start uint64) {
	if _, fenced := h.fenced(ref); !fenced {
		return
	}
	if err := h.pub.Add(watchdog.Group{PGID: pid, Start: start, Pod: ref.Namespace + "/" + ref.Name, Container: container}); err != nil {
		h.log.Error("failed to list a fenced pod with the fence watchdog", "pod", ref.Namespace+"/"+ref.Name, "pid", pid, "err", err)
	}
	// Starting allowed it, but the agent may have been paused since, past
	// the deadline: then the process must not live on until the watchdog's
	// next look.
	if h.pub.Remaining() <= 0 {
		h.log.Warn("killing a fenced pod's process started past the fence deadline", "pod", ref.Namespace+"/"+ref.Name, "pid", pid)
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			h.log.Error("failed to kill a fenced pod's process", "pod", ref.Namespace+"/"+ref.Name, "pid", pid, "err", err)
		}
	}
}

// Exited implements exec.FenceHook.
func (h *WatchdogHook) Exited(_ exec.PodRef, _ string, pid int) {
	if err := h.pub.Remove(pid); err != nil {
		h.log.Error("failed to update the fence watchdog", "pid", pid, "err", err)
	}
}
