package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func newLogsCommand(cf *clientFlags) *cobra.Command {
	var container string
	var follow bool
	var tail int32
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [-f] [--tail N]",
		Short: "Print a container's log (from a member)",
		Example: `  meridian --server 127.0.0.1:7710 logs web-7d4f9-abcde
  meridian --server 127.0.0.1:7710 logs kv-0 -c kv -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			if !follow {
				var cancel func()
				ctx, cancel = c.call(ctx)
				defer cancel()
			}
			stream, err := meridianv1.NewLogServiceClient(c.conn).Logs(ctx, &meridianv1.LogsRequest{
				Namespace: c.namespace, Pod: args[0], Container: container, Follow: follow, TailLines: tail,
			})
			if err != nil {
				return c.explain(err)
			}
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) || (err != nil && cmd.Context().Err() != nil) {
					return nil
				}
				if err != nil {
					return c.explain(err)
				}
				writeAll(cmd.OutOrStdout(), chunk.GetData())
			}
		},
	}
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (needed when the pod has several)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().Int32Var(&tail, "tail", 0, "start with only the last N lines")
	return cmd
}
