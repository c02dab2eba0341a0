package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// segment is the raw text of one YAML document of a stream.
type segment struct {
	data  []byte
	index int // 1-based document number
	line  int // 1-based line of the source on which the document starts
}

// utf8BOM is stripped from the start of a source: editors on Windows write it.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// isJSON reports whether a source holds JSON rather than YAML: like kubectl,
// it looks at the first character that is not white space.
func isJSON(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
}

// splitDocuments cuts a YAML stream into documents at separator lines: a
// line that starts with "---" followed by nothing but white space or a
// comment. Text before the first separator is a document only if it holds
// more than comments, as YAML says: a stream may open with "---". Every later
// document is counted, even an empty one, so that document numbers match
// what a reader counts in the file.
func splitDocuments(data []byte) []segment {
	var (
		segs    []segment
		cur     bytes.Buffer
		start   = 1
		line    = 1
		index   = 0
		started = false // a separator has been seen
	)
	flush := func() {
		if started || !isBlank(cur.Bytes()) {
			index++
			segs = append(segs, segment{data: bytes.Clone(cur.Bytes()), index: index, line: start})
		}
		cur.Reset()
	}
	for len(data) > 0 {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l = data[:i+1]
		}
		data = data[len(l):]
		if isSeparator(l) {
			flush()
			started = true
			start = line + 1
		} else {
			cur.Write(l)
		}
		line++
	}
	flush()
	return segs
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}

// isBlank reports whether a document holds nothing but white space,
// comments and directives (%YAML 1.1), which describe the document after
// them.
func isBlank(doc []byte) bool {
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !isBlankLine(l) {
			return false
		}
	}
	return true
}

func isBlankLine(l []byte) bool {
	if len(l) > 0 && l[0] == '%' {
		return true
	}
	l = bytes.TrimSpace(l)
	return len(l) == 0 || l[0] == '#'
}

// secondDocument finds a second YAML document inside one split document:
// one started by "--- " with content on the same line, or content after a
// "..." end marker. go-yaml would silently read only the first; this returns
// the 1-based line (in the document) where the second starts, or 0.
func secondDocument(doc []byte) int {
	content, ended := false, false
	for i, l := range bytes.Split(doc, []byte("\n")) {
		l = bytes.TrimRight(l, " \t\r")
		switch {
		case bytes.Equal(l, []byte("...")) || bytes.HasPrefix(l, []byte("... ")) || bytes.HasPrefix(l, []byte("...\t")):
			ended = true
		case bytes.HasPrefix(l, []byte("--- ")) || bytes.HasPrefix(l, []byte("---\t")):
			if content || ended {
				return i + 1
			}
			content = true
		case isBlankLine(l):
		case ended:
			return i + 1
		default:
			content = true
		}
	}
	return 0
}

// yamlLine matches the line number in go-yaml's messages.
var yamlLine = regexp.MustCompile(`^(yaml: )?line (\d+): `)

// parseYAML converts one YAML document to generic JSON values (objects are
// map[string]any, numbers json.Number). Duplicate keys are errors. The line
// numbers in error messages are moved from the document to the source, so
// that they point at the right line of a multi-document file.
func parseYAML(seg segment) (any, []string) {
	if n := secondDocument(seg.data); n > 0 {
		return nil, []string{fmt.Sprintf("yaml: line %d: a second document starts here; separate documents with a line of \"---\" alone", n+seg.line-1)}
	}
	j, err := yaml.YAMLToJSONStrict(seg.data)
	if err != nil {
		return nil, yamlMessages(err.Error(), seg)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, []string{"yaml: " + err.Error()}
	}
	return v, nil
}

// yamlMessages turns a go-yaml error into one message per problem (it lists
// several duplicate keys in one multi-line error), each as
// "yaml: line N: problem" with N a line of the source.
func yamlMessages(msg string, seg segment) []string {
	var lines []string
	if rest, ok := strings.CutPrefix(msg, "yaml: unmarshal errors:\n"); ok {
		for _, l := range strings.Split(rest, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, "yaml: "+l)
			}
		}
	} else {
		lines = strings.Split(msg, "\n")
	}
	for i, l := range lines {
		lines[i] = sourceLine(l, seg)
	}
	return lines
}

// yamlParserProblems are go-yaml's parser (not scanner) errors. go-yaml
// reports their line 0-based, and leaves it out on a document's first line;
// scanner errors have it 1-based, and also leave out the first line.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlScannerProblems are the prefixes of go-yaml's scanner errors.
var yamlScannerProblems = []string{
	"could not find expected", "did not find", "found ", "mapping values are not allowed",
	"block sequence entries are not allowed", "invalid leading UTF-8 octet",
	"invalid trailing UTF-8 octet", "incomplete UTF-8 octet sequence",
}

// sourceLine rewrites the line number of one go-yaml message as a line of
// the source: 1-based, counted from the top of the file, at most the
// document's last line (an unexpected end is reported past it).
func sourceLine(msg string, seg segment) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	line, problem := 0, msg
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, err := strconv.Atoi(m[2])
		if err != nil {
			return "yaml: " + msg
		}
		line, problem = n, msg[len(m[0]):]
	}
	switch {
	case slices.Contains(yamlParserProblems, problem):
		line++
	case line == 0 && hasAnyPrefix(problem, yamlScannerProblems):
		line = 1
	case line == 0:
		// Not about a place in the text (too much aliasing, a bad key type).
		return "yaml: " + problem
	}
	line = min(line, lineCount(seg.data))
	return fmt.Sprintf("yaml: line %d: %s", line+seg.line-1, problem)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// lineCount is the number of lines of a document, at least 1.
func lineCount(doc []byte) int {
	n := bytes.Count(doc, []byte("\n"))
	if len(doc) > 0 && doc[len(doc)-1] != '\n' {
		n++
	}
	return max(n, 1)
}

// maxJSONDepth bounds the nesting of JSON input, as encoding/json does.
const maxJSONDepth = 10000

// parseJSON decodes a JSON source into generic values. Unlike
// encoding/json, it rejects duplicate object keys, the same as the YAML path
// does, and it reports the line of every problem.
func parseJSON(data []byte) (any, error) {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, p.errorf("unexpected data after the top-level value")
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	dec  *json.Decoder
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("exceeded max depth of %d", maxJSONDepth)
	}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.wrap(err)
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for p.dec.More() {
			kt, err := p.dec.Token()
			if err != nil {
				return nil, p.wrap(err)
			}
			key, ok := kt.(string)
			if !ok {
				return nil, p.errorf("object key is not a string")
			}
			if _, dup := obj[key]; dup {
				return nil, p.errorf("duplicate key %q", key)
			}
			if obj[key], err = p.value(depth + 1); err != nil {
				return nil, err
			}
		}
		if _, err := p.dec.Token(); err != nil {
			return nil, p.wrap(err)
		}
		return obj, nil
	case json.Delim('['):
		list := []any{}
		for p.dec.More() {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		if _, err := p.dec.Token(); err != nil {
			return nil, p.wrap(err)
		}
		return list, nil
	default:
		// A string, json.Number, bool or nil.
		return tok, nil
	}
}

// errorf reports a problem at the decoder's current position.
func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("json: line %d: %s", p.lineAt(p.dec.InputOffset()), fmt.Sprintf(format, args...))
}

func (p *jsonParser) wrap(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("json: line %d: %s", p.lineAt(syn.Offset), syn.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("json: line %d: unexpected end of input", p.lineAt(int64(len(p.data))))
	default:
		return fmt.Errorf("json: %w", err)
	}
}

func (p *jsonParser) lineAt(offset int64) int {
	offset = max(0, min(offset, int64(len(p.data))))
	return 1 + bytes.Count(p.data[:offset], []byte("\n"))
}
