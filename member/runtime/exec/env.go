package exec

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// envList is an ordered environment in which a later definition of a name
// replaces the earlier one in place.
type envList struct {
	names  []string
	values map[string]string
}

func newEnvList() *envList { return &envList{values: make(map[string]string)} }

func (e *envList) set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

// setPairs adds NAME=value pairs; entries without "=" are ignored.
func (e *envList) setPairs(pairs []string) {
	for _, kv := range pairs {
		if name, value, ok := strings.Cut(kv, "="); ok && name != "" {
			e.set(name, value)
		}
	}
}

func (e *envList) lookup(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

// environ returns the list as NAME=value pairs for os/exec.
func (e *envList) environ() []string {
	out := make([]string, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, n+"="+e.values[n])
	}
	return out
}

// mapping returns the $(VAR) mapping over e: defined names expand to their
// values, undefined ones stay as written.
func (e *envList) mapping() func(string) string {
	return func(name string) string {
		if v, ok := e.values[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
}

// containerEnv builds the environment of container c of pod p, in increasing
// precedence: the driver's base environment, HOME (the pod directory), the
// agent's pod-wide variables (PodRequest.Env), the pod variables (POD_NAME,
// POD_NAMESPACE, POD_IP, HOSTNAME, PORT), the resolved envFrom values, then
// the container's env list in order. Each env value may refer to variables
// defined before it as $(VAR), as in Kubernetes.
func containerEnv(base []string, p *podRequest, podDir string, c *meridianv1.Container) *envList {
	env := newEnvList()
	env.setPairs(base)
	// Many tools need a writable HOME; the pod directory is the one place
	// that is the pod's own.
	env.set("HOME", podDir)
	env.setPairs(p.env)
	env.set("POD_NAME", p.name)
	env.set("POD_NAMESPACE", p.namespace)
	env.set("POD_IP", p.ip)
	hostname := p.spec.GetHostname()
	if hostname == "" {
		hostname = p.name
	}
	env.set("HOSTNAME", hostname)
	if ports := c.GetPorts(); len(ports) > 0 && ports[0].GetContainerPort() > 0 {
		env.set("PORT", strconv.Itoa(int(ports[0].GetContainerPort())))
	}
	resolved := newEnvList()
	resolved.setPairs(p.containerEnv[c.GetName()])
	fromEntries := make(map[string]bool)
	for _, ev := range c.GetEnv() {
		if ev.GetValueFrom() != nil {
			fromEntries[ev.GetName()] = true
		}
	}
	// What the agent resolved for envFrom comes before the env list.
	for _, n := range resolved.names {
		if !fromEntries[n] {
			env.set(n, resolved.values[n])
		}
	}
	for _, ev := range c.GetEnv() {
		if ev.GetValueFrom() == nil {
			env.set(ev.GetName(), Expand(ev.GetValue(), env.mapping()))
			continue
		}
		if v, ok := resolved.lookup(ev.GetName()); ok {
			env.set(ev.GetName(), v)
		} else if v, ok := fieldRef(p, ev.GetValueFrom().GetFieldRef()); ok {
			env.set(ev.GetName(), v)
		}
	}
	return env
}

// fieldRef resolves the downward-API fields the driver knows itself.
func fieldRef(p *podRequest, f *meridianv1.ObjectFieldSelector) (string, bool) {
	switch f.GetFieldPath() {
	case "metadata.name":
		return p.name, true
	case "metadata.namespace":
		return p.namespace, true
	case "metadata.uid":
		return p.uid, true
	case "status.podIP":
		return p.ip, true
	case "spec.nodeName":
		return p.spec.GetNodeName(), true
	}
	return "", false
}

// Expand replaces each $(VAR) in s with mapping(VAR), following the
// Kubernetes rules for command, args and env values: "$$" is an escaped "$",
// so "$$(VAR)" yields the literal "$(VAR)"; a "$" not followed by "(" or "$",
// and an unclosed "$(", are kept as written. The mapping decides what an
// undefined name yields (the drivers keep "$(VAR)" as written).
func Expand(s string, mapping func(string) string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	checkpoint := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
			} else {
				b.WriteString(mapping(s[i+2 : i+2+end]))
				i += 2 + end
			}
		default:
			b.WriteByte('$')
			b.WriteByte(s[i+1])
			i++
		}
		checkpoint = i + 1
	}
	b.WriteString(s[checkpoint:])
	return b.String()
}

// commandLine returns the container's expanded command and arguments.
func commandLine(c *meridianv1.Container, env *envList) []string {
	m := env.mapping()
	argv := make([]string, 0, len(c.GetCommand())+len(c.GetArgs()))
	for _, a := range c.GetCommand() {
		argv = append(argv, Expand(a, m))
	}
	for _, a := range c.GetArgs() {
		argv = append(argv, Expand(a, m))
	}
	return argv
}

// lookPath finds the executable for name the way a shell would with the
// container's PATH (not the agent's): names with a slash are used as they
// are (relative ones are resolved against dir by os/exec).
func lookPath(name string, env *envList) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, _ := env.lookup("PATH")
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			continue
		}
		f := filepath.Join(d, name)
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return f, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in the container's PATH %q", name, path)
}

// workingDir returns where container c runs: its workingDir, relative to the
// pod directory unless absolute, or the pod directory itself.
func workingDir(podDir string, c *meridianv1.Container) string {
	wd := c.GetWorkingDir()
	switch {
	case wd == "":
		return podDir
	case filepath.IsAbs(wd):
		return wd
	default:
		return filepath.Join(podDir, wd)
	}
}

// defaultBaseEnv is what processes inherit from the agent when the Config
// sets no BaseEnv: enough to find commands and keep a locale, nothing that
// leaks the agent's own settings.
func defaultBaseEnv() []string {
	var out []string
	for _, n := range []string{"PATH", "LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(n); ok {
			out = append(out, n+"="+v)
		}
	}
	if len(out) == 0 || !strings.HasPrefix(out[0], "PATH=") {
		out = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, out...)
	}
	return out
}
