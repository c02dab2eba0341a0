package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// Encode converts an object to generic JSON values, for printing: only
// populated fields, under their Kubernetes JSON names; integers as int64 (or
// uint64), never as strings; timestamps as RFC 3339 strings; IntOrString as
// an integer or a string; bytes as standard base64; quantities as strings.
func Encode(obj resource.Object) (map[string]any, error) {
	if obj == nil {
		return nil, errors.New("manifest: cannot encode a nil object")
	}
	m := obj.ProtoReflect()
	if !m.IsValid() {
		return nil, errors.New("manifest: cannot encode a nil object")
	}
	return encodeMessage(m)
}

// MarshalYAML writes an object as a YAML manifest (keys sorted, as kubectl
// prints them).
func MarshalYAML(obj resource.Object) ([]byte, error) {
	v, err := Encode(obj)
	if err != nil {
		return nil, err
	}
	// go-yaml writes the values directly. Going through JSON first, as
	// sigs.k8s.io/yaml.Marshal does, would make go-yaml read JSON text that
	// holds raw control characters (DEL) and line separators (NEL), which it
	// rejects or folds into spaces.
	out, err := goyaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal YAML: %w", err)
	}
	return out, nil
}

// MarshalJSON writes an object as an indented JSON manifest, ending in a
// newline.
func MarshalJSON(obj resource.Object) ([]byte, error) {
	v, err := Encode(obj)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("failed to marshal JSON: %w", err)
	}
	return buf.Bytes(), nil
}

func encodeMessage(m protoreflect.Message) (map[string]any, error) {
	out := map[string]any{}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		var val any
		var ok bool
		val, ok, err = encodeField(fd, v)
		if err != nil {
			err = fmt.Errorf("%s: %w", fd.JSONName(), err)
			return false
		}
		if ok {
			out[fd.JSONName()] = val
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// encodeField converts one populated field; ok is false when it has no JSON
// form (an IntOrString that holds neither an integer nor a string).
func encodeField(fd protoreflect.FieldDescriptor, v protoreflect.Value) (any, bool, error) {
	switch {
	case fd.IsList():
		list := v.List()
		out := make([]any, 0, list.Len())
		for i := 0; i < list.Len(); i++ {
			item, ok, err := encodeValue(fd, list.Get(i))
			if err != nil {
				return nil, false, fmt.Errorf("[%d]: %w", i, err)
			}
			if !ok {
				// Keep the list's shape: an empty IntOrString reads back as 0.
				item = int64(0)
			}
			out = append(out, item)
		}
		return out, true, nil
	case fd.IsMap():
		out := map[string]any{}
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			var item any
			var ok bool
			item, ok, err = encodeValue(fd.MapValue(), mv)
			if err != nil {
				err = fmt.Errorf("[%s]: %w", k.String(), err)
				return false
			}
			if ok {
				out[k.String()] = item
			}
			return true
		})
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	default:
		return encodeValue(fd, v)
	}
}

// encodeValue converts one value of fd's type, ignoring its cardinality.
func encodeValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (any, bool, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String(), true, nil
	case protoreflect.BoolKind:
		return v.Bool(), true, nil
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes()), true, nil
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name()), true, nil
		}
		return int64(v.Enum()), true, nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int(), true, nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint(), true, nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false, fmt.Errorf("%v has no JSON form", f)
		}
		return f, true, nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		m := v.Message()
		switch m.Descriptor().FullName() {
		case timestampName:
			s, err := encodeTimestamp(m)
			return s, err == nil, err
		case intOrStringName:
			iv, ok := encodeIntOrString(m)
			return iv, ok, nil
		}
		out, err := encodeMessage(m)
		return out, err == nil, err
	default:
		return nil, false, fmt.Errorf("unsupported field kind %s", fd.Kind())
	}
}
