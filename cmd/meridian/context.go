package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newContextCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Manage the client context file (which server the client talks to)",
	}
	var server, namespace string
	set := &cobra.Command{
		Use:   "set NAME --server ADDR [--namespace NS]",
		Short: "Add or change a context and make it current",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "" {
				return errors.New("--server: required (host:port of a hub or member API)")
			}
			path, err := cf.path()
			if err != nil {
				return err
			}
			cc, err := readClientConfig(path)
			if err != nil {
				return err
			}
			cc.upsert(ClientContext{Name: args[0], Server: server, Namespace: namespace})
			if err := writeClientConfig(path, cc); err != nil {
				return fmt.Errorf("failed to write %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q set and current (%s)\n", args[0], path)
			return nil
		},
	}
	// The root's persistent --server/--namespace would shadow these; read them from the root flags instead.
	set.PreRun = func(*cobra.Command, []string) { server, namespace = cf.server, cf.namespace }

	use := &cobra.Command{
		Use:   "use NAME",
		Short: "Make a context current",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := cf.path()
			if err != nil {
				return err
			}
			cc, err := readClientConfig(path)
			if err != nil {
				return err
			}
			if _, ok := cc.find(args[0]); !ok {
				return fmt.Errorf("no context %q in %s (see `meridian context list`)", args[0], path)
			}
			cc.CurrentContext = args[0]
			if err := writeClientConfig(path, cc); err != nil {
				return fmt.Errorf("failed to write %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "switched to context %q\n", args[0])
			return nil
		},
	}
	lst := &cobra.Command{
		Use:   "list",
		Short: "List the contexts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := cf.path()
			if err != nil {
				return err
			}
			cc, err := readClientConfig(path)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tNAMESPACE")
			for _, c := range cc.Contexts {
				cur := ""
				if c.Name == cc.CurrentContext {
					cur = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cur, c.Name, c.Server, c.Namespace)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(set, use, lst)
	return cmd
}
