package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	namespaceYAML = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"
	configMapJSON = `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "demo"}}`
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sources(docs []Document) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.Source)
	}
	return out
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"b.yml":            namespaceYAML,
		"a.json":           configMapJSON,
		"c.YAML":           namespaceYAML,
		"notes.txt":        "not a manifest",
		".hidden.yaml":     "kind: Broken\n",
		"sub/nested.yaml":  "kind: Broken\n",
		"d-multi.yaml":     namespaceYAML + "---\n" + namespaceYAML,
		"e-comments.yaml":  "# nothing yet\n",
		"sub.yaml/x.yaml":  "kind: Broken\n",
		"f-reference.yaml": namespaceYAML,
	})
	docs, err := Load([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.json", "b.yml", "c.YAML", "d-multi.yaml", "d-multi.yaml", "f-reference.yaml"}
	for i := range want {
		want[i] = filepath.Join(dir, want[i])
	}
	if got := sources(docs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("sources = %v\nwant %v", got, want)
	}
	if docs[4].Index != 2 {
		t.Errorf("second document of d-multi.yaml has index %d", docs[4].Index)
	}
}

func TestLoadFilesAndStdin(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ns.txt": namespaceYAML})
	file := filepath.Join(dir, "ns.txt")
	docs, err := Load([]string{file, "-"}, strings.NewReader(configMapJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got := sources(docs); len(got) != 2 || got[0] != file || got[1] != StdinSource {
		t.Errorf("sources = %v", got)
	}
	if docs, err := Load(nil, nil); err != nil || docs != nil {
		t.Errorf("Load(nil) = %v, %v", docs, err)
	}
}

func TestLoadCollectsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"good.yaml": namespaceYAML,
		"bad.yaml":  namespaceYAML + "---\nkind: Namespace\napiVersion: v2\nmetadata: {name: x}\n",
	})
	missing := filepath.Join(dir, "missing.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	docs, err := Load([]string{filepath.Join(dir, "good.yaml"), missing, empty, bad, "-"}, nil)
	if docs != nil {
		t.Errorf("Load returned %d documents with errors", len(docs))
	}
	want := []string{
		missing + ": no such file or directory",
		empty + ": no manifest files (*.yaml, *.yml, *.json) in directory",
		bad + `: document 2: apiVersion: "v2" is not supported for kind Namespace (use v1)`,
		"<stdin>: no standard input to read",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Load error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
