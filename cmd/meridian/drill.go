package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/meridian-fed/meridian/hub/drill"
	"github.com/meridian-fed/meridian/hub/drill/report"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/storage"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var drillKind = resource.MustLookup("Drill")

// stdoutIsTerminal reports whether w is a terminal (a variable, for tests).
var stdoutIsTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newDrillCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Rehearse a disaster: test, planned or unplanned failover of a cluster, datacenter or region",
		Long: `Drills rehearse the failover of a scope (a cluster, a datacenter or a region) and
measure it against recovery objectives. The hub leader runs them; the Drill
object is the drill's state and, once it ends, its report. See docs/drills.md.

Modes: test (copies in an isolated namespace; production untouched), planned
(switchover: targets first, then the source drains; then back), unplanned
(the scope is marked failed for its workloads; the failover controller moves them;
then they come back).`,
	}
	cmd.AddCommand(newDrillRunCommand(cf), newDrillListCommand(cf), newDrillStatusCommand(cf),
		newDrillAbortCommand(cf), newDrillReportCommand(cf), newDrillOperatorTokenCommand(cf))
	return cmd
}

func newDrillRunCommand(cf *clientFlags) *cobra.Command {
	var scope, mode, rto, rpo, workloads, name string
	var wait, includeSingletons bool
	cmd := &cobra.Command{
		Use:   "run --scope cluster=X|datacenter=X|region=X --mode test|planned|unplanned",
		Short: "Start a drill",
		Example: `  meridian drill run --scope datacenter=dc-a1 --mode test --rto 30s --wait
  meridian drill run --scope region=region-a --mode planned --workloads tier=web --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := newDrill(name, scope, mode, rto, rpo, workloads, time.Now())
			if err != nil {
				return err
			}
			if includeSingletons && mode != drill.ModeTest {
				return fmt.Errorf("--include-singletons is for --mode test (planned and unplanned drills move singletons, fenced)")
			}
			d.Spec.IncludeSingletons = includeSingletons
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := c.call(cmd.Context())
			err = createDrill(ctx, c, d)
			cancel()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "drill %s created (%s, %s)\n", d.GetMetadata().GetName(), mode, scope)
			if !wait {
				return nil
			}
			return follow(cmd.Context(), c, d.GetMetadata().GetName(), out, stdoutIsTerminal(out))
		},
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", "", "what fails: cluster=NAME, datacenter=NAME or region=NAME (required)")
	f.StringVar(&mode, "mode", "test", "test, planned or unplanned")
	f.StringVar(&rto, "rto", "", "recovery time objective, such as 30s")
	f.StringVar(&rpo, "rpo", "", "recovery point objective, such as 0s")
	f.StringVar(&workloads, "workloads", "", "label selector of the workloads concerned (default: all in the scope)")
	f.StringVar(&name, "name", "", "drill name (default: SCOPE-MODE-TIME)")
	f.BoolVar(&wait, "wait", false, "follow the drill until it ends; exit status 1 unless it passes")
	f.BoolVar(&includeSingletons, "include-singletons", false, "test mode: copy singletons (StatefulSets, workloads annotated meridian.io/singleton) too; by default they are skipped, as their copies could write to production's storage")
	_ = cmd.MarkFlagRequired("scope")
	return cmd
}

// newDrill builds the Drill that `drill run` creates.
func newDrill(name, scope, mode, rto, rpo, workloads string, now time.Time) (*meridianv1.Drill, error) {
	key, val, ok := strings.Cut(scope, "=")
	sc := &meridianv1.DrillScope{}
	switch {
	case !ok || val == "":
		return nil, fmt.Errorf("--scope %q: give cluster=NAME, datacenter=NAME or region=NAME", scope)
	case key == "cluster":
		sc.Cluster = val
	case key == "datacenter" || key == "dc":
		sc.Datacenter = val
	case key == "region":
		sc.Region = val
	default:
		return nil, fmt.Errorf("--scope %q: give cluster=NAME, datacenter=NAME or region=NAME", scope)
	}
	switch mode {
	case drill.ModeTest, drill.ModePlanned, drill.ModeUnplanned:
	default:
		return nil, fmt.Errorf("--mode %q: give test, planned or unplanned", mode)
	}
	for flag, v := range map[string]string{"rto": rto, "rpo": rpo} {
		if v == "" {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d < 0 {
			return nil, fmt.Errorf("--%s %q: give a duration such as 30s", flag, v)
		}
	}
	if name == "" {
		name = strings.ToLower(fmt.Sprintf("%s-%s-%s", val, mode, now.UTC().Format("20060102-150405")))
	}
	d := &meridianv1.Drill{ApiVersion: resource.MeridianAPIVersion, Kind: "Drill", Metadata: &meridianv1.ObjectMeta{Name: name},
		Spec: &meridianv1.DrillSpec{Scope: sc, Mode: mode, Rto: rto, Rpo: rpo}}
	if workloads != "" {
		sel, err := parseSelector(workloads)
		if err != nil {
			return nil, fmt.Errorf("--workloads %q: %w", workloads, err)
		}
		d.Spec.Workloads = sel
	}
	return d, nil
}

// parseSelector turns a kubectl-style label selector into a LabelSelector.
func parseSelector(s string) (*meridianv1.LabelSelector, error) {
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, err
	}
	reqs, _ := sel.Requirements()
	out := &meridianv1.LabelSelector{}
	for _, r := range reqs {
		vals := r.Values().List()
		var op string
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals:
			if out.MatchLabels == nil {
				out.MatchLabels = map[string]string{}
			}
			out.MatchLabels[r.Key()] = vals[0]
			continue
		case selection.In:
			op = "In"
		case selection.NotIn, selection.NotEquals:
			op = "NotIn"
		case selection.Exists:
			op = "Exists"
		case selection.DoesNotExist:
			op = "DoesNotExist"
		default:
			return nil, fmt.Errorf("operator %s is not supported", r.Operator())
		}
		out.MatchExpressions = append(out.MatchExpressions, &meridianv1.LabelSelectorRequirement{Key: r.Key(), Operator: op, Values: vals})
	}
	return out, nil
}

func getDrill(ctx context.Context, c *client, name string) (*meridianv1.Drill, error) {
	o, err := adminStore{c}.Get(ctx, drillKind, "", name)
	if err != nil {
		return nil, fmt.Errorf("failed to get drill %s: %w", name, err)
	}
	return o.(*meridianv1.Drill), nil
}

// follow shows a drill's progress until it ends: on a terminal a block
// of lines redrawn in place, otherwise each new step as a plain line. It
// returns an exitError unless the drill passed.
func follow(ctx context.Context, c *client, name string, out io.Writer, tty bool) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	shown, drawn := 0, 0
	for {
		cctx, cancel := c.call(ctx)
		d, err := getDrill(cctx, c, name)
		cancel()
		if err != nil {
			return err
		}
		st := d.GetStatus()
		if tty {
			if drawn > 0 {
				fmt.Fprintf(out, "\x1b[%dA\x1b[J", drawn)
			}
			lines := progressLines(d, time.Now())
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			drawn = len(lines)
		} else {
			for _, s := range st.GetTimeline()[min(shown, len(st.GetTimeline())):] {
				fmt.Fprintf(out, "%s  %-12s %s\n", s.GetTime().AsTime().UTC().Format("15:04:05.000"), s.GetStep(), s.GetDetail())
			}
			shown = len(st.GetTimeline())
		}
		if drill.Ended(st.GetPhase()) {
			if !tty {
				fmt.Fprintf(out, "%s: %s (RTO %s)\n", st.GetPhase(), st.GetMessage(), report.Duration(st.GetRto(), st.GetRto() != nil))
			}
			if st.GetPhase() != drill.PhaseSucceeded {
				return exitError{msg: fmt.Sprintf("drill %s: %s", name, st.GetPhase())}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// progressLines is the live display of a drill: phase, recovered
// workloads, the last steps.
func progressLines(d *meridianv1.Drill, now time.Time) []string {
	st := d.GetStatus()
	elapsed := "-"
	if st.GetStartTime() != nil {
		end := now
		if st.GetCompletionTime() != nil {
			end = st.GetCompletionTime().AsTime()
		}
		elapsed = end.Sub(st.GetStartTime().AsTime()).Round(100 * time.Millisecond).String()
	}
	ready := 0
	for _, w := range st.GetWorkloads() {
		if w.GetReadyAt() != nil {
			ready++
		}
	}
	n := len(st.GetWorkloads())
	bar := progressBar(ready, n, 30)
	lines := []string{
		fmt.Sprintf("drill %s  %s %s  phase %s  elapsed %s", d.GetMetadata().GetName(), d.GetSpec().GetMode(), report.Scope(d.GetSpec().GetScope()), orPending(st.GetPhase()), elapsed),
		fmt.Sprintf("recovered %s %d/%d   worst RTO %s (objective %s)", bar, ready, n, worstRTO(st), orNone(d.GetSpec().GetRto())),
	}
	tl := st.GetTimeline()
	for _, s := range tl[max(0, len(tl)-6):] {
		lines = append(lines, fmt.Sprintf("  %s  %-12s %s", s.GetTime().AsTime().UTC().Format("15:04:05.000"), s.GetStep(), truncateLine(s.GetDetail(), 90)))
	}
	if drill.Ended(st.GetPhase()) {
		lines = append(lines, fmt.Sprintf("%s: %s", st.GetPhase(), st.GetMessage()))
	}
	return lines
}

func worstRTO(st *meridianv1.DrillStatus) string {
	var w time.Duration
	seen := false
	for _, r := range st.GetWorkloads() {
		if r.GetRto() != nil {
			w, seen = max(w, r.GetRto().AsDuration()), true
		}
	}
	if !seen {
		return "-"
	}
	return w.Round(time.Millisecond).String()
}

func progressBar(done, total, width int) string {
	if total == 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func orPending(p string) string {
	if p == "" {
		return drill.PhasePending
	}
	return p
}

func truncateLine(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func newDrillListCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List drills and their verdicts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			objs, _, err := adminStore{c}.List(ctx, drillKind, "", nil)
			if err != nil {
				return fmt.Errorf("failed to list drills: %w", err)
			}
			printDrillList(cmd.OutOrStdout(), objs, time.Now())
			return nil
		},
	}
}

func printDrillList(w io.Writer, objs []resource.Object, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tMODE\tPHASE\tVERDICT\tRTO\tOBJECTIVE\tWORKLOADS\tAGE")
	for _, o := range objs {
		d := o.(*meridianv1.Drill)
		st := d.GetStatus()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.GetMetadata().GetName(), report.Scope(d.GetSpec().GetScope()), d.GetSpec().GetMode(),
			orPending(st.GetPhase()), orNone(st.GetVerdict()), report.Duration(st.GetRto(), st.GetRto() != nil), orNone(d.GetSpec().GetRto()),
			len(st.GetWorkloads()), ageOf(d, now))
	}
	tw.Flush()
}

func newDrillStatusCommand(cf *clientFlags) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a drill's progress (live with --watch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			out := cmd.OutOrStdout()
			if watch {
				return follow(cmd.Context(), c, args[0], out, stdoutIsTerminal(out))
			}
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			d, err := getDrill(ctx, c, args[0])
			if err != nil {
				return err
			}
			for _, l := range progressLines(d, time.Now()) {
				fmt.Fprintln(out, l)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the drill until it ends")
	return cmd
}

func newDrillAbortCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "abort NAME",
		Short: "Stop a drill and restore the state before it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			_, err = adminStore{c}.Update(ctx, drillKind, "", args[0], func(o resource.Object) error {
				d := o.(*meridianv1.Drill)
				if drill.Ended(d.GetStatus().GetPhase()) {
					return fmt.Errorf("drill %s has ended (%s): nothing to abort", args[0], d.GetStatus().GetPhase())
				}
				d.Spec.Abort = true
				return nil
			})
			if err != nil {
				return fmt.Errorf("failed to abort drill %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "drill %s: abort requested; the hub restores the state before it\n", args[0])
			return nil
		},
	}
}

func newDrillReportCommand(cf *clientFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "report NAME",
		Short:   "Print a drill's report: text, json, markdown or a self-contained html page",
		Example: "  meridian drill report dc-a1-test -o html > dc-a1-test.html",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			d, err := getDrill(ctx, c, args[0])
			if err != nil {
				return err
			}
			if err := report.Render(cmd.OutOrStdout(), d, output); err != nil {
				return err
			}
			if !drill.Ended(d.GetStatus().GetPhase()) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: drill %s is still %s; the report is partial\n", args[0], orPending(d.GetStatus().GetPhase()))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, json, markdown or html")
	return cmd
}

// createDrill creates d; a drill of that name must not exist (Apply
// would replace its spec).
func createDrill(ctx context.Context, c *client, d *meridianv1.Drill) error {
	name := d.GetMetadata().GetName()
	if _, err := (adminStore{c}).Get(ctx, drillKind, "", name); err == nil {
		return fmt.Errorf("drill %s exists: give another --name", name)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("failed to create drill %s: %w", name, err)
	}
	if _, err := c.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(d)}); err != nil {
		return fmt.Errorf("failed to create drill %s: %w", name, err)
	}
	return nil
}

func newDrillOperatorTokenCommand(cf *clientFlags) *cobra.Command {
	var ttl time.Duration
	mint := func(cmd *cobra.Command, args []string) error {
		c, ctx, done, err := cf.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		resp, err := meridianv1.NewDrillServiceClient(c.conn).CreateOperatorToken(ctx,
			&meridianv1.CreateOperatorTokenRequest{Name: args[0], TtlSeconds: int64(ttl / time.Second)})
		if err != nil {
			return fmt.Errorf("failed to create the drill-operator token: %w", err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n", resp.GetToken())
		fmt.Fprintf(cmd.ErrOrStderr(), "token for %s (shown once)\n", resp.GetIdentity())
		return nil
	}
	cmd := &cobra.Command{
		Use:   "operator-token NAME",
		Short: "Make, list or revoke drill-operator tokens: they may read everything and run drills, nothing else",
		Long: `Makes an admin token for the drill operator NAME (it authenticates as
drill-operator.NAME): with it the admin API lets its holder read every object and
create, abort and delete Drills, and refuses everything else. Only a full admin
may make one. The token is printed once; the hub keeps only its hash.

"operator-token list" lists the drill-operator tokens (never their secrets) and
"operator-token revoke NAME" ends every token of the operator NAME (or, with
--id, one token): the next call made with a revoked token, through any hub node,
is refused as Unauthenticated. "operator-token create NAME" is the same as
"operator-token NAME" (for an operator named list, revoke or create).`,
		Example: "  meridian drill operator-token alice --ttl 720h\n  meridian context set drills --server HUB --ca-file ca.crt --token TOKEN\n" +
			"  meridian drill operator-token list\n  meridian drill operator-token revoke alice",
		Args: cobra.ExactArgs(1),
		RunE: mint,
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid (default: no end)")
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a drill-operator token (as operator-token NAME)",
		Args:  cobra.ExactArgs(1),
		RunE:  mint,
	}
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid (default: no end)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List drill-operator tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := meridianv1.NewDrillServiceClient(c.conn).ListOperatorTokens(ctx, &meridianv1.ListOperatorTokensRequest{})
			if err != nil {
				return c.explain(err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tIDENTITY\tEXPIRES")
			now := time.Now()
			for _, t := range resp.GetTokens() {
				exp := expiry(t.GetExpires(), now)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.GetName(), t.GetId(), t.GetIdentity(), exp)
			}
			return tw.Flush()
		},
	}
	var id string
	revoke := &cobra.Command{
		Use:   "revoke NAME | --id ID",
		Short: "End every token of a drill operator (or one, with --id) before it expires",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &meridianv1.RevokeOperatorTokenRequest{}
			switch {
			case len(args) == 1 && id == "":
				req.Name = args[0]
			case len(args) == 0 && id != "":
				req.Id, _, _ = strings.Cut(id, ".") // accept the whole token too
			default:
				return fmt.Errorf("give the operator's NAME or --id ID (one of them)")
			}
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := meridianv1.NewDrillServiceClient(c.conn).RevokeOperatorToken(ctx, req)
			if err != nil {
				return c.explain(err)
			}
			for _, id := range resp.GetIds() {
				fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", id)
			}
			return nil
		},
	}
	revoke.Flags().StringVar(&id, "id", "", "revoke only the token with this ID (or the whole token)")
	cmd.AddCommand(create, list, revoke)
	return cmd
}
