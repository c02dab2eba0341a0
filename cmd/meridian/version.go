package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/proto/meridian/version"
)

func buildVersion() string { return version.Version }

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "meridian %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
