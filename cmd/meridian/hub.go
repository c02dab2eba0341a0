package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meridian-fed/meridian/hub"
)

func newHubCommand() *cobra.Command {
	var configFile string
	def := hub.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run a hub node: embedded (or external) etcd, the Admin API and the federation",
		Long: `Run a hub node. Settings come from --config (YAML, keys are the flag names),
MERIDIAN_* environment variables (MERIDIAN_DATA_DIR, MERIDIAN_LISTEN, ...) and flags.

A single node needs nothing else. A three-node embedded hub, one node per datacenter:
  meridian hub --etcd-name a --etcd-initial-cluster a=http://10.0.1.1:7703,b=http://10.0.2.1:7703,c=http://10.0.3.1:7703 ...
An external etcd:
  meridian hub --etcd-endpoints http://etcd-1:2379,http://etcd-2:2379

After the loss of the majority of a multi-node hub: ` + "`meridian hub recover`" + ` on a
survivor's data, then ` + "`meridian hub add-node`" + ` (docs/disaster-recovery.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := hub.DefaultConfig()
			if err := loadConfig(cmd, configFile, &cfg, "plugins", "placement"); err != nil {
				return err
			}
			if configFile != "" {
				var err error
				if cfg.Plugins, cfg.Placement, err = hub.ReadPipeline(configFile); err != nil {
					return err
				}
			}
			log := newLogger(cfg.LogLevel)
			h, err := hub.Start(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hub ready: API %s (TLS), health and metrics http://%s\n  CA certificate %s, first admin token in %s\n",
				h.Addr(), h.HTTPAddr(), filepath.Join(cfg.DataDir, hub.CAFile), filepath.Join(cfg.DataDir, hub.AdminTokenFile))
			<-cmd.Context().Done()
			log.Info("shutting down")
			return h.Close()
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "config file (YAML)")
	addHubFlags(cmd.Flags(), def)
	cmd.AddCommand(newHubRecoverCommand(), newHubAddNodeCommand())
	return cmd
}

// addHubFlags defines the flags of a hub node, shared by `meridian hub` and
// `meridian hub recover` so that both read the same config file.
func addHubFlags(f *pflag.FlagSet, def hub.Config) {
	f.String("data-dir", def.DataDir, "directory of the embedded etcd data")
	f.String("listen", def.Listen, "gRPC API address")
	f.String("http-listen", def.HTTPListen, "address of /healthz, /readyz and /metrics (empty disables)")
	f.StringSlice("etcd-endpoints", nil, "use this external etcd (comma-separated URLs) instead of an embedded one")
	f.String("etcd-name", def.EtcdName, "this node's name in the embedded etcd cluster")
	f.String("etcd-client-url", def.EtcdClientURL, "embedded etcd client URL")
	f.String("etcd-peer-url", def.EtcdPeerURL, "embedded etcd peer URL")
	f.String("etcd-initial-cluster", "", "every node of a multi-node embedded hub: name=peerURL,...")
	f.String("etcd-initial-cluster-state", def.EtcdInitialClusterState, "new (bootstrap) or existing (join)")
	f.StringSlice("tls-san", nil, "extra DNS names and IPs for the hub's serving certificate")
	f.String("region", def.Region, "this hub node's region")
	f.String("datacenter", def.Datacenter, "this hub node's datacenter")
	f.String("gossip-listen", "", "gossip address, UDP and TCP (empty disables gossip; health then uses the Sync stream only)")
	f.String("gossip-key", "", "base64 AES-256 gossip key (`meridian gossip keygen`)")
	f.StringSlice("gossip-secondary-keys", nil, "further gossip keys accepted during a rotation")
	f.String("gossip-profile", def.GossipProfile, "gossip timings: same-dc, cross-region, dev (one machine) or test")
	f.Duration("heartbeat-timeout", def.HeartbeatTimeout, "how old a member's last heartbeat may be before it is Suspect")
	f.Duration("health-interval", def.HealthInterval, "how often cluster health is re-evaluated (a stream closing or a gossip change is evaluated at once)")
	f.Duration("lease-duration", def.LeaseDuration, "how long a member's singleton lease holds after it renews (docs/failover.md, Fencing)")
	f.Duration("lease-margin", def.LeaseMargin, "the hub's safety margin: a singleton moves only after its cluster's lease expired plus this")
	f.Duration("leader-lease", def.LeaderLease, "the leading hub node's etcd session lease: a new leader takes over about this long after the leader dies (whole seconds, >= 2s)")
	f.Float64("failover-rate", def.FailoverRate, "failover moves per second, federation-wide (a token bucket)")
	f.Int("failover-burst", def.FailoverBurst, "failover moves that may go at once")
	f.Int("max-request-bytes", def.MaxRequestBytes, "largest API request accepted")
	f.Duration("request-timeout", def.RequestTimeout, "deadline for API calls that carry none")
	f.Duration("shutdown-timeout", def.ShutdownTimeout, "bound on each step of shutdown")
	f.String("log-level", def.LogLevel, "debug, info, warn or error")
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
