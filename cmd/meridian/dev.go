package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/hub"
)

func newDevCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local federation for trying Meridian out",
		Long: `Run a local federation on this machine, with its data in one directory that the
next run reuses, and point the client context "dev" at it.

Today this starts the hub only: the member agents (three datacenters in two
regions) arrive with the member and federation work. Objects applied now are
stored and served by the hub; nothing runs them yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := hub.DefaultConfig()
			cfg.DataDir = filepath.Join(dir, "hub")
			cfg.LogLevel = "warn"
			h, err := hub.Start(cmd.Context(), cfg, newLogger(cfg.LogLevel))
			if err != nil {
				return fmt.Errorf("failed to start the dev hub (is another `meridian dev` or `meridian hub` running?): %w", err)
			}
			defer h.Close()

			cf := &clientFlags{}
			path, err := cf.path()
			if err != nil {
				return err
			}
			cc, err := readClientConfig(path)
			if err != nil {
				return err
			}
			cc.upsert(ClientContext{Name: "dev", Server: h.Addr()})
			if err := writeClientConfig(path, cc); err != nil {
				return fmt.Errorf("failed to write the client context %s: %w", path, err)
			}
			abs, _ := filepath.Abs(dir)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, `Meridian dev federation
  hub API          %s   (gRPC; reflection on)
  health, metrics  http://%s/healthz  /readyz  /metrics
  data             %s   (reused by the next run)
  client context   "dev" in %s

Members are not started yet: this build runs the hub only.

Try, in another terminal:
  go run ./cmd/meridian apply -f test/testdata/good/
  go run ./cmd/meridian get deploy -n demo
  go run ./cmd/meridian get deploy web -n demo -o yaml

Ctrl-C stops everything.
`, h.Addr(), h.HTTPAddr(), abs, path)
			<-cmd.Context().Done()
			fmt.Fprintln(out, "stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".meridian-dev", "directory for the dev federation's data")
	return cmd
}
