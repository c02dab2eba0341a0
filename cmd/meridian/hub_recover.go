package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/hub"
)

// stdinIsTerminal reports whether standard input is a terminal, where an
// operator can type a confirmation. A variable, for tests.
var stdinIsTerminal = func() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newHubRecoverCommand() *cobra.Command {
	var (
		configFile string
		yes        bool
	)
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Turn a surviving hub node into a writable single-node hub after the loss of the majority",
		Long: `Recover a hub that lost the majority of its nodes for good (e.g. two of three, the
whole majority region). The survivor has no etcd quorum: it serves no read or write, while
the members keep running what they run.

Stop the surviving node, then run recover on its data with the same settings (the same
--config, or --data-dir, --etcd-name, --etcd-peer-url, --etcd-client-url) it ran with:

  meridian hub recover --data-dir /var/lib/meridian/hub --etcd-name dc-b1 \
      --etcd-peer-url http://10.0.3.1:7703 --etcd-client-url http://10.0.3.1:7702

It shows the membership it found and what it will drop, asks you to type the node's name
(or takes --yes; without a terminal and without --yes it refuses), restarts the node's etcd
once with etcd's force-new-cluster so that this node is the only member, keeping every
object, the CA, the tokens and the members' Cluster objects, checks that it accepts a
write, and exits. Then start ` + "`meridian hub`" + ` on the same data as a single node (drop
--etcd-initial-cluster, or list this node alone); members reconnect with their
certificates and resume. Add new nodes with ` + "`meridian hub add-node`" + `.

What is lost: writes the lost nodes acknowledged that had not reached this node.
Never start the lost nodes again on their old data: wipe their data-dir and add them
back as new nodes. See docs/disaster-recovery.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := hub.DefaultConfig()
			if err := loadConfig(cmd, configFile, &cfg, "plugins", "placement"); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			confirm := func(plan hub.RecoverPlan) error {
				describeRecovery(out, plan)
				if yes {
					fmt.Fprintln(out, "Confirmed with --yes.")
					return nil
				}
				if !stdinIsTerminal() {
					return errors.New("refusing to recover without a confirmation: standard input is not a terminal; pass --yes to confirm (nothing was changed)")
				}
				fmt.Fprintf(out, "Type the node name (%s) to go ahead: ", plan.Node.Name)
				return readConfirmation(cmd.InOrStdin(), plan.Node.Name)
			}
			res, err := hub.Recover(cmd.Context(), hub.RecoverOptions{Config: cfg, Confirm: confirm, Log: newLogger(cfg.LogLevel)})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, `Recovered: %s is now the only member of hub %s (revision %d, etcd restart took %s).
Next:
  1. Start the hub on this data as a single node, with the same addresses and without
     --etcd-initial-cluster (or with %s=%s alone):
       meridian hub --data-dir %s --etcd-name %s --etcd-peer-url %s --etcd-client-url %s ...
     Members reconnect to it with their certificates and resume where they were.
  2. Wipe the data-dir of every removed node before it runs again, then add it back, one at a time:
       meridian hub add-node NAME --peer-url http://HOST:7703 --etcd-endpoints %s
`, res.Plan.Node.Name, res.HubID, res.Revision, res.Took.Round(1e6),
				cfg.EtcdName, cfg.EtcdPeerURL, cfg.DataDir, cfg.EtcdName, cfg.EtcdPeerURL, cfg.EtcdClientURL, cfg.EtcdClientURL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the node's config file (YAML), as for `meridian hub`")
	f.BoolVar(&yes, "yes", false, "confirm without a prompt (the other nodes are dropped from the hub)")
	addHubFlags(f, hub.DefaultConfig())
	return cmd
}

// describeRecovery tells the operator what recover found and will do.
func describeRecovery(w io.Writer, plan hub.RecoverPlan) {
	fmt.Fprintf(w, "Hub data in %s.\n  keep:   %s (this node; it becomes the only member)\n", plan.DataDir, plan.Node)
	if len(plan.Removed) == 0 {
		fmt.Fprintln(w, "  remove: none (already a single-node cluster)")
	}
	for _, m := range plan.Removed {
		fmt.Fprintf(w, "  remove: %s\n", m)
	}
	fmt.Fprintf(w, `This restarts the node's etcd once with force-new-cluster: the membership becomes
%s alone; every object, the CA, the tokens and the Cluster objects are kept, and so is the
hub ID. Writes that the removed nodes acknowledged and %s had not received are LOST.
The removed nodes must NEVER start again on their old data: wipe it, then add them back
as new nodes (meridian hub add-node).
`, plan.Node.Name, plan.Node.Name)
}

// readConfirmation reads one line and accepts it only if it is want.
func readConfirmation(r io.Reader, want string) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return fmt.Errorf("failed to read the confirmation: %w (nothing was changed)", err)
	}
	if got := strings.TrimSpace(line); got != want {
		return fmt.Errorf("confirmation %q is not the node name %q: nothing was changed", got, want)
	}
	return nil
}

func newHubAddNodeCommand() *cobra.Command {
	var (
		peerURL   string
		endpoints []string
	)
	cmd := &cobra.Command{
		Use:   "add-node NAME",
		Short: "Add a new, empty node to a running hub's embedded etcd cluster",
		Long: `Add a new node to a running hub (after ` + "`meridian hub recover`" + `, or to grow it),
through the etcd client URL of any current node. It registers the node with etcd and prints
how to start it: on an EMPTY data-dir, with the printed --etcd-initial-cluster and
--etcd-initial-cluster-state existing. Start it right away — until it has joined, the grown
cluster counts it in its quorum (one survivor plus one new node needs both to write). Add
nodes one at a time.

  meridian hub add-node dc-a1 --peer-url http://10.0.1.1:7703 --etcd-endpoints http://10.0.3.1:7702`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if peerURL == "" {
				return errors.New("peer-url: required: the new node's etcd peer URL (its --etcd-peer-url)")
			}
			if len(endpoints) == 0 {
				return errors.New("etcd-endpoints: required: the etcd client URL of a running hub node (its --etcd-client-url)")
			}
			initial, err := hub.AddNode(cmd.Context(), endpoints, args[0], peerURL)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), `Added %s to the hub's etcd cluster. Start it now, on an empty data-dir:
  meridian hub --data-dir DIR --etcd-name %s --etcd-peer-url %s --etcd-client-url URL \
      --etcd-initial-cluster %s --etcd-initial-cluster-state existing ...
`, args[0], args[0], peerURL, initial)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&peerURL, "peer-url", "", "the new node's etcd peer URL")
	f.StringSliceVar(&endpoints, "etcd-endpoints", nil, "etcd client URL(s) of running hub nodes")
	return cmd
}
