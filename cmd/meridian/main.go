// Command meridian is the one binary of a Meridian federation: the hub, the
// member agent, the local dev federation and the client commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if !errors.As(err, &ee) || ee.msg != "" {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

// exitError ends the command with status 1 after the command has already
// reported its problems itself (msg may be empty).
type exitError struct{ msg string }

func (e exitError) Error() string { return e.msg }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "meridian",
		Short:         "Meridian: a federated multi-cluster manager",
		Long:          "Meridian places Kubernetes-shaped workloads across regions and datacenters, fails them over, and rehearses disasters.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cf := addClientFlags(root)
	root.AddCommand(
		newHubCommand(),
		newMemberCommand(),
		newLogsCommand(cf),
		newRolloutCommand(cf),
		newFailbackCommand(cf),
		newDrillCommand(cf),
		newDevCommand(cf),
		newApplyCommand(cf),
		newGetCommand(cf),
		newDescribeCommand(cf),
		newDeleteCommand(cf),
		newContextCommand(cf),
		newTokenCommand(cf),
		newCordonCommand(cf, true),
		newCordonCommand(cf, false),
		newTaintCommand(cf),
		newPluginCommand(cf),
		newGossipCommand(),
		newVersionCommand(),
		newFenceWatchdogCommand(),
	)
	return root
}
