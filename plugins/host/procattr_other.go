//go:build !linux

package host

import "os/exec"

// setParentDeathSignal does nothing outside Linux: there, only Close (and
// go-plugin's own cleanup) stops plugin processes.
func setParentDeathSignal(*exec.Cmd) {}
