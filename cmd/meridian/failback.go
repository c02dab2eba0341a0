package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/hub/failover"
	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var bindingKind = resource.MustLookup("ResourceBinding")

func newFailbackCommand(cf *clientFlags) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "failback (KIND/NAME | --cluster CLUSTER)",
		Short: "Move failed-over replicas back to their recovered cluster now",
		Long: `Asks the hub to fail back: a workload (KIND/NAME in the namespace) or every
workload that failed over from a cluster (--cluster, all namespaces). It is how
workloads whose policy says failback: Manual come back; for the others it skips
the stabilization window. The hub moves the replicas back one step at a time
(a quarter of them each), once the cluster is Ready; see docs/failover.md.`,
		Example: "  meridian failback deploy/web -n shop\n  meridian failback --cluster dc-a1",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (cluster != "") {
				return errors.New("give either KIND/NAME or --cluster CLUSTER")
			}
			c, ctx, done, err := cf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			st := adminStore{c}
			var keys [][2]string // namespace, binding name
			if len(args) == 1 {
				kind, name, ok := strings.Cut(args[0], "/")
				k, found := resource.Lookup(kind)
				if !ok || name == "" || !found {
					return fmt.Errorf("%q: give KIND/NAME, such as deploy/web", args[0])
				}
				keys = append(keys, [2]string{c.namespace, placement.BindingName(k.Kind, name)})
			} else {
				objs, _, err := st.List(ctx, bindingKind, "", nil)
				if err != nil {
					return fmt.Errorf("failed to list bindings: %w", err)
				}
				for _, o := range objs {
					b := o.(*meridianv1.ResourceBinding)
					if slices.ContainsFunc(b.GetSpec().GetFailedOver(), func(f *meridianv1.FailedOver) bool { return f.GetCluster() == cluster }) {
						keys = append(keys, [2]string{b.GetMetadata().GetNamespace(), b.GetMetadata().GetName()})
					}
				}
				if len(keys) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no workload failed over from %s\n", cluster)
					return nil
				}
			}
			now := time.Now().UTC().Format(time.RFC3339)
			for _, k := range keys {
				_, err := st.Update(ctx, bindingKind, k[0], k[1], func(o resource.Object) error {
					b := o.(*meridianv1.ResourceBinding)
					if len(b.GetSpec().GetFailedOver()) == 0 {
						return fmt.Errorf("%s/%s has not failed over: nothing to fail back", k[0], k[1])
					}
					md := resource.Meta(b)
					if md.Annotations == nil {
						md.Annotations = map[string]string{}
					}
					md.Annotations[failover.AnnotationFailbackRequested] = now
					if cluster != "" {
						md.Annotations[failover.AnnotationFailbackCluster] = cluster
					} else {
						delete(md.Annotations, failover.AnnotationFailbackCluster)
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("failed to request failback of %s/%s: %w", k[0], k[1], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "failback requested: %s/%s\n", k[0], k[1])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "fail back every workload that failed over from this cluster")
	return cmd
}
