package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-fed/meridian/proto/meridian/manifest"
	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// explain turns a gRPC error into a sentence for a terminal.
func (c *client) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("cannot reach the API at %s: %s (is `meridian hub` or `meridian dev` running? set --server or the client context)", c.server, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("the API at %s did not answer in time (--request-timeout %s): %s", c.server, c.timeout, st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("the API at %s refused the call: %s (give an admin credential: --token, $MERIDIAN_TOKEN or the client context)", c.server, st.Message())
	case codes.PermissionDenied:
		return fmt.Errorf("the API at %s denied the call: %s", c.server, st.Message())
	}
	return errors.New(st.Message())
}

// loadManifests decodes every -f argument; on any problem it prints them all
// and nothing is sent.
func loadManifests(cmd *cobra.Command, files []string) ([]manifest.Document, error) {
	if len(files) == 0 {
		return nil, errors.New("-f: required (a file, a directory, or - for stdin)")
	}
	docs, err := manifest.Load(files, cmd.InOrStdin())
	if err != nil {
		var errs manifest.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(cmd.ErrOrStderr(), e)
			}
			return nil, exitError{msg: fmt.Sprintf("%d problem(s) in the manifests; nothing was applied", len(errs))}
		}
		return nil, err
	}
	// Apply in dependency order: namespaces, then config, then workloads.
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].Kind.Order < docs[j].Kind.Order })
	return docs, nil
}

// defaultNamespace fills in the command's namespace where a namespaced
// manifest names none, and refuses a manifest whose namespace contradicts -n.
func defaultNamespace(d manifest.Document, ns string, explicit bool) error {
	if !d.Kind.Namespaced {
		return nil
	}
	md := resource.Meta(d.Object)
	switch {
	case md.Namespace == "":
		md.Namespace = ns
	case explicit && md.Namespace != ns:
		return fmt.Errorf("%s: document %d: metadata.namespace %q does not match --namespace %q", d.Source, d.Index, md.Namespace, ns)
	}
	return nil
}

func objectRef(k *resource.Kind, o resource.Object) string {
	return strings.ToLower(k.Kind) + "/" + o.GetMetadata().GetName()
}

func newApplyCommand(cf *clientFlags) *cobra.Command {
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from manifests (YAML or JSON)",
		Example: `  meridian apply -f deploy.yaml
  meridian apply -f manifests/
  cat deploy.yaml | meridian apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := loadManifests(cmd, files)
			if err != nil {
				return err
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			failed := 0
			for _, d := range docs {
				if err := defaultNamespace(d, c.namespace, cmd.Flags().Changed("namespace")); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					failed++
					continue
				}
				ctx, cancel := c.call(cmd.Context())
				resp, err := c.Apply(ctx, &meridianv1.ApplyRequest{Object: resource.MustWrap(d.Object), DryRun: dryRun})
				cancel()
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: document %d: %s: %v\n", d.Source, d.Index, objectRef(d.Kind, d.Object), c.explain(err))
					failed++
					continue
				}
				verb := map[meridianv1.ApplyResult]string{
					meridianv1.ApplyResult_APPLY_RESULT_CREATED:    "created",
					meridianv1.ApplyResult_APPLY_RESULT_CONFIGURED: "configured",
					meridianv1.ApplyResult_APPLY_RESULT_UNCHANGED:  "unchanged",
				}[resp.GetResult()]
				if dryRun {
					verb += " (dry run)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", objectRef(d.Kind, d.Object), verb)
			}
			if failed > 0 {
				return exitError{msg: fmt.Sprintf("%d of %d objects failed", failed, len(docs))}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory or - (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate on the server and report what would happen, storing nothing")
	return cmd
}

func newDeleteCommand(cf *clientFlags) *cobra.Command {
	var files []string
	var ignoreNotFound bool
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE|DIR|-)",
		Short: "Delete objects by kind and name, or those named in manifests",
		Example: `  meridian delete deploy web
  meridian delete -f manifests/`,
		RunE: func(cmd *cobra.Command, args []string) error {
			type target struct {
				kind     *resource.Kind
				ns, name string
			}
			var targets []target
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			switch {
			case len(files) > 0 && len(args) > 0:
				return errors.New("give either KIND NAME... or -f, not both")
			case len(files) > 0:
				docs, err := loadManifests(cmd, files)
				if err != nil {
					return err
				}
				// Delete in reverse dependency order: workloads before their namespace.
				for i := len(docs) - 1; i >= 0; i-- {
					d := docs[i]
					if err := defaultNamespace(d, c.namespace, cmd.Flags().Changed("namespace")); err != nil {
						return err
					}
					targets = append(targets, target{d.Kind, d.Object.GetMetadata().GetNamespace(), d.Object.GetMetadata().GetName()})
				}
			case len(args) >= 2:
				kind, ok := resource.Lookup(args[0])
				if !ok {
					return resource.LookupError(args[0])
				}
				for _, name := range args[1:] {
					t := target{kind: kind, name: name}
					if kind.Namespaced {
						t.ns = c.namespace
					}
					targets = append(targets, t)
				}
			default:
				return errors.New("give KIND NAME... (e.g. `meridian delete deploy web`) or -f FILE")
			}
			failed := 0
			for _, t := range targets {
				ctx, cancel := c.call(cmd.Context())
				_, err := c.Delete(ctx, &meridianv1.DeleteRequest{Kind: t.kind.Kind, Namespace: t.ns, Name: t.name})
				cancel()
				if status.Code(err) == codes.NotFound && ignoreNotFound {
					continue
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s/%s: %v\n", strings.ToLower(t.kind.Kind), t.name, c.explain(err))
					failed++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", strings.ToLower(t.kind.Kind), t.name)
			}
			if failed > 0 {
				return exitError{msg: fmt.Sprintf("%d of %d deletions failed", failed, len(targets))}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory or - (repeatable)")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "treat objects that do not exist as deleted")
	return cmd
}

func writeAll(w io.Writer, b []byte) {
	if _, err := w.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
}
