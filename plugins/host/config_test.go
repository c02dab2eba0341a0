package host

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidation(t *testing.T) {
	good := Config{Name: "residency", Path: "/opt/meridian/plugins/residency", SHA256: strings.Repeat("ab", 32)}
	for _, tc := range []struct {
		name  string
		cfgs  func() []Config
		field string
		index int
	}{
		{"empty name", func() []Config { c := good; c.Name = ""; return []Config{c} }, "name", 0},
		{"duplicate name", func() []Config { return []Config{good, good} }, "name", 1},
		{"relative path", func() []Config { c := good; c.Path = "plugins/residency"; return []Config{c} }, "path", 0},
		{"no sha256", func() []Config { c := good; c.SHA256 = ""; return []Config{c} }, "sha256", 0},
		{"short sha256", func() []Config { c := good; c.SHA256 = "3b1f"; return []Config{c} }, "sha256", 0},
		{"negative timeout", func() []Config { c := good; c.Timeout = -1; return []Config{c} }, "timeout", 0},
		{"failure mode", func() []Config { c := good; c.FailureMode = "fail-sometimes"; return []Config{c} }, "failureMode", 0},
		{"config not JSON", func() []Config { c := good; c.Config = []byte("{regions: "); return []Config{good2(), c} }, "config", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfgs(), nil)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New = %v, want a *ConfigError", err)
			}
			if ce.Index != tc.index || ce.Field != tc.field {
				t.Errorf("error names plugins[%d].%s, want plugins[%d].%s (%v)", ce.Index, ce.Field, tc.index, tc.field, err)
			}
			if !strings.HasPrefix(err.Error(), ce.Error()[:len("plugins[0].")]) {
				t.Errorf("error %q does not start with the field", err)
			}
		})
	}
}

func good2() Config {
	return Config{Name: "costaware", Path: "/opt/meridian/plugins/costaware", SHA256: strings.Repeat("cd", 32)}
}

func TestConfigDefaults(t *testing.T) {
	cfgs, err := withDefaults([]Config{{Name: "p", Path: "/p", SHA256: strings.Repeat("AB", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0]
	if c.Timeout != DefaultTimeout || c.FailureMode != FailClosed || string(c.Config) != "{}" || c.SHA256 != strings.Repeat("ab", 32) {
		t.Errorf("defaults = %+v", c)
	}
}
