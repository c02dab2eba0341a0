package fence_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-fed/meridian/member/controller"
	"github.com/meridian-fed/meridian/member/fence"
	"github.com/meridian-fed/meridian/member/fence/watchdog"
	rtexec "github.com/meridian-fed/meridian/member/runtime/exec"
	"github.com/meridian-fed/meridian/member/store"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// The watchdog hook lists the process groups of fenced pods only, lets a
// fenced pod's container start only under the lease with the watchdog
// running and its deadline ahead, and kills at once a process that started
// past the deadline.
func TestWatchdogHook(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	apply(t, st, &meridianv1.Namespace{ApiVersion: "v1", Kind: "Namespace", Metadata: &meridianv1.ObjectMeta{Name: "default"}})
	sel := &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	tmpl := &meridianv1.PodTemplateSpec{Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "main", Command: []string{"sleep", "1"}}}}}
	ssMeta := managed(nil)
	ssMeta.Name = "db"
	ss := apply(t, st, &meridianv1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet", Metadata: ssMeta,
		Spec: &meridianv1.StatefulSetSpec{ServiceName: "db", Selector: sel, Template: tmpl}})
	single := apply(t, st, podOf(ss, "1"))
	plain := apply(t, st, &meridianv1.Pod{ApiVersion: "v1", Kind: "Pod", Metadata: &meridianv1.ObjectMeta{Name: "plain", Namespace: "default"},
		Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{Name: "main", Command: []string{"sleep", "1"}}}}})
	ref := func(o interface {
		GetMetadata() *meridianv1.ObjectMeta
	}) rtexec.PodRef {
		m := o.GetMetadata()
		return rtexec.PodRef{UID: m.GetUid(), Namespace: m.GetNamespace(), Name: m.GetName()}
	}

	pub, err := watchdog.NewPublisher(filepath.Join(t.TempDir(), "fence.json"))
	if err != nil {
		t.Fatal(err)
	}
	inf := controller.NewInformerSet(st, nil)
	lease := &fakeLease{}
	running := true
	g := fence.New(lease, inf)
	h := g.WatchdogHook(inf, pub, func() bool { return running }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if !inf.WaitForSync(ctx) {
		t.Fatal("informers did not sync")
	}

	if err := h.Starting(ref(plain), "main"); err != nil {
		t.Errorf("a plain pod was refused without a lease: %v", err)
	}
	gone := rtexec.PodRef{UID: "gone", Namespace: "default", Name: "gone"}
	for _, r := range []rtexec.PodRef{ref(single), gone} {
		if err := h.Starting(r, "main"); err == nil || !strings.Contains(err.Error(), "fenced") {
			t.Errorf("%s: started without a lease (err %v)", r.Name, err)
		}
	}
	lease.mu.Lock()
	lease.held = true
	lease.mu.Unlock()
	if err := h.Starting(ref(single), "main"); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("started with no deadline published (err %v)", err)
	}
	if err := pub.Extend(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := h.Starting(ref(single), "main"); err != nil {
		t.Errorf("refused under the lease: %v", err)
	}
	running = false
	if err := h.Starting(ref(single), "main"); err == nil || !strings.Contains(err.Error(), "watchdog does not run") {
		t.Errorf("started without a watchdog (err %v)", err)
	}
	running = true

	h.Started(ref(plain), "main", 1001, 1)
	h.Started(ref(single), "main", 1002, 2)
	h.Started(gone, "main", 1003, 3)
	if gs := pub.Groups(); len(gs) != 2 || gs[0].PGID != 1002 || gs[1].PGID != 1003 || gs[0].Pod != "default/db-0" {
		t.Errorf("listed %+v, want the singleton's (1002) and the unknown pod's (1003)", gs)
	}
	h.Exited(ref(single), "main", 1002)
	h.Exited(gone, "main", 1003)
	if gs := pub.Groups(); len(gs) != 0 {
		t.Errorf("still listed after Exited: %+v", gs)
	}

	// Started past the deadline (the agent was paused after Starting): killed.
	late, err := watchdog.NewPublisher(filepath.Join(t.TempDir(), "late.json"))
	if err != nil {
		t.Fatal(err)
	}
	h = g.WatchdogHook(inf, late, func() bool { return true }, nil)
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	start, _ := watchdog.StartTime(cmd.Process.Pid)
	h.Started(ref(single), "main", cmd.Process.Pid, start)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a process started past the deadline was not killed")
	}
}
