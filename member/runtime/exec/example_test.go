package exec_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/meridian-fed/meridian/member/runtime"
	execdriver "github.com/meridian-fed/meridian/member/runtime/exec"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The life of an exec driver in an agent: clean up after the previous run,
// start a pod, follow its status, read its log, stop it, close.
func Example() {
	root, err := os.MkdirTemp("", "meridian-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)

	// A one-slot signal: a pending signal already covers a new change,
	// because the reader asks for the latest status after it wakes.
	changed := make(chan struct{}, 1)
	d, err := execdriver.New(execdriver.Config{
		RootDir: root,
		OnChange: func(string) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	if _, err := d.CleanupOrphans(); err != nil {
		fmt.Println(err)
	}

	err = d.Start(context.Background(), &runtime.PodRequest{
		UID: "0001", Namespace: "default", Name: "hello", PodIP: "127.1.0.2",
		Spec: &meridianv1.PodSpec{RestartPolicy: runtime.RestartNever, Containers: []*meridianv1.Container{{
			Name: "main", Command: []string{"echo"}, Args: []string{"hello from $(POD_NAME) at $(POD_IP)"},
		}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	deadline := time.After(10 * time.Second)
	for phase := ""; phase != runtime.PhaseSucceeded; {
		select {
		case <-changed:
			st, _ := d.Status("0001")
			phase = st.GetPhase()
		case <-deadline:
			fmt.Println("timed out")
			return
		}
	}
	path, _ := d.LogPath("0001", "main")
	log, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	fmt.Println(lines[len(lines)-1])
	if err := d.Stop(context.Background(), "0001", -1); err != nil {
		fmt.Println(err)
	}
	fmt.Println(d.Pods())
	// Output:
	// hello from hello at 127.1.0.2
	// []
}
