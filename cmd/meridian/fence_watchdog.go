package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/member/fence/watchdog"
)

// newFenceWatchdogCommand is the hidden `meridian fence-watchdog`: the
// member agent's fence watchdog process (member/fence/watchdog). The agent
// starts it itself (the watchdog package's init runs it from the
// environment the agent sets); the command runs one by hand.
func newFenceWatchdogCommand() *cobra.Command {
	var state string
	var parent int
	var poll time.Duration
	cmd := &cobra.Command{
		Use:    "fence-watchdog --state FILE",
		Short:  "Kill a member's fenced pods when the agent misses their deadline (started by the member)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state == "" {
				return errors.New("--state is required")
			}
			if code := watchdog.Main(state, parent, poll, os.Stderr); code != 0 {
				return exitError{}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "the state file the member agent publishes")
	f.IntVar(&parent, "parent", 0, "the agent's PID: exit when the parent process is another (default: the parent at start)")
	f.DurationVar(&poll, "poll", watchdog.DefaultPoll, "how often to read the state file")
	return cmd
}
