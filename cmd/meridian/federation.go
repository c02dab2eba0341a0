package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/gossip"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func newTokenCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage join tokens (members trade one for a certificate)"}
	var ttl time.Duration
	var cluster, description string
	var singleUse bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Make a join token and print the command that joins a member with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return errors.New("--ttl: must not be negative")
			}
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := meridianv1.NewFederationServiceClient(c.conn).CreateJoinToken(ctx, &meridianv1.CreateJoinTokenRequest{
				TtlSeconds: int64(ttl / time.Second), Cluster: cluster, SingleUse: singleUse, Description: description,
			})
			if err != nil {
				return c.explain(err)
			}
			name := cluster
			if name == "" {
				name = "NAME"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, resp.GetToken())
			fmt.Fprintf(out, "\nexpires %s. Join a member with:\n\n  meridian member --hub %s --join-token %s --hub-ca-pin %s \\\n      --name %s --region REGION --datacenter DC\n",
				resp.GetExpires().AsTime().Local().Format(time.RFC1123), c.server, resp.GetToken(), resp.GetCaPin(), name)
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	create.Flags().StringVar(&cluster, "for-cluster", "", "bind the token to this cluster name")
	create.Flags().BoolVar(&singleUse, "single-use", false, "the token works once")
	create.Flags().StringVar(&description, "description", "", "free text shown by `token list`")

	list := &cobra.Command{
		Use:   "list",
		Short: "List join tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := meridianv1.NewFederationServiceClient(c.conn).ListJoinTokens(ctx, &meridianv1.ListJoinTokensRequest{})
			if err != nil {
				return c.explain(err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tEXPIRES\tCLUSTER\tSINGLE-USE\tUSED\tDESCRIPTION")
			now := time.Now()
			for _, t := range resp.GetTokens() {
				exp := expiry(t.GetExpires(), now)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%s\n", t.GetId(), exp, orNone(t.GetCluster()), t.GetSingleUse(), t.GetUsed(), t.GetDescription())
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "End a join token before it expires",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			id, _, _ := strings.Cut(args[0], ".") // accept the whole token too
			if _, err := meridianv1.NewFederationServiceClient(c.conn).RevokeJoinToken(ctx, &meridianv1.RevokeJoinTokenRequest{Id: id}); err != nil {
				return c.explain(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", id)
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// updateCluster reads a Cluster, changes its spec with mutate and applies
// it back conditionally, retrying when someone else changed it meanwhile.
func updateCluster(ctx context.Context, c *client, name string, mutate func(*meridianv1.Cluster) (string, error)) (string, error) {
	for attempt := 0; ; attempt++ {
		cctx, cancel := c.call(ctx)
		resp, err := c.Get(cctx, &meridianv1.GetRequest{Kind: "clusters", Name: name})
		cancel()
		if err != nil {
			return "", c.explain(err)
		}
		cl := resp.GetObject().GetCluster()
		if cl.Spec == nil {
			cl.Spec = &meridianv1.ClusterSpec{}
		}
		msg, err := mutate(cl)
		if err != nil {
			return "", err
		}
		cl.Status = nil
		cctx, cancel = c.call(ctx)
		_, err = c.Apply(cctx, &meridianv1.ApplyRequest{Object: &meridianv1.Object{Kind: &meridianv1.Object_Cluster{Cluster: cl}}})
		cancel()
		if status.Code(err) == codes.Aborted && attempt < 5 {
			continue
		}
		if err != nil {
			return "", c.explain(err)
		}
		return msg, nil
	}
}

func newCordonCommand(cf *clientFlags, cordon bool) *cobra.Command {
	use, short := "cordon CLUSTER", "Keep new workloads off a cluster (what runs there stays)"
	if !cordon {
		use, short = "uncordon CLUSTER", "Let new workloads onto a cluster again"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			msg, err := updateCluster(cmd.Context(), c, args[0], func(cl *meridianv1.Cluster) (string, error) {
				word := "cordoned"
				if !cordon {
					word = "uncordoned"
				}
				if cl.Spec.Unschedulable == cordon {
					return "cluster/" + args[0] + " already " + word, nil
				}
				cl.Spec.Unschedulable = cordon
				return "cluster/" + args[0] + " " + word, nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
}

var taintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

func newTaintCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "taint CLUSTER key=value:Effect ... | key[:Effect]-",
		Short: "Add, change or remove taints on a cluster",
		Long: `Add, change or remove taints on a cluster, as kubectl taint does for nodes.
Effects: NoSchedule (no new workloads), PreferNoSchedule, NoExecute (workloads leave).

  meridian taint dc-b1 meridian.io/disaster-recovery=true:NoSchedule
  meridian taint dc-b1 meridian.io/disaster-recovery:NoSchedule-    # remove it`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			type change struct {
				remove bool
				taint  *meridianv1.Taint
			}
			var changes []change
			for _, a := range args[1:] {
				ch, err := parseTaint(a)
				if err != nil {
					return err
				}
				changes = append(changes, change{remove: strings.HasSuffix(a, "-"), taint: ch})
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			msg, err := updateCluster(cmd.Context(), c, args[0], func(cl *meridianv1.Cluster) (string, error) {
				taints := cl.Spec.Taints
				for _, ch := range changes {
					var kept []*meridianv1.Taint
					found := false
					for _, t := range taints {
						same := t.GetKey() == ch.taint.GetKey() && (ch.taint.GetEffect() == "" || t.GetEffect() == ch.taint.GetEffect())
						if same {
							found = true
							continue
						}
						kept = append(kept, t)
					}
					if ch.remove && !found {
						return "", fmt.Errorf("taint %q not found on cluster %s", ch.taint.GetKey(), args[0])
					}
					if !ch.remove {
						kept = append(kept, ch.taint)
					}
					taints = kept
				}
				cl.Spec.Taints = taints
				return "cluster/" + args[0] + " tainted", nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
}

// parseTaint reads key=value:Effect, key:Effect, or a removal key[:Effect]-.
func parseTaint(s string) (*meridianv1.Taint, error) {
	remove := strings.HasSuffix(s, "-")
	body := strings.TrimSuffix(s, "-")
	kv, effect, hasEffect := strings.Cut(body, ":")
	key, value, _ := strings.Cut(kv, "=")
	if key == "" {
		return nil, fmt.Errorf("taint %q: want key=value:Effect (or key:Effect- to remove)", s)
	}
	if hasEffect || !remove {
		ok := false
		for _, e := range taintEffects {
			ok = ok || e == effect
		}
		if !ok {
			return nil, fmt.Errorf("taint %q: effect %q must be one of %s", s, effect, strings.Join(taintEffects, ", "))
		}
	}
	return &meridianv1.Taint{Key: key, Value: value, Effect: effect}, nil
}

func newGossipCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "gossip", Short: "Gossip encryption keys"}
	cmd.AddCommand(&cobra.Command{
		Use:   "keygen",
		Short: "Print a new base64 AES-256 gossip key (for --gossip-key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := gossip.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k)
			return nil
		},
	})
	return cmd
}

// expiry says when a token expires, seen from now: "in 23h", "expired",
// or "never" for none.
func expiry(ts *timestamppb.Timestamp, now time.Time) string {
	switch {
	case ts == nil:
		return "never"
	case ts.AsTime().Before(now):
		return "expired"
	}
	return "in " + shortDuration(ts.AsTime().Sub(now))
}
