package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/member/controller/deployment"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func newRolloutCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Manage the rollout of a Deployment (status, history, undo)"}
	var toRevision int64
	var timeout time.Duration
	undo := &cobra.Command{
		Use:     "undo deploy/NAME [--to-revision N]",
		Short:   "Roll a Deployment back to its previous (or a given) revision",
		Example: "  meridian rollout undo deploy/web\n  meridian rollout undo deploy/web --to-revision 2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := deploymentName(args[0])
			if err != nil {
				return err
			}
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			_, err = deployment.Rollback(ctx, adminStore{c}, c.namespace, name, toRevision)
			switch {
			case errors.Is(err, deployment.ErrUnchanged):
				fmt.Fprintf(cmd.OutOrStdout(), "deployment/%s skipped rollback (already at that template)\n", name)
				return nil
			case errors.Is(err, deployment.ErrRevisionNotFound) && toRevision != 0:
				return fmt.Errorf("--to-revision: deployment %q has no revision %d (see `meridian rollout history deploy/%s`)", name, toRevision, name)
			case errors.Is(err, deployment.ErrPaused):
				return fmt.Errorf("deployment %q is paused: resume it (spec.paused: false) before rolling back", name)
			case err != nil:
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deployment/%s rolled back\n", name)
			return nil
		},
	}
	undo.Flags().Int64Var(&toRevision, "to-revision", 0, "revision to roll back to (0: the previous one)")

	history := &cobra.Command{
		Use:   "history deploy/NAME",
		Short: "List a Deployment's revisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := deploymentName(args[0])
			if err != nil {
				return err
			}
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			revs, err := deployment.History(ctx, adminStore{c}, c.namespace, name)
			if err != nil {
				return err
			}
			if len(revs) == 0 {
				return fmt.Errorf("deployment %s has no revisions yet (is it running on a member?)", name)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tREPLICASET\tIMAGES\tCHANGE-CAUSE")
			for _, r := range revs {
				_, images := containersAndImages(r.Template.GetSpec())
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Number, r.ReplicaSet, images, orNone(r.ChangeCause))
			}
			return tw.Flush()
		},
	}

	st := &cobra.Command{
		Use:   "status deploy/NAME [--timeout 5m]",
		Short: "Wait until a Deployment's rollout is complete",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := deploymentName(args[0])
			if err != nil {
				return err
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			deadline := time.Now().Add(timeout)
			last := ""
			for {
				ctx, cancel := c.call(cmd.Context())
				resp, err := c.Get(ctx, &meridianv1.GetRequest{Kind: "Deployment", Namespace: c.namespace, Name: name})
				cancel()
				if err != nil {
					return c.explain(err)
				}
				d := resp.GetObject().GetDeployment()
				want, s := replicas(d.GetSpec().Replicas), d.GetStatus()
				msg := fmt.Sprintf("%d of %d updated replicas are available", s.GetAvailableReplicas(), want)
				if s.GetObservedGeneration() >= d.GetMetadata().GetGeneration() && s.GetUpdatedReplicas() == want && s.GetAvailableReplicas() == want && s.GetReplicas() == want {
					fmt.Fprintf(cmd.OutOrStdout(), "deployment %q successfully rolled out\n", name)
					return nil
				}
				if msg != last {
					fmt.Fprintf(cmd.OutOrStdout(), "Waiting for deployment %q rollout to finish: %s...\n", name, msg)
					last = msg
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("deployment %q: rollout not finished after --timeout %s", name, timeout)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	st.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	cmd.AddCommand(undo, history, st)
	return cmd
}

func deploymentName(arg string) (string, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok || name == "" {
		return "", fmt.Errorf("%q: give deploy/NAME", arg)
	}
	if k, found := resource.Lookup(kind); !found || k.Kind != "Deployment" {
		return "", fmt.Errorf("%q: rollout works on deployments (deploy/NAME)", arg)
	}
	return name, nil
}
