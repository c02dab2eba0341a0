package host

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// FailureMode says what a call that gets no valid answer from the plugin
// (it failed, timed out, or the plugin is down) counts as.
type FailureMode string

const (
	// FailOpen lets the plugin's failure through: a filter passes the
	// cluster, a scorer scores every cluster 0 with Success, a failover
	// plugin accepts the proposal. For plugins whose opinion is a
	// preference (cost, locality).
	FailOpen FailureMode = "fail-open"
	// FailClosed makes the failure reject: a filter rejects the cluster as
	// Unschedulable (retried when inputs change), a scorer rejects every
	// cluster, a failover plugin vetoes the move. For plugins that enforce
	// a rule (residency, compliance). The default: a broken rule must not
	// let a workload run where it must not.
	FailClosed FailureMode = "fail-closed"
)

// DefaultTimeout is the per-call deadline when Config.Timeout is zero. A
// batched call to a local process takes well under a millisecond for 100
// clusters; 250ms leaves room for a slow plugin without letting a hung one
// hold a placement up noticeably.
const DefaultTimeout = 250 * time.Millisecond

// Config is one plugin as the hub's configuration lists it:
//
//	plugins:
//	  - name: residency
//	    path: /opt/meridian/plugins/residency
//	    sha256: 3b1f...
//	    timeout: 250ms
//	    failureMode: fail-closed
//	    config: {regions: {region-b: eu}}
type Config struct {
	// Name is the plugin's name in placement configuration and reasons;
	// unique among plugins.
	Name string
	// Path is the absolute path of the plugin executable.
	Path string
	// SHA256 is the hex SHA-256 the executable must hash to. Required: the
	// host refuses to start anything else, at start and at every restart.
	SHA256 string
	// Timeout is the deadline of every call (0: DefaultTimeout).
	Timeout time.Duration
	// FailureMode is what a failed call counts as ("": FailClosed).
	FailureMode FailureMode
	// Config is the plugin's config as JSON (the hub marshals the YAML
	// `config` value); empty means "{}".
	Config json.RawMessage
}

// ConfigError is a Config that is not valid, naming the field as the hub's
// configuration file does: `plugins[1].sha256: ...`.
type ConfigError struct {
	// Index is the plugin's position in the list.
	Index int
	// Field is the field's name in the configuration file ("sha256",
	// "config.regions.region-b").
	Field string
	// Message says what is wrong and how to fix it.
	Message string
}

// Error returns "plugins[<index>].<field>: <message>".
func (e *ConfigError) Error() string {
	return fmt.Sprintf("plugins[%d].%s: %s", e.Index, e.Field, e.Message)
}

func configErr(i int, field, format string, args ...any) error {
	return &ConfigError{Index: i, Field: field, Message: fmt.Sprintf(format, args...)}
}

// withDefaults returns cfgs validated, with defaults filled in and SHA256
// lowercased. The first error names its plugin and field.
func withDefaults(cfgs []Config) ([]Config, error) {
	out := make([]Config, len(cfgs))
	seen := make(map[string]int, len(cfgs))
	for i, c := range cfgs {
		switch {
		case strings.TrimSpace(c.Name) == "":
			return nil, configErr(i, "name", "must not be empty")
		case strings.ContainsAny(c.Name, " \t\n,:"):
			return nil, configErr(i, "name", "%q must not contain spaces, commas or colons", c.Name)
		}
		if j, dup := seen[c.Name]; dup {
			return nil, configErr(i, "name", "%q is already the name of plugins[%d]", c.Name, j)
		}
		seen[c.Name] = i
		if !filepath.IsAbs(c.Path) {
			return nil, configErr(i, "path", "%q must be an absolute path to the plugin executable", c.Path)
		}
		c.SHA256 = strings.ToLower(strings.TrimSpace(c.SHA256))
		if c.SHA256 == "" {
			return nil, configErr(i, "sha256", "is required: pin the executable with `sha256sum %s`", c.Path)
		}
		if b, err := hex.DecodeString(c.SHA256); err != nil || len(b) != 32 {
			return nil, configErr(i, "sha256", "%q must be 64 hex digits", c.SHA256)
		}
		switch {
		case c.Timeout < 0:
			return nil, configErr(i, "timeout", "%s must not be negative", c.Timeout)
		case c.Timeout == 0:
			c.Timeout = DefaultTimeout
		}
		switch c.FailureMode {
		case "":
			c.FailureMode = FailClosed
		case FailOpen, FailClosed:
		default:
			return nil, configErr(i, "failureMode", "%q must be %s or %s", c.FailureMode, FailOpen, FailClosed)
		}
		if len(strings.TrimSpace(string(c.Config))) == 0 {
			c.Config = json.RawMessage("{}")
		} else if !json.Valid(c.Config) {
			return nil, configErr(i, "config", "is not valid JSON")
		}
		out[i] = c
	}
	return out, nil
}
