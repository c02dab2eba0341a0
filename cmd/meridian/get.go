package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/yaml"

	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

var outputFormats = []string{"table", "wide", "yaml", "json", "name"}

func newGetCommand(cf *clientFlags) *cobra.Command {
	var output, selector string
	var allNamespaces, watch bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List objects, or show some by name",
		Long: "List objects of a kind, or show some by name. KIND takes the kind, its plural or its short name:\n  " +
			strings.Join(resource.Names(), ", ") + "\n(short names: deploy, sts, ds, cj, svc, cm, ns, pp, op, cl, po, no, ev)",
		Example: `  meridian get deploy
  meridian get deploy web -o yaml
  meridian get pods -l app=web -A -o wide
  meridian get deploy --watch`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var kinds []*resource.Kind
			for _, name := range strings.Split(args[0], ",") {
				kind, ok := resource.Lookup(name)
				if !ok {
					return resource.LookupError(name)
				}
				kinds = append(kinds, kind)
			}
			if len(kinds) > 1 && (len(args) > 1 || watch) {
				return errors.New("several kinds (a,b) list objects; do not give names or --watch with them")
			}
			if !contains(outputFormats, output) {
				return fmt.Errorf("-o: %q is not one of %s", output, strings.Join(outputFormats, ", "))
			}
			if len(args) > 1 && (selector != "" || watch) {
				return errors.New("-l and --watch list objects; do not give names with them")
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			for i, kind := range kinds {
				if i > 0 && (output == "table" || output == "wide") {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				if err := getKind(cmd, c, kind, args[1:], output, selector, allNamespaces, watch); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "output format: "+strings.Join(outputFormats, ", "))
	f.StringVarP(&selector, "selector", "l", "", "label selector (a=b,c!=d,e in (x,y),!f)")
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	f.BoolVarP(&watch, "watch", "w", false, "after listing, print changes as they happen")
	return cmd
}

// getKind lists (or, given names, gets) the objects of one kind and prints them.
func getKind(cmd *cobra.Command, c *client, kind *resource.Kind, names []string, output, selector string, allNamespaces, watch bool) error {
	ns := c.namespace
	if allNamespaces || !kind.Namespaced {
		ns = ""
	}
	var (
		objs []resource.Object
		rev  string
		err  error
	)
	if len(names) > 0 {
		for _, name := range names {
			ctx, cancel := c.call(cmd.Context())
			resp, err := c.Get(ctx, &meridianv1.GetRequest{Kind: kind.Kind, Namespace: ns, Name: name})
			cancel()
			if err != nil {
				return c.explain(err)
			}
			o, _, err := resource.Unwrap(resp.GetObject())
			if err != nil {
				return err
			}
			objs = append(objs, o)
		}
	} else {
		if objs, rev, err = list(cmd.Context(), c, kind, ns, selector); err != nil {
			return err
		}
		if len(objs) == 0 && (output == "table" || output == "wide") && !watch {
			if ns == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "No %s found.\n", kind.Plural)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "No %s found in namespace %s.\n", kind.Plural, ns)
			}
			return nil
		}
	}
	p := newObjectPrinter(cmd.OutOrStdout(), kind, output, ns == "" && kind.Namespaced)
	if err := p.printList(objs, len(names) == 0 && !watch); err != nil {
		return err
	}
	if !watch {
		return nil
	}
	return watchAndPrint(cmd.Context(), c, kind, ns, selector, rev, p)
}

func list(ctx context.Context, c *client, kind *resource.Kind, ns, selector string) ([]resource.Object, string, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.List(cctx, &meridianv1.ListRequest{Kind: kind.Kind, Namespace: ns, LabelSelector: selector})
	if err != nil {
		return nil, "", c.explain(err)
	}
	objs := make([]resource.Object, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		o, _, err := resource.Unwrap(it)
		if err != nil {
			return nil, "", err
		}
		objs = append(objs, o)
	}
	return objs, resp.GetResourceVersion(), nil
}

// watchAndPrint prints every change after rev; when the server says the
// revision is gone (compacted), it relists and carries on from the new list.
func watchAndPrint(ctx context.Context, c *client, kind *resource.Kind, ns, selector, rev string, p *objectPrinter) error {
	for {
		stream, err := c.Watch(ctx, &meridianv1.WatchRequest{Kind: kind.Kind, Namespace: ns, LabelSelector: selector, ResourceVersion: rev})
		if err != nil {
			return c.explain(err)
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				switch {
				case ctx.Err() != nil:
					return nil
				case status.Code(err) == codes.OutOfRange:
					objs, newRev, lerr := list(ctx, c, kind, ns, selector)
					if lerr != nil {
						return lerr
					}
					rev = newRev
					if err := p.printList(objs, false); err != nil {
						return err
					}
				case errors.Is(err, io.EOF), status.Code(err) == codes.Unavailable:
					// The server went away or ended the stream: resume from the last revision seen.
				default:
					return c.explain(err)
				}
				break
			}
			rev = ev.GetResourceVersion()
			if ev.GetType() == meridianv1.EventType_EVENT_TYPE_BOOKMARK || ev.GetObject() == nil {
				continue
			}
			o, _, err := resource.Unwrap(ev.GetObject())
			if err != nil {
				return err
			}
			if err := p.printEvent(ev.GetType(), o); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// objectPrinter prints objects in the chosen output format.
type objectPrinter struct {
	w      io.Writer
	kind   *resource.Kind
	format string
	table  *tablePrinter
	docs   int
}

func newObjectPrinter(w io.Writer, kind *resource.Kind, format string, withNS bool) *objectPrinter {
	p := &objectPrinter{w: w, kind: kind, format: format}
	if format == "table" || format == "wide" {
		p.table = newTablePrinter(w, kind, format == "wide", withNS)
	}
	return p
}

// printList prints objects; asList wraps yaml/json output in a kind: List
// as kubectl does for a listing.
func (p *objectPrinter) printList(objs []resource.Object, asList bool) error {
	switch p.format {
	case "table", "wide":
		p.table.print(objs...)
		return nil
	case "name":
		for _, o := range objs {
			fmt.Fprintf(p.w, "%s/%s\n", strings.ToLower(p.kind.Kind), o.GetMetadata().GetName())
		}
		return nil
	}
	if !asList {
		for _, o := range objs {
			if err := p.printOne(o); err != nil {
				return err
			}
		}
		return nil
	}
	items := make([]any, 0, len(objs))
	for _, o := range objs {
		m, err := manifest.Encode(o)
		if err != nil {
			return err
		}
		items = append(items, m)
	}
	return p.emit(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
}

func (p *objectPrinter) printOne(o resource.Object) error {
	m, err := manifest.Encode(o)
	if err != nil {
		return err
	}
	return p.emit(m)
}

func (p *objectPrinter) emit(v any) error {
	if p.format == "json" {
		b, err := jsonIndent(v)
		if err != nil {
			return err
		}
		writeAll(p.w, b)
		return nil
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	if p.docs > 0 {
		fmt.Fprintln(p.w, "---")
	}
	p.docs++
	writeAll(p.w, b)
	return nil
}

func (p *objectPrinter) printEvent(t meridianv1.EventType, o resource.Object) error {
	if p.format == "table" || p.format == "wide" || p.format == "name" {
		if t == meridianv1.EventType_EVENT_TYPE_DELETED && p.format != "name" {
			// kubectl keeps the row format; mark deletions so they are not mistaken for updates.
			fmt.Fprintf(p.w, "%s/%s deleted\n", strings.ToLower(p.kind.Kind), o.GetMetadata().GetName())
			return nil
		}
		return p.printList([]resource.Object{o}, false)
	}
	return p.printOne(o)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
