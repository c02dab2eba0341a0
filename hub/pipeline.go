package hub

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meridian-fed/meridian/hub/placement"
	"github.com/meridian-fed/meridian/plugins/host"
	"github.com/meridian-fed/meridian/policies/framework"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// pipeline is a hub node's placement engine: the built-in policies, the
// out-of-process plugins it hosts, and their order. It serves
// PlacementService.
type pipeline struct {
	meridianv1.UnimplementedPlacementServiceServer

	order    placement.Config
	engine   *placement.Engine
	host     *host.Host // nil without plugins
	builtins []framework.Plugin
}

// startPipeline starts the configured plugins and builds the engine. An
// error names the config key at fault.
func startPipeline(cfg Config, reg prometheus.Registerer, log *slog.Logger) (_ *pipeline, err error) {
	p := &pipeline{order: placement.DefaultConfig(), builtins: placement.Builtins()}
	if pc := cfg.Placement; len(pc.Filters) > 0 || len(pc.Scorers) > 0 || len(pc.Divide) > 0 {
		if len(pc.Filters) > 0 {
			p.order.Filters = pc.Filters
		}
		if len(pc.Scorers) > 0 {
			p.order.Scorers = nil
			for _, s := range pc.Scorers {
				p.order.Scorers = append(p.order.Scorers, placement.WeightedScorer{Name: s.Name, Weight: s.Weight})
			}
		}
		if len(pc.Divide) > 0 {
			p.order.Divide = pc.Divide
		}
	}
	plugins := slices.Clone(p.builtins)
	if len(cfg.Plugins) > 0 {
		hcfgs := make([]host.Config, len(cfg.Plugins))
		for i, pc := range cfg.Plugins {
			hc := host.Config{Name: pc.Name, Path: pc.Path, SHA256: pc.SHA256, FailureMode: host.FailureMode(pc.FailureMode), Config: pc.Config}
			if pc.Path != "" && !filepath.IsAbs(pc.Path) {
				if hc.Path, err = filepath.Abs(pc.Path); err != nil {
					return nil, fmt.Errorf("plugins[%d].path: %w", i, err)
				}
			}
			if pc.Timeout != "" {
				if hc.Timeout, err = time.ParseDuration(pc.Timeout); err != nil || hc.Timeout <= 0 {
					return nil, fmt.Errorf("plugins[%d].timeout: %q is not a positive duration such as 250ms", i, pc.Timeout)
				}
			}
			for _, b := range p.builtins {
				if b.Name() == pc.Name {
					return nil, fmt.Errorf("plugins[%d].name: %q is the name of a built-in policy", i, pc.Name)
				}
			}
			hcfgs[i] = hc
		}
		if p.host, err = host.New(hcfgs, log.With("component", "plugins"), host.WithRegisterer(reg)); err != nil {
			return nil, fmt.Errorf("failed to start plugins: %w", err)
		}
		plugins = append(plugins, p.host.Plugins()...)
	}
	if p.engine, err = placement.New(p.order, plugins); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the plugins.
func (p *pipeline) Close() error {
	if p.host == nil {
		return nil
	}
	return p.host.Close()
}

// ListPlugins implements PlacementService.
func (p *pipeline) ListPlugins(context.Context, *meridianv1.ListPluginsRequest) (*meridianv1.ListPluginsResponse, error) {
	resp := &meridianv1.ListPluginsResponse{Filters: p.order.Filters, Divide: p.order.Divide}
	for _, s := range p.order.Scorers {
		resp.Scorers = append(resp.Scorers, &meridianv1.WeightedScorer{Name: s.Name, Weight: s.Weight})
	}
	for _, b := range p.builtins {
		resp.Plugins = append(resp.Plugins, &meridianv1.PluginInfo{Name: b.Name(), Builtin: true, ExtensionPoints: extensionPoints(b)})
	}
	if p.host != nil {
		for _, in := range p.host.List() {
			var eps []string
			for _, c := range in.Capabilities {
				eps = append(eps, strings.ToUpper(string(c[:1]))+string(c[1:]))
			}
			resp.Plugins = append(resp.Plugins, &meridianv1.PluginInfo{
				Name: in.Name, ExtensionPoints: eps, Path: in.Path, Sha256: in.SHA256, Version: in.PluginVersion,
				ApiVersion: in.APIVersion, State: string(in.State), Restarts: int32(in.Restarts), LastError: in.LastError,
				Pid: int32(in.PID), Calls: in.Calls, Failures: in.Failures, FailureMode: string(in.FailureMode),
				Timeout: durationpb.New(in.Timeout),
			})
		}
	}
	slices.SortFunc(resp.Plugins, func(a, b *meridianv1.PluginInfo) int { return strings.Compare(a.GetName(), b.GetName()) })
	return resp, nil
}

func extensionPoints(p framework.Plugin) []string {
	var out []string
	if _, ok := p.(framework.FilterPlugin); ok {
		out = append(out, "Filter")
	}
	if _, ok := p.(framework.ScorePlugin); ok {
		out = append(out, "Score")
	}
	if _, ok := p.(framework.DividePlugin); ok {
		out = append(out, "Divide")
	}
	if _, ok := p.(framework.FailoverPlugin); ok {
		out = append(out, "Failover")
	}
	return out
}
