package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meridian-fed/meridian/member"
)

func newMemberCommand() *cobra.Command {
	var configFile string
	def := member.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Run a member agent: a datacenter's local control plane",
		Long: `Run a member agent: a local control plane (store, API, controllers, scheduler)
and a node agent per declared node that runs pods as real processes (runtime exec)
or simulated ones (runtime sim).

Settings come from --config (YAML, keys are the flag names, plus a "nodes" list),
MERIDIAN_* environment variables and flags. A member joins a hub once with a
token (` + "`meridian token create`" + ` prints the command), then syncs with it:

  meridian member --hub 127.0.0.1:7700 --join-token TOKEN --hub-ca-pin sha256:... \
      --name dc-a1 --region region-a --datacenter dc-a1 --data-dir /tmp/dc-a1

Or it runs on its own (--standalone); point the CLI at its plaintext local API:

  meridian member --standalone --name dc-a1 --data-dir /tmp/dc-a1
  meridian --server 127.0.0.1:7710 --insecure apply -f deploy.yaml
  meridian --server 127.0.0.1:7710 --insecure get pods -o wide

A config file can declare nodes in detail:

  nodes:
    - name: n1
      capacity: {cpu: "4", memory: 8Gi, pods: "110"}
      labels: {disk: ssd}
      taints: [{key: dedicated, value: db, effect: NoSchedule}]`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := member.DefaultConfig()
			if err := loadConfig(cmd, configFile, &cfg); err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			m, err := member.Start(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member %s ready (%s/%s): API %s, health and metrics http://%s, %d node(s), runtime %s\n",
				cfg.Name, cfg.Region, cfg.Datacenter, m.Addr(), m.HTTPAddr(), len(m.Nodes()), cfg.Runtime)
			<-cmd.Context().Done()
			log.Info("shutting down")
			return m.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "config file (YAML)")
	f.String("name", def.Name, "this member's cluster name")
	f.String("region", def.Region, "region label")
	f.String("datacenter", def.Datacenter, "datacenter label")
	f.Bool("standalone", false, "run without a hub")
	f.String("hub", "", "hub API address (host:port) to join and sync with; for a multi-node hub every node's, comma-separated (the member moves to the next when it loses one)")
	f.String("join-token", "", "join token (first start only; `meridian token create`)")
	f.String("hub-ca-pin", "", "sha256:<hex> of the hub CA's key, printed with the token")
	f.String("hub-ca-file", "", "the hub's CA certificate (PEM), instead of hub-ca-pin")
	f.StringToString("labels", nil, "the Cluster's labels: key=value,...")
	f.Duration("heartbeat-interval", def.HeartbeatInterval, "how often to tell the hub the member is alive, with its capacity")
	f.Bool("fence-watchdog", def.FenceWatchdog, "run the fence watchdog, a process that kills singleton pods when a paused agent misses their lease deadline (exec runtime, with a hub)")
	f.String("gossip-listen", "", "gossip address, UDP and TCP (empty disables gossip)")
	f.StringSlice("gossip-seeds", nil, "the hub's gossip addresses")
	f.String("gossip-key", "", "base64 gossip encryption key (the hub's)")
	f.StringSlice("gossip-secondary-keys", nil, "further gossip keys accepted during a rotation")
	f.String("gossip-profile", def.GossipProfile, "gossip timings: same-dc, cross-region, dev (one machine) or test")
	f.String("data-dir", def.DataDir, "directory for the store and the pods")
	f.String("listen", def.Listen, "local API address")
	f.String("http-listen", def.HTTPListen, "address of /healthz, /readyz and /metrics (empty disables)")
	f.String("pod-cidr", def.PodCIDR, "pod address range inside 127.0.0.0/8")
	f.String("service-cidr", def.ServiceCIDR, "Service virtual address range inside 127.0.0.0/8, apart from --pod-cidr")
	f.String("runtime", def.Runtime, "exec (real processes) or sim (simulated pods)")
	f.Int("node-count", def.NodeCount, "number of identical nodes to declare when the config file lists none")
	f.String("node-cpu", def.NodeCPU, "cpu capacity of each generated node")
	f.String("node-memory", def.NodeMemory, "memory capacity of each generated node")
	f.Int("node-pods", def.NodePods, "pod capacity of each generated node")
	f.Duration("crash-loop-backoff", def.CrashLoopBackoff, "first delay before restarting a crashing container (doubles up to 5m)")
	f.Duration("sim-start-delay", def.SimStartDelay, "how long a simulated pod takes to start (runtime sim)")
	f.Float64("sim-failure-rate", def.SimFailureRate, "fraction of simulated pods that fail to start (runtime sim)")
	f.Duration("shutdown-timeout", def.ShutdownTimeout, "bound on each step of shutdown")
	f.String("log-level", def.LogLevel, "debug, info, warn or error")
	return cmd
}
