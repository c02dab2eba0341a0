package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// revisionAnnotation is where the Deployment controller numbers the
// ReplicaSets of a Deployment, as Kubernetes does.
const revisionAnnotation = "deployment.kubernetes.io/revision"

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
			c, d, revs, err := deploymentAndRevisions(cmd, cf, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			cur := revs[len(revs)-1]
			var target *meridianv1.ReplicaSet
			for i := len(revs) - 1; i >= 0; i-- {
				r := revs[i]
				if (toRevision == 0 && r.rev < cur.rev) || (toRevision != 0 && r.rev == toRevision) {
					target = r.rs
					break
				}
			}
			if target == nil {
				if toRevision != 0 {
					return fmt.Errorf("--to-revision: deployment %q has no revision %d (see `meridian rollout history deploy/%s`)", d.GetMetadata().GetName(), toRevision, d.GetMetadata().GetName())
				}
				return fmt.Errorf("deployment %q has no previous revision to roll back to", d.GetMetadata().GetName())
			}
			tmpl := proto.Clone(target.GetSpec().GetTemplate()).(*meridianv1.PodTemplateSpec)
			delete(tmpl.GetMetadata().GetLabels(), "pod-template-hash")
			if proto.Equal(tmpl, d.GetSpec().GetTemplate()) {
				fmt.Fprintf(cmd.OutOrStdout(), "deployment/%s skipped rollback (already at that template)\n", d.GetMetadata().GetName())
				return nil
			}
			d.Spec.Template = tmpl
			resource.ClearStatus(d)
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			if _, err := c.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(d)}); err != nil {
				return c.explain(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deployment/%s rolled back\n", d.GetMetadata().GetName())
			return nil
		},
	}
	undo.Flags().Int64Var(&toRevision, "to-revision", 0, "revision to roll back to (0: the previous one)")

	history := &cobra.Command{
		Use:   "history deploy/NAME",
		Short: "List a Deployment's revisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, revs, err := deploymentAndRevisions(cmd, cf, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tREPLICASET\tIMAGES")
			for _, r := range revs {
				_, images := containersAndImages(r.rs.GetSpec().GetTemplate().GetSpec())
				fmt.Fprintf(tw, "%d\t%s\t%s\n", r.rev, r.rs.GetMetadata().GetName(), images)
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

type revision struct {
	rev int64
	rs  *meridianv1.ReplicaSet
}

// deploymentAndRevisions fetches a Deployment and its ReplicaSets, ordered by
// revision (oldest first).
func deploymentAndRevisions(cmd *cobra.Command, cf *clientFlags, arg string) (*client, *meridianv1.Deployment, []revision, error) {
	name, err := deploymentName(arg)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := cf.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := c.call(cmd.Context())
	defer cancel()
	resp, err := c.Get(ctx, &meridianv1.GetRequest{Kind: "Deployment", Namespace: c.namespace, Name: name})
	if err != nil {
		c.Close()
		return nil, nil, nil, c.explain(err)
	}
	d := resp.GetObject().GetDeployment()
	lst, err := c.List(ctx, &meridianv1.ListRequest{Kind: "ReplicaSet", Namespace: c.namespace})
	if err != nil {
		c.Close()
		return nil, nil, nil, c.explain(err)
	}
	var revs []revision
	for _, it := range lst.GetItems() {
		rs := it.GetReplicaSet()
		owned := false
		for _, ref := range rs.GetMetadata().GetOwnerReferences() {
			owned = owned || (ref.GetController() && ref.GetUid() == d.GetMetadata().GetUid())
		}
		n, err := strconv.ParseInt(rs.GetMetadata().GetAnnotations()[revisionAnnotation], 10, 64)
		if owned && err == nil {
			revs = append(revs, revision{rev: n, rs: rs})
		}
	}
	if len(revs) == 0 {
		c.Close()
		return nil, nil, nil, errors.New("deployment " + name + " has no revisions yet (is it running on a member?)")
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].rev < revs[j].rev })
	return c, d, revs, nil
}
