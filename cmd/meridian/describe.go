package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/proto/meridian/federation"
	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func newDescribeCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "describe KIND NAME",
		Short:   "Show one object in detail",
		Example: "  meridian describe deploy web\n  meridian describe cluster dc-a1",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := resource.Lookup(args[0])
			if !ok {
				return resource.LookupError(args[0])
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ns := c.namespace
			if !kind.Namespaced {
				ns = ""
			}
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			resp, err := c.Get(ctx, &meridianv1.GetRequest{Kind: kind.Kind, Namespace: ns, Name: args[1]})
			if err != nil {
				return c.explain(err)
			}
			o, _, err := resource.Unwrap(resp.GetObject())
			if err != nil {
				return err
			}
			var binding *meridianv1.ResourceBinding
			if kind.Namespaced && federation.Propagated(kind) {
				// The hub's placement of it; a member has none.
				if br, err := c.Get(ctx, &meridianv1.GetRequest{Kind: "ResourceBinding", Namespace: ns, Name: placement.BindingName(kind.Kind, args[1])}); err == nil {
					binding = br.GetObject().GetResourceBinding()
				}
			}
			return describe(cmd.OutOrStdout(), kind, o, binding, time.Now())
		},
	}
}

// describe prints an object for a person: its identity first, then its
// desired and observed state as indented YAML.
func describe(w io.Writer, kind *resource.Kind, o resource.Object, binding *meridianv1.ResourceBinding, now time.Time) error {
	md := o.GetMetadata()
	row := func(k, v string) { fmt.Fprintf(w, "%-18s%s\n", k+":", v) }
	row("Name", md.GetName())
	if kind.Namespaced {
		row("Namespace", md.GetNamespace())
	}
	row("Kind", kind.Kind)
	row("API Version", o.GetApiVersion())
	row("Labels", mapString(md.GetLabels()))
	row("Annotations", mapString(md.GetAnnotations()))
	row("UID", md.GetUid())
	row("Resource Version", md.GetResourceVersion())
	if md.GetGeneration() > 0 {
		row("Generation", fmt.Sprint(md.GetGeneration()))
	}
	if ct := md.GetCreationTimestamp(); ct != nil {
		row("Created", fmt.Sprintf("%s (%s ago)", ct.AsTime().Local().Format(time.RFC1123), shortDuration(now.Sub(ct.AsTime()))))
	}
	clusters := clusterStatuses(o)
	if len(clusters) > 0 {
		fmt.Fprintln(w, "Clusters:")
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  CLUSTER\tDESIRED\tCURRENT\tREADY\tAVAILABLE\tUP-TO-DATE\tSUCCEEDED\tFAILED\tAPPLIED\tREPORTED")
		for _, c := range clusters {
			reported := "<never>"
			if t := c.GetLastUpdateTime(); t != nil {
				reported = shortDuration(now.Sub(t.AsTime())) + " ago"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%t\t%s\n", c.GetCluster(), c.GetReplicas(), c.GetCurrent(), c.GetReadyReplicas(),
				c.GetAvailableReplicas(), c.GetUpdatedReplicas(), c.GetSucceeded(), c.GetFailed(), c.GetApplied(), reported)
		}
		tw.Flush()
	}
	if binding != nil {
		describePlacement(w, binding, now)
	}
	m, err := manifest.Encode(o)
	if err != nil {
		return err
	}
	if st, ok := m["status"].(map[string]any); ok {
		delete(st, "clusters") // shown above as a table
	}
	delete(m, "apiVersion")
	delete(m, "kind")
	delete(m, "metadata")
	for _, k := range sortedKeys(m) {
		b, err := yaml.Marshal(m[k])
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s:\n", strings.ToUpper(k[:1])+k[1:])
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return nil
}

// describePlacement prints the hub's placement of an object: the policy,
// whether it is scheduled (or why not), the targets, and why the other
// clusters were kept out.
func describePlacement(w io.Writer, b *meridianv1.ResourceBinding, now time.Time) {
	fmt.Fprintln(w, "Placement:")
	policy := "<none: every cluster, duplicated>"
	if p := b.GetSpec().GetPolicy(); p != nil {
		policy = p.GetKind() + " " + p.GetName()
		if p.GetNamespace() != "" {
			policy = p.GetKind() + " " + p.GetNamespace() + "/" + p.GetName()
		}
	}
	if a := b.GetSpec().GetAffinityName(); a != "" {
		policy += " (cluster affinity " + a + ")"
	}
	fmt.Fprintf(w, "  %-12s%s\n", "Policy:", policy)
	for _, c := range b.GetStatus().GetConditions() {
		if c.GetType() != "Scheduled" {
			continue
		}
		line := c.GetStatus()
		if c.GetStatus() != "True" {
			line += ", " + c.GetReason() + ": " + c.GetMessage()
		}
		if t := b.GetStatus().GetLastScheduledTime(); t != nil {
			line += fmt.Sprintf(" (last placed %s ago)", shortDuration(now.Sub(t.AsTime())))
		}
		fmt.Fprintf(w, "  %-12s%s\n", "Scheduled:", line)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(b.GetSpec().GetClusters()) > 0 {
		fmt.Fprintln(tw, "  TARGET\tREPLICAS")
		for _, t := range b.GetSpec().GetClusters() {
			fmt.Fprintf(tw, "  %s\t%d\n", t.GetName(), t.GetReplicas())
		}
	}
	if vs := b.GetStatus().GetClusters(); len(vs) > 0 {
		fmt.Fprintln(tw, "  KEPT OUT\tBY\tWHY")
		for _, v := range vs {
			fmt.Fprintf(tw, "  %s\t%s\t%s: %s\n", v.GetCluster(), v.GetPlugin(), v.GetCode(), v.GetReason())
		}
	}
	tw.Flush()
	describeFailover(w, b, now)
}

func jsonIndent(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// clusterStatuses is a hub workload's per-cluster status.
func clusterStatuses(o resource.Object) []*meridianv1.ClusterWorkloadStatus {
	switch w := o.(type) {
	case *meridianv1.Deployment:
		return w.GetStatus().GetClusters()
	case *meridianv1.StatefulSet:
		return w.GetStatus().GetClusters()
	case *meridianv1.DaemonSet:
		return w.GetStatus().GetClusters()
	case *meridianv1.Job:
		return w.GetStatus().GetClusters()
	case *meridianv1.CronJob:
		return w.GetStatus().GetClusters()
	}
	return nil
}
