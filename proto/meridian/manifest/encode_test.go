package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

func TestEncodeTypes(t *testing.T) {
	created := time.Date(2024, 5, 1, 12, 0, 0, 500, time.UTC)
	d := &meridianv1.Deployment{
		ApiVersion: "apps/v1", Kind: "Deployment",
		Metadata: &meridianv1.ObjectMeta{
			Name: "web", Namespace: "demo", Generation: 9007199254740993,
			CreationTimestamp: timestamppb.New(created),
		},
		Spec: &meridianv1.DeploymentSpec{
			Replicas: proto.Int32(0),
			Paused:   false, // unset: not written
			Strategy: &meridianv1.DeploymentStrategy{RollingUpdate: &meridianv1.RollingUpdateDeployment{
				MaxSurge:       &meridianv1.IntOrString{Value: &meridianv1.IntOrString_IntVal{IntVal: 1}},
				MaxUnavailable: &meridianv1.IntOrString{Value: &meridianv1.IntOrString_StrVal{StrVal: "25%"}},
			}},
			Template: &meridianv1.PodTemplateSpec{Spec: &meridianv1.PodSpec{Containers: []*meridianv1.Container{{
				Name:      "web",
				Resources: &meridianv1.ResourceRequirements{Requests: map[string]string{"cpu": "100m"}},
			}}}},
		},
	}
	got, err := Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": map[string]any{
			"name": "web", "namespace": "demo",
			"generation":        int64(9007199254740993),
			"creationTimestamp": "2024-05-01T12:00:00.0000005Z",
		},
		"spec": map[string]any{
			"replicas": int64(0),
			"strategy": map[string]any{"rollingUpdate": map[string]any{"maxSurge": int64(1), "maxUnavailable": "25%"}},
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{
				"name":      "web",
				"resources": map[string]any{"requests": map[string]any{"cpu": "100m"}},
			}}}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("Encode =\n%s", g)
	}
	y, err := MarshalYAML(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "generation: 9007199254740993\n") {
		t.Errorf("int64 is not written as a number:\n%s", y)
	}
	// The object is not valid (no selector), so only check that it parses.
	if _, err := Decode(y, "x.yaml"); err == nil || !strings.Contains(err.Error(), "spec.selector: Required value") {
		t.Errorf("Decode(MarshalYAML) = %v", err)
	}
}

func TestEncodeBytesAndNil(t *testing.T) {
	s := &meridianv1.Secret{ApiVersion: "v1", Kind: "Secret",
		Metadata: &meridianv1.ObjectMeta{Name: "s", Namespace: "demo"},
		Data:     map[string][]byte{"token": []byte("hello"), "bin": {0, 0xff}}}
	got, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if data := got["data"].(map[string]any); data["token"] != "aGVsbG8=" || data["bin"] != "AP8=" {
		t.Errorf("data = %v", data)
	}
	assertRoundTrip(t, s)
	if _, err := Encode(nil); err == nil {
		t.Error("Encode(nil) succeeded")
	}
	if _, err := Encode((*meridianv1.Secret)(nil)); err == nil {
		t.Error("Encode of a nil *Secret succeeded")
	}
	bad := &meridianv1.Namespace{Metadata: &meridianv1.ObjectMeta{CreationTimestamp: &timestamppb.Timestamp{Seconds: -1 << 62}}}
	if _, err := MarshalYAML(bad); err == nil || !strings.Contains(err.Error(), "metadata: creationTimestamp: invalid timestamp") {
		t.Errorf("MarshalYAML(out-of-range timestamp) = %v", err)
	}
}

func TestMarshalJSON(t *testing.T) {
	cm := &meridianv1.ConfigMap{ApiVersion: "v1", Kind: "ConfigMap",
		Metadata: &meridianv1.ObjectMeta{Name: "c", Namespace: "demo"},
		Data:     map[string]string{"page": "<b>&</b>"}}
	out, err := MarshalJSON(cm)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "apiVersion": "v1",
  "data": {
    "page": "<b>&</b>"
  },
  "kind": "ConfigMap",
  "metadata": {
    "name": "c",
    "namespace": "demo"
  }
}
`
	if string(out) != want {
		t.Errorf("MarshalJSON =\n%s\nwant\n%s", out, want)
	}
}

// TestRoundTripAwkwardStrings covers strings that YAML would read back as
// something else, or that need escapes, as values and as keys.
func TestRoundTripAwkwardStrings(t *testing.T) {
	values := []string{
		"", " leading", "trailing ", "multi\nline", "multi\nline\n", "ends in blank lines\n\n", "tab\there",
		"\x00", "\x7f", "\u0085next line", "\u2028", "\ufeffbom", "\x1b[0m", "\r\n", "\r",
		"yes", "no", "y", "on", "true", "null", "~", "0x1F", "0o17", "1e3", ".5", "+1", "1_000", "12:30", "2001-12-14",
		"#comment", "- item", "key: value", "'single'", `"double"`, "---", "...", "@", "`", "%", "!", "&a", "*a", "|", ">", "<<", "=",
		strings.Repeat("word ", 40), strings.Repeat("a  b ", 40), strings.Repeat("x", 300) + " " + strings.Repeat("y", 300),
	}
	for _, v := range values {
		cm := resource.MustLookup("ConfigMap").New().(*meridianv1.ConfigMap)
		cm.Metadata = &meridianv1.ObjectMeta{Name: "c", Namespace: "demo", Annotations: map[string]string{"note": v}}
		cm.Data = map[string]string{"value": v}
		assertRoundTrip(t, cm)
	}
}
