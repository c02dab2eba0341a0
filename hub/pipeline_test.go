package hub

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPipeline(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "hub.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plugins, pl, err := ReadPipeline(write(`listen: 127.0.0.1:7700
plugins:
- name: residency
  path: /opt/residency
  sha256: abc
  timeout: 300ms
  failureMode: fail-open
  config: {regions: {region-B: eu}, unknownPrice: 2}
placement:
  filters: [ClusterAffinity, residency]
  scorers: [{name: Locality, weight: 2}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(plugins) != 1 || plugins[0].FailureMode != "fail-open" || plugins[0].Timeout != "300ms" {
		t.Fatalf("plugins %+v", plugins)
	}
	// The plugin's own config keeps its case (viper would fold it).
	if got := string(plugins[0].Config); !strings.Contains(got, `"region-B"`) || !strings.Contains(got, `"unknownPrice"`) {
		t.Errorf("config %s lost its case", got)
	}
	if len(pl.Filters) != 2 || pl.Scorers[0].Weight != 2 {
		t.Errorf("placement %+v", pl)
	}
	for body, want := range map[string]string{
		"plugins:\n- name: x\n  sha: abc\n":         `plugins: json: unknown field "sha"`,
		"placement:\n  filter: [ClusterAffinity]\n": `placement: json: unknown field "filter"`,
	} {
		if _, _, err := ReadPipeline(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadPipeline(%q) = %v, want an error containing %q", body, err, want)
		}
	}
}

func TestStartPipelineRefusesBadConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Placement: PlacementConfig{Filters: []string{"ClusterAffinity", "nope"}}}, `placement.filters[1]: no plugin named "nope"`},
		{Config{Placement: PlacementConfig{Scorers: []PlacementScorerConfig{{Name: "Locality"}}}}, `placement.scorers[0].weight: must be positive`},
		{Config{Plugins: []PluginConfig{{Name: "ClusterAffinity", Path: "/bin/true", SHA256: strings.Repeat("0", 64)}}}, `plugins[0].name: "ClusterAffinity" is the name of a built-in policy`},
		{Config{Plugins: []PluginConfig{{Name: "x", Path: "/bin/true", SHA256: strings.Repeat("0", 64), Timeout: "soon"}}}, `plugins[0].timeout: "soon" is not a positive duration`},
		{Config{Plugins: []PluginConfig{{Name: "x", Path: "/bin/true", SHA256: strings.Repeat("0", 64)}}}, `checksum`},
	} {
		p, err := startPipeline(tc.cfg, nil, log)
		if err == nil {
			p.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("startPipeline(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	p, err := startPipeline(Config{}, nil, log)
	if err != nil {
		t.Fatalf("the default pipeline: %v", err)
	}
	defer p.Close()
	resp, err := p.ListPlugins(t.Context(), nil)
	if err != nil || len(resp.GetPlugins()) != 8 || resp.GetFilters()[0] != "ClusterAffinity" || resp.GetDivide()[1] != "ReplicaDivision" {
		t.Fatalf("ListPlugins = %v, %v", resp, err)
	}
}
