package override

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// overrideImage applies an imageOverrider to the named container, or to
// every container and init container when it names none. A change is
// recorded per container whose image changed.
//
// Components and operators, as Karmada's imageOverrider:
//   - Registry: add appends value to the registry (reg.io + "-eu" =
//     reg.io-eu; an image without one gets value as its registry), remove
//     drops it, replace sets it.
//   - Repository: add appends value to the repository, remove drops it
//     (which leaves no valid image: an error), replace sets it.
//   - Tag: replace sets the tag, or the digest when value is one
//     (sha256:…), and drops the other: a digest would pin the old content
//     under a new tag. add appends value to the tag (a missing tag becomes
//     value) and drops the digest; remove drops tag and digest.
//   - no component: the whole image; add appends value to it, remove
//     empties it, replace sets it.
//
// A container without an image (the exec runtime runs its command) is
// left alone by component overrides: there is nothing to change in it.
func overrideImage(spec *meridianv1.PodSpec, io *meridianv1.ImageOverrider) ([]string, error) {
	targets := allContainers(spec)
	if name := io.GetContainerName(); name != "" {
		c, err := findContainer(spec, name)
		if err != nil {
			return nil, err
		}
		targets = []*meridianv1.Container{c}
	}
	var changes []string
	for _, c := range targets {
		img, err := overriddenImage(c.GetImage(), io)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", c.GetName(), err)
		}
		if img == c.GetImage() {
			continue
		}
		c.Image = img
		if img == "" {
			changes = append(changes, fmt.Sprintf("image of container %s removed", c.GetName()))
		} else {
			changes = append(changes, fmt.Sprintf("image of container %s → %s", c.GetName(), img))
		}
	}
	return changes, nil
}

// overriddenImage returns what io makes of image (see overrideImage).
func overriddenImage(old string, io *meridianv1.ImageOverrider) (string, error) {
	comp, op, v := io.GetComponent(), io.GetOperator(), io.GetValue()
	if !slices.Contains([]string{OpAdd, OpRemove, OpReplace}, op) {
		return "", fmt.Errorf("%w: operator %q is not add, remove or replace", ErrInvalidOverrider, op)
	}
	var out string
	switch comp {
	case "":
		switch op {
		case OpAdd:
			out = old + v
		case OpReplace:
			out = v
		}
		if out == "" {
			return "", nil
		}
	case ComponentRegistry, ComponentRepository, ComponentTag:
		if old == "" {
			return "", nil
		}
		im, err := parseImage(old)
		if err != nil {
			return "", fmt.Errorf("%w %q: %v", ErrInvalidImage, old, err)
		}
		overrideComponent(&im, comp, op, v)
		out = im.String()
	default:
		return "", fmt.Errorf("%w: component %q is not Registry, Repository or Tag", ErrInvalidOverrider, comp)
	}
	if _, err := parseImage(out); err != nil {
		what := op
		if comp != "" {
			what = comp + " " + op
		}
		if v != "" {
			what += fmt.Sprintf(" %q", v)
		}
		return "", fmt.Errorf("%w: %s on %q makes %q: %v", ErrInvalidImage, what, old, out, err)
	}
	return out, nil
}

// overrideComponent changes one component of im.
func overrideComponent(im *image, comp, op, v string) {
	switch comp {
	case ComponentRegistry:
		im.registry = set(im.registry, op, v)
	case ComponentRepository:
		im.repository = set(im.repository, op, v)
	case ComponentTag:
		switch {
		case op == OpRemove:
			im.tag, im.digest = "", ""
		case op == OpReplace && isDigest(v):
			im.tag, im.digest = "", v
		default:
			im.tag, im.digest = set(im.tag, op, v), ""
		}
	}
}

// set is what add, remove or replace makes of a string component.
func set(cur, op, v string) string {
	switch op {
	case OpAdd:
		return cur + v
	case OpReplace:
		return v
	}
	return ""
}

// overrideCommandArgs applies a commandOverrider or argsOverrider (field is
// "command" or "args") to the named container: add appends the values,
// remove drops every item equal to one of them.
func overrideCommandArgs(spec *meridianv1.PodSpec, ca *meridianv1.CommandArgsOverrider, field string) ([]string, error) {
	c, err := findContainer(spec, ca.GetContainerName())
	if err != nil {
		return nil, err
	}
	list := &c.Command
	if field == "args" {
		list = &c.Args
	}
	old := slices.Clone(*list)
	switch ca.GetOperator() {
	case OpAdd:
		*list = append(*list, ca.GetValue()...)
	case OpRemove:
		*list = slices.DeleteFunc(*list, func(s string) bool { return slices.Contains(ca.GetValue(), s) })
	default:
		return nil, fmt.Errorf("%w: operator %q is not add or remove", ErrInvalidOverrider, ca.GetOperator())
	}
	if slices.Equal(old, *list) {
		return nil, nil
	}
	return []string{fmt.Sprintf("%s of container %s → %q", field, c.GetName(), *list)}, nil
}

// overrideEnv applies an envOverrider to the named container: add sets
// each variable (replacing every variable of that name, or appending it),
// replace replaces the variables of those names that exist, remove drops
// the variables of those names. A variable is replaced whole, value or
// valueFrom. Values are never recorded (they may be secret).
func overrideEnv(spec *meridianv1.PodSpec, eo *meridianv1.EnvOverrider) ([]string, error) {
	c, err := findContainer(spec, eo.GetContainerName())
	if err != nil {
		return nil, err
	}
	op := eo.GetOperator()
	if !slices.Contains([]string{OpAdd, OpRemove, OpReplace}, op) {
		return nil, fmt.Errorf("%w: operator %q is not add, remove or replace", ErrInvalidOverrider, op)
	}
	var changes []string
	for _, v := range eo.GetValue() {
		name := v.GetName()
		if op == OpRemove {
			n := len(c.Env)
			c.Env = slices.DeleteFunc(c.Env, func(e *meridianv1.EnvVar) bool { return e.GetName() == name })
			if len(c.Env) != n {
				changes = append(changes, fmt.Sprintf("env %s of container %s removed", name, c.GetName()))
			}
			continue
		}
		found, changed := false, false
		for i, e := range c.Env {
			if e.GetName() != name {
				continue
			}
			found = true
			if !proto.Equal(e, v) {
				c.Env[i], changed = proto.Clone(v).(*meridianv1.EnvVar), true
			}
		}
		if !found && op == OpAdd {
			c.Env, changed = append(c.Env, proto.Clone(v).(*meridianv1.EnvVar)), true
		}
		if changed {
			verb := "set"
			if op == OpReplace {
				verb = "replaced"
			}
			changes = append(changes, fmt.Sprintf("env %s of container %s %s", name, c.GetName(), verb))
		}
	}
	return changes, nil
}

// overrideMap applies a labelsOverrider or annotationsOverrider (what is
// "label" or "annotation") to m: add sets each key, replace sets the keys
// that exist, remove deletes the keys (their values are ignored). Keys
// are handled in sorted order, so the changes read the same every time.
func overrideMap(m *map[string]string, la *meridianv1.LabelAnnotationOverrider, what string) ([]string, error) {
	op := la.GetOperator()
	if !slices.Contains([]string{OpAdd, OpRemove, OpReplace}, op) {
		return nil, fmt.Errorf("%w: operator %q is not add, remove or replace", ErrInvalidOverrider, op)
	}
	keys := make([]string, 0, len(la.GetValue()))
	for k := range la.GetValue() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var changes []string
	for _, k := range keys {
		v := la.GetValue()[k]
		cur, exists := (*m)[k]
		switch {
		case op == OpRemove:
			if exists {
				delete(*m, k)
				changes = append(changes, fmt.Sprintf("%s %s removed", what, k))
			}
		case op == OpReplace && !exists, exists && cur == v:
		default:
			if *m == nil {
				*m = map[string]string{}
			}
			(*m)[k] = v
			changes = append(changes, fmt.Sprintf("%s %s → %s", what, k, abbreviate(v)))
		}
	}
	return changes, nil
}

// abbreviate shortens a long value (an annotation may hold a whole
// document) for a change line.
func abbreviate(v string) string {
	const limit = 64
	if r := []rune(v); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return v
}

// allContainers returns the containers, then the init containers.
func allContainers(spec *meridianv1.PodSpec) []*meridianv1.Container {
	return append(slices.Clone(spec.GetContainers()), spec.GetInitContainers()...)
}

// findContainer returns the container or init container called name.
func findContainer(spec *meridianv1.PodSpec, name string) (*meridianv1.Container, error) {
	all := allContainers(spec)
	for _, c := range all {
		if c.GetName() == name {
			return c, nil
		}
	}
	names := make([]string, 0, len(all))
	for _, c := range all {
		names = append(names, c.GetName())
	}
	has := "it has none"
	if len(names) > 0 {
		has = "it has: " + strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("container %q: %w (%s)", name, ErrContainerNotFound, has)
}
