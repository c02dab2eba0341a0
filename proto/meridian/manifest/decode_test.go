package manifest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// minimalDeployment is a valid Deployment with a placeholder where a test
// adds fields to spec.
const minimalDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          command: [sh, -c, "sleep 3600"]
`

func decodeOne(t *testing.T, src string) *meridianv1.Deployment {
	t.Helper()
	docs, err := Decode([]byte(src), "t.yaml")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d documents", len(docs))
	}
	d, ok := docs[0].Object.(*meridianv1.Deployment)
	if !ok {
		t.Fatalf("got a %T", docs[0].Object)
	}
	return d
}

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name  string
		extra string // appended to minimalDeployment's spec
		check func(t *testing.T, d *meridianv1.Deployment)
	}{
		{"replicas zero is kept", "  replicas: 0\n", func(t *testing.T, d *meridianv1.Deployment) {
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
				t.Errorf("replicas = %v, want a set 0", d.Spec.Replicas)
			}
		}},
		{"null means unset", "  replicas: null\n  strategy: null\n", func(t *testing.T, d *meridianv1.Deployment) {
			if d.Spec.Replicas != nil || d.Spec.Strategy != nil {
				t.Errorf("replicas %v strategy %v, want unset", d.Spec.Replicas, d.Spec.Strategy)
			}
		}},
		{"integral float forms", "  replicas: 3.0\n  minReadySeconds: 1e1\n", func(t *testing.T, d *meridianv1.Deployment) {
			if d.Spec.GetReplicas() != 3 || d.Spec.GetMinReadySeconds() != 10 {
				t.Errorf("replicas %d minReadySeconds %d", d.Spec.GetReplicas(), d.Spec.GetMinReadySeconds())
			}
		}},
		{"int-or-string as int and percentage", "  strategy:\n    rollingUpdate: {maxSurge: 2, maxUnavailable: 25%}\n", func(t *testing.T, d *meridianv1.Deployment) {
			ru := d.Spec.Strategy.RollingUpdate
			if ru.MaxSurge.GetIntVal() != 2 || ru.MaxUnavailable.GetStrVal() != "25%" {
				t.Errorf("rollingUpdate = %v", ru)
			}
		}},
		{"empty object is set", "  strategy: {}\n", func(t *testing.T, d *meridianv1.Deployment) {
			if d.Spec.Strategy == nil {
				t.Error("strategy is nil, want an empty message")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decodeOne(t, minimalDeployment+tt.extra)
			tt.check(t, d)
			assertRoundTrip(t, d)
		})
	}
}

func TestDecodeSpecialTypes(t *testing.T) {
	src := `apiVersion: v1
kind: Node
metadata:
  name: n1
  creationTimestamp: "2024-05-01T12:00:00.123456789+02:00"
status:
  capacity: {cpu: 4, memory: 16Gi, ephemeral-storage: 1.5e3}
  allocatable: {cpu: 3.5, pods: "110"}
`
	docs, err := Decode([]byte(src), "node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := docs[0].Object.(*meridianv1.Node)
	ts := n.Metadata.CreationTimestamp.AsTime()
	if got := ts.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"); got != "2024-05-01T10:00:00.123456789Z" {
		t.Errorf("creationTimestamp = %s", got)
	}
	if c := n.Status.Capacity; c["cpu"] != "4" || c["memory"] != "16Gi" || c["ephemeral-storage"] != "1500" {
		t.Errorf("capacity = %v", c)
	}
	if a := n.Status.Allocatable; a["cpu"] != "3.5" || a["pods"] != "110" {
		t.Errorf("allocatable = %v", a)
	}
	assertRoundTrip(t, n)

	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: demo}\ndata: {token: aGVsbG8=, empty: \"\"}\n"
	docs, err = Decode([]byte(secret), "secret.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := docs[0].Object.(*meridianv1.Secret)
	if string(s.Data["token"]) != "hello" || len(s.Data["empty"]) != 0 {
		t.Errorf("data = %q", s.Data)
	}
	assertRoundTrip(t, s)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"plural kind", "apiVersion: apps/v1\nkind: deployments\n",
			[]string{`t.yaml: document 1: kind: unknown kind "deployments" (did you mean "Deployment"?)`}},
		{"kind not a string", "apiVersion: v1\nkind: 3\n",
			[]string{`t.yaml: document 1: kind: expected a string, got number 3`}},
		{"apiVersion not a string", "apiVersion: [v1]\nkind: Namespace\nmetadata: {name: demo}\n",
			[]string{`t.yaml: document 1: apiVersion: expected a string, got list`}},
		{"int32 out of range", minimalDeployment + "  replicas: 3000000000\n",
			[]string{`t.yaml: document 1: spec.replicas: 3000000000 is out of range (must be between -2147483648 and 2147483647)`}},
		{"int-or-string of wrong type", minimalDeployment + "  strategy:\n    rollingUpdate: {maxSurge: true}\n",
			[]string{`t.yaml: document 1: spec.strategy.rollingUpdate.maxSurge: expected an integer or a string, got boolean true`}},
		{"duplicate key after a nested mapping", minimalDeployment + "  template:\n    spec:\n      containers: [null]\n",
			[]string{`t.yaml: document 1: yaml: line 17: key "template" already set in map`}},
		{"map value of wrong type", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n  labels: {app: 1, tier: [a]}\n",
			[]string{
				`t.yaml: document 1: metadata.labels[app]: expected a string, got number 1 (put it in quotes to make it a string)`,
				`t.yaml: document 1: metadata.labels[tier]: expected a string, got list`,
			}},
		{"timestamp out of range", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n  creationTimestamp: \"0000-01-01T00:00:00Z\"\n",
			[]string{`t.yaml: document 1: metadata.creationTimestamp: invalid timestamp "0000-01-01T00:00:00Z": it must be between years 0001 and 9999`}},
		{"list item null", "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\nspec:\n  finalizers: [a, null]\n",
			[]string{`t.yaml: document 1: spec.finalizers[1]: expected a string, got null`}},
		{"syntax error on the first line of document 2", "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\na: b: c\n",
			[]string{`t.yaml: document 2: yaml: line 5: mapping values are not allowed in this context`}},
		{"List without apiVersion and with an unknown field", "kind: List\nitemz: []\n",
			[]string{
				`t.yaml: document 1: apiVersion: field is required (use v1 for kind List)`,
				`t.yaml: document 1: itemz: unknown field "itemz" in a List (it has apiVersion, kind, metadata and items)`,
			}},
		{"every document is checked", "kind: Namespace\n---\nkind: Frobnicator\n---\n[1]\n",
			[]string{
				`t.yaml: document 1: apiVersion: field is required (use v1 for kind Namespace)`,
				`t.yaml: document 2: kind: unknown kind "Frobnicator" (supported kinds: ` + supportedKinds() + `)`,
				`t.yaml: document 3: [0]: expected a manifest object (with apiVersion and kind), got number 1`,
			}},
		{"document start with content after a document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n--- {kind: Namespace}\n",
			[]string{`t.yaml: document 1: yaml: line 4: a second document starts here; separate documents with a line of "---" alone`}},
		{"content after a document end marker", "# c\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n...\nkind: Namespace\n",
			[]string{`t.yaml: document 1: yaml: line 7: a second document starts here; separate documents with a line of "---" alone`}},
		{"JSON trailing data", `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}} {}`,
			[]string{`t.yaml: document 1: json: line 1: unexpected data after the top-level value`}},
		{"JSON truncated", "{\"apiVersion\": \"v1\",\n",
			[]string{`t.yaml: document 1: json: line 2: unexpected end of input`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Decode([]byte(tt.src), "t.yaml")
			if err == nil {
				t.Fatalf("no error; %d documents", len(docs))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is a %T", err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDecodeDocuments(t *testing.T) {
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: demo}\n"
	tests := []struct {
		name    string
		src     string
		indexes []int // Index of each document
		items   []int // Item of each document
	}{
		{"single", ns, []int{1}, []int{0}},
		{"leading separator and comments are not a document", "# header\n---\n" + ns + "---\n" + cm, []int{1, 2}, []int{0, 0}},
		{"empty documents are counted", ns + "---\n# nothing\n---\n---\n" + cm + "---\n", []int{1, 4}, []int{0, 0}},
		{"separator with a comment", ns + "--- # next\n" + cm, []int{1, 2}, []int{0, 0}},
		{"byte order mark and CRLF", "\ufeff" + strings.ReplaceAll(ns+"---\n"+cm, "\n", "\r\n"), []int{1, 2}, []int{0, 0}},
		{"null document", "~\n---\n" + ns, []int{2}, []int{0}},
		{"directives and markers", "%YAML 1.1\n---\n" + ns + "...\n---\n--- !!map\n" + strings.TrimSuffix(cm, "\n") + "\n", []int{1, 2}, []int{0, 0}},
		{"List", "apiVersion: v1\nkind: List\nmetadata: {}\nitems:\n" +
			"- {apiVersion: v1, kind: Namespace, metadata: {name: demo}}\n" +
			"- {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: demo}}\n", []int{1, 1}, []int{1, 2}},
		{"JSON object", `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}`, []int{1}, []int{0}},
		{"JSON array", "\n [" + `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},` +
			`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "demo"}}]`, []int{1, 1}, []int{1, 2}},
		{"YAML sequence of objects", "- apiVersion: v1\n  kind: Namespace\n  metadata: {name: demo}\n", []int{1}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Decode([]byte(tt.src), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != len(tt.indexes) {
				t.Fatalf("got %d documents, want %d", len(docs), len(tt.indexes))
			}
			for i, d := range docs {
				if d.Index != tt.indexes[i] || d.Item != tt.items[i] || d.Source != "t.yaml" {
					t.Errorf("document %d: source %q index %d item %d, want index %d item %d", i, d.Source, d.Index, d.Item, tt.indexes[i], tt.items[i])
				}
			}
		})
	}
	if docs, err := Decode([]byte("# nothing\n---\n"), "empty.yaml"); err != nil || len(docs) != 0 {
		t.Errorf("Decode(comments only) = %v, %v", docs, err)
	}
}

func TestDecodeReader(t *testing.T) {
	docs, err := DecodeReader(strings.NewReader(minimalDeployment), "r.yaml")
	if err != nil || len(docs) != 1 || docs[0].Source != "r.yaml" {
		t.Fatalf("DecodeReader = %v, %v", docs, err)
	}
	_, err = DecodeReader(failingReader{}, "broken")
	if err == nil || err.Error() != "broken: failed to read: boom" {
		t.Errorf("DecodeReader(failing) = %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestErrorText(t *testing.T) {
	es := Errors{
		{Source: "a.yaml", Document: 2, Path: "spec.replicas", Message: "bad"},
		{Source: "a.yaml", Document: 3, Message: "yaml: line 4: oops"},
		{Source: "b.yaml", Message: "no such file or directory"},
	}
	want := "a.yaml: document 2: spec.replicas: bad\na.yaml: document 3: yaml: line 4: oops\nb.yaml: no such file or directory"
	if es.Error() != want {
		t.Errorf("Errors.Error() =\n%s\nwant\n%s", es.Error(), want)
	}
	var one *Error
	if !errors.As(error(es), &one) || one != es[0] {
		t.Error("errors.As does not find the first *Error")
	}
	if Errors(nil).orNil() != nil {
		t.Error("an empty Errors is not a nil error")
	}
}

func TestClosest(t *testing.T) {
	names := []string{"image", "imagePullPolicy", "name", "ports", "command", "containerPort"}
	for in, want := range map[string]string{
		"imagee": "image", "nmae": "name", "Image": "image", "container_port": "containerPort",
		"port": "ports", "comand": "command", "xyz": "", "im": "", "environment": "",
	} {
		if got := closest(in, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodedEqualsBuilt(t *testing.T) {
	d := decodeOne(t, minimalDeployment+"  replicas: 2\n")
	want := &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{Name: "web", Namespace: "demo"},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: proto.Int32(2),
			Selector: &meridianv1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: &meridianv1.PodTemplateSpec{
				Metadata: &meridianv1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{
					{Name: "web", Command: []string{"sh", "-c", "sleep 3600"}},
				}},
			},
		},
	}
	if !proto.Equal(d, want) {
		t.Errorf("decoded %v\nwant %v", d, want)
	}
}

// TestQuantityFieldsExist guards the list of quantity fields against a
// renamed or removed field in the .proto files.
func TestQuantityFieldsExist(t *testing.T) {
	for name := range quantityFields {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		fd, ok := d.(protoreflect.FieldDescriptor)
		if !ok || fd.Kind() != protoreflect.StringKind && !(fd.IsMap() && fd.MapValue().Kind() == protoreflect.StringKind) {
			t.Errorf("%s is not a string field or a map of strings", name)
		}
	}
}

// supportedKinds lists the registry's kinds as the unknown-kind error does.
func supportedKinds() string {
	var names []string
	for _, k := range resource.All() {
		names = append(names, k.Kind)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
