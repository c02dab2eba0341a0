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
			return describe(cmd.OutOrStdout(), kind, o, time.Now())
		},
	}
}

// describe prints an object for a person: its identity first, then its
// desired and observed state as indented YAML.
func describe(w io.Writer, kind *resource.Kind, o resource.Object, now time.Time) error {
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
