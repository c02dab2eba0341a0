package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/proto/meridian/pki"
)

func newContextCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Manage the client context file (which server the client talks to)",
	}
	var server, namespace, caFile, token string
	var plaintext bool
	set := &cobra.Command{
		Use:   "set NAME --server ADDR [--namespace NS] (--ca-file FILE [--token TOKEN] | --insecure)",
		Short: "Add or change a context and make it current",
		Long: `Add or change a context and make it current. A hub serves TLS: give the CA
certificate (<hub data-dir>/ca.crt) and an admin token (<hub data-dir>/admin.token
holds the first one). A member's local API is plaintext on loopback: --insecure.`,
		Args: cobra.ExactArgs(1),
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
			if caFile == "" && !plaintext {
				return errors.New("--ca-file: required for a hub (its <data-dir>/ca.crt); use --insecure for a member's local API")
			}
			if caFile != "" {
				abs, err := filepath.Abs(caFile)
				if err != nil {
					return fmt.Errorf("--ca-file: %w", err)
				}
				if _, err := os.Stat(abs); err != nil {
					return fmt.Errorf("--ca-file: %w", err)
				}
				caFile = abs
			}
			if token != "" {
				if _, err := pki.ParseToken(token); err != nil {
					return fmt.Errorf("--token: %w", err)
				}
			}
			cc.upsert(ClientContext{Name: args[0], Server: server, Namespace: namespace, CAFile: caFile, Token: token, Insecure: plaintext && caFile == ""})
			if err := writeClientConfig(path, cc); err != nil {
				return fmt.Errorf("failed to write %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q set and current (%s)\n", args[0], path)
			return nil
		},
	}
	// The root's persistent --server/--namespace would shadow these; read them from the root flags instead.
	set.PreRun = func(*cobra.Command, []string) {
		server, namespace, caFile, token, plaintext = cf.server, cf.namespace, cf.caFile, cf.token, cf.insecure
	}

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
			fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tNAMESPACE\tAUTH")
			for _, c := range cc.Contexts {
				cur := ""
				if c.Name == cc.CurrentContext {
					cur = "*"
				}
				auth := "tls"
				switch {
				case c.Insecure:
					auth = "plaintext"
				case c.Token != "":
					auth = "tls+token"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, c.Name, c.Server, c.Namespace, auth)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(set, use, lst)
	return cmd
}
