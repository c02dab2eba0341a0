package manifest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// testdata is the shared manifest corpus: good/ holds valid manifests of
// every kind, bad/ holds manifests with known problems, each starting with
// the exact errors it must produce as "# want: " comment lines (before
// decoding, the test blanks those lines, so that JSON files stay JSON).
const testdata = "../../../test/testdata"

const wantPrefix = "# want: "

// update rewrites the "# want:" lines of the bad corpus with what Decode
// reports: go test ./proto/meridian/manifest -run TestBadManifests -update
// (then review the diff).
var update = flag.Bool("update", false, "rewrite the # want: lines of test/testdata/bad")

// corpus returns the manifest files of test/testdata/<dir>, sorted.
func corpus(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(testdata, dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && isManifestName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

func readCorpus(t testing.TB, dir, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdata, dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestGoodManifests(t *testing.T) {
	names := corpus(t, "good")
	if len(names) < 12 {
		t.Errorf("good corpus has %d files, want at least 12", len(names))
	}
	kinds := map[string]bool{}
	total := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			docs, err := Decode(readCorpus(t, "good", name), "good/"+name)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(docs) == 0 {
				t.Fatal("no documents")
			}
			for _, d := range docs {
				total++
				kinds[d.Kind.Kind] = true
				if d.Source != "good/"+name || d.Index < 1 {
					t.Errorf("document source %q index %d", d.Source, d.Index)
				}
				if d.Kind.Namespaced && d.Object.GetMetadata().GetNamespace() != "demo" {
					t.Errorf("%s %s is not in namespace demo", d.Kind.Kind, d.Object.GetMetadata().GetName())
				}
				assertRoundTrip(t, d.Object)
			}
		})
	}
	for _, k := range []string{"Namespace", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob",
		"Service", "ConfigMap", "Secret", "Cluster", "PropagationPolicy", "OverridePolicy"} {
		if !kinds[k] {
			t.Errorf("good corpus has no %s", k)
		}
	}
	docs, err := Load([]string{filepath.Join(testdata, "good")}, nil)
	if err != nil || len(docs) != total {
		t.Errorf("Load(good/) = %d documents, %v; want %d", len(docs), err, total)
	}
}

// assertRoundTrip checks that an object survives MarshalYAML and
// MarshalJSON followed by Decode unchanged.
func assertRoundTrip(t testing.TB, obj resource.Object) {
	t.Helper()
	for _, m := range []struct {
		name    string
		marshal func(resource.Object) ([]byte, error)
	}{{"yaml", MarshalYAML}, {"json", MarshalJSON}} {
		out, err := m.marshal(obj)
		if err != nil {
			t.Fatalf("Marshal %s: %v", m.name, err)
		}
		back, err := Decode(out, "roundtrip."+m.name)
		if err != nil {
			t.Fatalf("Decode(Marshal %s): %v\n%s", m.name, err, out)
		}
		if len(back) != 1 || !proto.Equal(back[0].Object, obj) {
			t.Fatalf("%s round trip changed the object:\n%s\ngot back: %v", m.name, out, back)
		}
	}
}

func TestBadManifests(t *testing.T) {
	names := corpus(t, "bad")
	if len(names) < 45 {
		t.Errorf("bad corpus has %d files, want at least 45", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data := readCorpus(t, "bad", name)
			want, body := splitWant(data)
			// The want lines are blanked rather than left as comments, so
			// that a JSON file is still JSON and every line keeps its number.
			blanked := append(bytes.Repeat([]byte("\n"), len(want)), body...)
			docs, err := Decode(blanked, "bad/"+name)
			if err == nil {
				t.Fatalf("Decode accepted it (%d documents)", len(docs))
			}
			if docs != nil {
				t.Errorf("Decode returned %d documents with an error", len(docs))
			}
			got := strings.Split(err.Error(), "\n")
			if *update {
				var b bytes.Buffer
				for _, l := range got {
					b.WriteString(wantPrefix + l + "\n")
				}
				b.Write(body)
				if err := os.WriteFile(filepath.Join(testdata, "bad", name), b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(want) == 0 {
				t.Fatalf("no %q lines; Decode says:\n%s", wantPrefix, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("errors differ (if the change is intended, rewrite the want lines with -update and review the diff)\n got: %s\nwant: %s",
					strings.Join(got, "\n      "), strings.Join(want, "\n      "))
			}
		})
	}
}

// splitWant separates the leading "# want: " lines of a bad manifest from
// the rest of it.
func splitWant(data []byte) (want []string, rest []byte) {
	rest = data
	for {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		s, ok := strings.CutPrefix(strings.TrimRight(string(line), "\r"), wantPrefix)
		if !ok {
			return want, rest
		}
		want = append(want, s)
		rest = after
	}
}

// FuzzDecode feeds Decode arbitrary input, seeded with the whole corpus. It
// must never panic; an error must be an Errors naming the source; and
// whatever it accepts must survive MarshalYAML and a second Decode
// unchanged. Crashers found are kept in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		for _, name := range corpus(f, dir) {
			f.Add(readCorpus(f, dir, name))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Decode(data, "fuzz.yaml")
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Decode returned %T %v, want a non-empty Errors", err, err)
			}
			for _, e := range errs {
				if e.Source != "fuzz.yaml" || e.Document < 1 || e.Message == "" {
					t.Fatalf("malformed error %#v", e)
				}
			}
			if docs != nil {
				t.Fatalf("Decode returned %d documents with an error", len(docs))
			}
			return
		}
		for _, d := range docs {
			out, err := MarshalYAML(d.Object)
			if err != nil {
				t.Fatalf("MarshalYAML: %v", err)
			}
			back, err := Decode(out, "again.yaml")
			if err != nil {
				t.Fatalf("Decode(MarshalYAML(x)): %v\n%s", err, out)
			}
			if len(back) != 1 || !proto.Equal(back[0].Object, d.Object) {
				t.Fatalf("round trip changed the object:\n%s\nbefore: %v\nafter: %v", out, d.Object, back)
			}
		}
	})
}

// TestDocExamples decodes and validates the examples the docs tell users
// to apply.
func TestDocExamples(t *testing.T) {
	dir := filepath.Join(testdata, "..", "..", "docs", "examples")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || !isManifestName(e.Name()) {
			continue
		}
		n++
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(data, e.Name()); err != nil { // decoding validates
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
	if n < 2 {
		t.Fatalf("found %d examples in %s", n, dir)
	}
}
