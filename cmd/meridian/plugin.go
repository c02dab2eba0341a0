package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func newPluginCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Inspect the hub's placement pipeline and its plugins",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the placement pipeline and every plugin, built-in and out-of-process",
		Example: "  meridian plugin list\n" +
			"  meridian plugin list -o wide    # with path, checksum, calls and failures",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, _ := cmd.Flags().GetString("output")
			if out != "" && out != "wide" {
				return fmt.Errorf("--output: %q is not wide", out)
			}
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := meridianv1.NewPlacementServiceClient(c.conn).ListPlugins(ctx, &meridianv1.ListPluginsRequest{})
			if err != nil {
				return c.explain(err)
			}
			w := cmd.OutOrStdout()
			scorers := make([]string, len(resp.GetScorers()))
			for i, s := range resp.GetScorers() {
				scorers[i] = fmt.Sprintf("%s×%d", s.GetName(), s.GetWeight())
			}
			fmt.Fprintf(w, "Pipeline: filter [%s] → score [%s] → divide [%s]\n\n",
				strings.Join(resp.GetFilters(), ", "), strings.Join(scorers, ", "), strings.Join(resp.GetDivide(), ", "))
			tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
			head := "NAME\tTYPE\tEXTENSION POINTS\tSTATE\tVERSION\tRESTARTS\tFAILURE MODE\tTIMEOUT"
			if out == "wide" {
				head += "\tPID\tCALLS\tFAILURES\tSHA256\tPATH\tLAST ERROR"
			}
			fmt.Fprintln(tw, head)
			for _, p := range resp.GetPlugins() {
				typ, state, timeout := "built-in", "-", "-"
				if !p.GetBuiltin() {
					typ, state = "external", p.GetState()
					timeout = p.GetTimeout().AsDuration().String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", p.GetName(), typ, strings.Join(p.GetExtensionPoints(), ","), state,
					orNone(p.GetVersion()), p.GetRestarts(), orNone(p.GetFailureMode()), timeout)
				if out == "wide" {
					sum := p.GetSha256()
					if len(sum) > 12 {
						sum = sum[:12] + "…"
					}
					fmt.Fprintf(tw, "\t%d\t%d\t%d\t%s\t%s\t%s", p.GetPid(), p.GetCalls(), p.GetFailures(), orNone(sum), orNone(p.GetPath()), orNone(p.GetLastError()))
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringP("output", "o", "", "wide for more columns")
	cmd.AddCommand(list)
	return cmd
}
