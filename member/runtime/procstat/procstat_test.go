package procstat

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	// The command name holds spaces and a ')'.
	line := "4242 (we ird) (x) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parse(4242, line)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stat{PID: 4242, State: 'S', Pgrp: 4240, StartTime: 987654}) {
		t.Errorf("parse = %+v", st)
	}
	for _, bad := range []string{"", "4242 (x S 1", "4242 (x) S 1 2", "4242 (x) S 1 x 4240 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 5 0"} {
		if _, err := parse(4242, bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestReadRealProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	st, err := Read(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pgrp != cmd.Process.Pid || st.Zombie() || st.StartTime == 0 {
		t.Errorf("sleep: %+v", st)
	}
	self, err := Read(os.Getpid())
	if err != nil || self.Pgrp == cmd.Process.Pid || self.StartTime > st.StartTime {
		t.Errorf("self: %+v %v", self, err)
	}
	if _, err := Read(1 << 30); err == nil {
		t.Error("a pid that does not exist was read")
	}
}
