package manifest

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Error is one problem found in a manifest: where it is (the file or stream,
// the 1-based document number, the field path) and what is wrong.
type Error struct {
	// Source names the file the manifest came from ("<stdin>" for standard
	// input).
	Source string
	// Document is the 1-based number of the YAML document in Source; 0 when
	// the problem concerns the source as a whole (it could not be read).
	Document int
	// Path is the field path in Kubernetes notation
	// ("spec.template.spec.containers[0].image", "metadata.labels[app]");
	// empty when the problem is not about one field (a YAML syntax error).
	Path string
	// Message says what is wrong.
	Message string
}

// Error renders the problem as "SOURCE: document N: PATH: MESSAGE", leaving
// out the parts that are not known.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Document > 0 {
		fmt.Fprintf(&b, "document %d: ", e.Document)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem found in a set of manifests, in the order they were
// found: by source, then document, then field.
type Errors []*Error

// Error renders one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// orNil returns es as an error, or a nil error when there are no problems
// (never a non-nil interface holding an empty list).
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// childPath appends a field name to a path: "spec" + "replicas" is
// "spec.replicas".
func childPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// indexPath appends a list index: "containers" + 0 is "containers[0]".
func indexPath(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// keyPath appends a map key: "labels" + "app" is "labels[app]".
func keyPath(path, key string) string {
	return path + "[" + key + "]"
}

// maxShown bounds how much of a bad string value an error message repeats.
const maxShown = 64

// describe names the JSON type of a decoded value, with the value itself for
// scalars: `string "three"`, `number 1.5`, `boolean true`, `object`.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case json.Number:
		return "number " + truncate(string(v))
	case string:
		return "string " + quote(v)
	case map[string]any:
		return "object"
	case []any:
		return "list"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// quote renders s as a Go-quoted string, shortened if it is long.
func quote(s string) string {
	return fmt.Sprintf("%q", truncate(s))
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	r := []rune(s)
	return string(r[:maxShown]) + "..."
}

// suggestField returns ` (did you mean "x"?)` when the unknown key is close to
// one of the message's field names, and "" otherwise.
func suggestField(key string, fields protoreflect.FieldDescriptors) string {
	names := make([]string, fields.Len())
	for i := range names {
		names[i] = fields.Get(i).JSONName()
	}
	if best := closest(key, names); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// closest returns the candidate most like s, or "" if none is close enough to
// be a likely typo: the same name in another case or with '_' or '-' left in
// ("container_port" for "containerPort"), or an edit distance of at most 2
// that leaves most of the name intact.
func closest(s string, candidates []string) string {
	norm := normalize(s)
	for _, c := range candidates {
		if normalize(c) == norm {
			return c
		}
	}
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist && d*2 < len(s) {
			best, bestDist = c, d
		}
	}
	return best
}

func normalize(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer("_", "", "-", "").Replace(s)
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent bytes
// each cost one.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Names are short; a long key is no typo of one.
		return 1 << 30
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
