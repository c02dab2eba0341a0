package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// loadConfig fills target from, lowest precedence first: the defaults already
// in target, the file named by --config, MERIDIAN_* environment variables and
// the command's flags. Every key is a flag name (data-dir, listen, ...), in
// the file too, and a key nobody knows is an error rather than a silent no-op.
// fileOnly names structured keys (lists of plugins...) that only a file
// sets: they and their sub-keys are known, and left for the caller to read
// (viper would fold the case of their map keys).
func loadConfig(cmd *cobra.Command, configFile string, target any, fileOnly ...string) error {
	v := viper.New()
	v.SetEnvPrefix("MERIDIAN")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()

	known := map[string]bool{}
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" {
			return
		}
		known[f.Name] = true
		if err := v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return fmt.Errorf("failed to bind flags: %w", bindErr)
	}
	if configFile != "" {
		v.SetConfigFile(configFile)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("config file %s: %w", configFile, err)
		}
		var unknown []string
		for _, k := range v.AllKeys() {
			top, _, _ := strings.Cut(k, ".")
			if !known[k] && !slices.Contains(fileOnly, top) {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown keys %s (known keys are the flag names of %q)", configFile, strings.Join(unknown, ", "), cmd.CommandPath())
		}
	}
	dc := &mapstructure.DecoderConfig{
		Result:           target,
		WeaklyTypedInput: true,
		ErrorUnused:      false,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	}
	settings := map[string]any{}
	for k := range known {
		settings[k] = v.Get(k)
	}

	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return err
	}
	if err := dec.Decode(settings); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}
