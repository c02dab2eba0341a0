package host

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the plugin if the hub dies
// without closing the host (kill -9, a crash): a plugin must not outlive
// its hub. Linux delivers the signal when the thread that started the
// process exits; Go retires threads only when a goroutine locked to one
// exits, which the hub does not do, and a spurious kill would only cost a
// restart.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
