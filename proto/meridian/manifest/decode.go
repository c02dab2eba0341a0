package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
	"github.com/meridian-fed/meridian/proto/meridian/validation"
)

// decoder walks generic JSON values against message descriptors and collects
// every problem it finds.
type decoder struct {
	source string
	doc    int // the document being decoded, 1-based
	errs   Errors
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Source: d.source, Document: d.doc, Path: path, Message: fmt.Sprintf(format, args...)})
}

// object decodes one manifest object found at path (empty for a whole
// document): it selects the kind, decodes every field, and validates the
// result if it decoded cleanly.
func (d *decoder) object(path string, v any) (Document, bool) {
	fields, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected a manifest object (with apiVersion and kind), got %s", describe(v))
		return Document{}, false
	}
	before := len(d.errs)
	kind, ok := d.kind(path, fields)
	if !ok {
		return Document{}, false
	}
	d.apiVersion(path, fields, kind)
	obj := kind.New()
	d.message(path, fields, obj.ProtoReflect())
	if len(d.errs) > before {
		return Document{}, false
	}
	for _, fe := range validation.Validate(obj) {
		d.fail(joinPath(path, fe.Field), "%s", fe.ErrorBody())
	}
	if len(d.errs) > before {
		return Document{}, false
	}
	return Document{Source: d.source, Index: d.doc, Kind: kind, Object: obj}, true
}

// joinPath prefixes a validation path with the object's position in a list.
func joinPath(prefix, path string) string {
	if prefix == "" {
		return path
	}
	if path == "" || strings.HasPrefix(path, "[") {
		return prefix + path
	}
	return prefix + "." + path
}

// kind finds the object's kind. It must be the exact kind name: the registry
// also knows plurals, short names and other cases, which are only offered as
// suggestions here.
func (d *decoder) kind(path string, fields map[string]any) (*resource.Kind, bool) {
	p := childPath(path, "kind")
	v, ok := fields["kind"]
	if !ok || v == nil || v == "" {
		d.fail(p, "field is required (the object's kind, such as Deployment)")
		return nil, false
	}
	name, ok := v.(string)
	if !ok {
		d.fail(p, "expected a string, got %s", describe(v))
		return nil, false
	}
	if k, ok := resource.Lookup(name); ok {
		if k.Kind == name {
			return k, true
		}
		d.fail(p, "unknown kind %s (did you mean %q?)", quote(name), k.Kind)
		return nil, false
	}
	var names []string
	for _, k := range resource.All() {
		names = append(names, k.Kind)
	}
	sort.Strings(names)
	if best := closest(name, names); best != "" {
		d.fail(p, "unknown kind %s (did you mean %q?)", quote(name), best)
	} else {
		d.fail(p, "unknown kind %s (supported kinds: %s)", quote(name), strings.Join(names, ", "))
	}
	return nil, false
}

// apiVersion checks that the manifest declares an apiVersion the kind
// accepts. A value that is not a string is left to the field walk.
func (d *decoder) apiVersion(path string, fields map[string]any, kind *resource.Kind) {
	p := childPath(path, "apiVersion")
	v := fields["apiVersion"]
	if v == nil || v == "" {
		d.fail(p, "field is required (use %s for kind %s)", kind.APIVersions[0], kind.Kind)
		return
	}
	if s, ok := v.(string); ok && !kind.AcceptsAPIVersion(s) {
		d.fail(p, "%s is not supported for kind %s (use %s)", quote(s), kind.Kind, strings.Join(kind.APIVersions, " or "))
	}
}

// message decodes a JSON object into m, field by field in key order so that
// errors come out in a stable order.
func (d *decoder) message(path string, obj map[string]any, m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for _, key := range sortedKeys(obj) {
		p := childPath(path, key)
		fd := fields.ByJSONName(key)
		if fd == nil {
			d.fail(p, "unknown field %s%s", quote(key), suggestField(key, fields))
			continue
		}
		v := obj[key]
		if v == nil {
			continue // null means unset
		}
		switch {
		case fd.IsMap():
			d.mapField(p, v, m, fd)
		case fd.IsList():
			d.listField(p, v, m, fd)
		default:
			if val, ok := d.value(p, v, fd, func() protoreflect.Message { return m.NewField(fd).Message() }); ok {
				m.Set(fd, val)
			}
		}
	}
}

func (d *decoder) listField(path string, v any, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	items, ok := v.([]any)
	if !ok {
		d.fail(path, "expected a list, got %s", describe(v))
		return
	}
	list := m.Mutable(fd).List()
	for i, item := range items {
		p := indexPath(path, i)
		if item == nil {
			d.fail(p, "expected %s, got null", expected(fd))
			continue
		}
		if val, ok := d.value(p, item, fd, func() protoreflect.Message { return list.NewElement().Message() }); ok {
			list.Append(val)
		}
	}
}

func (d *decoder) mapField(path string, v any, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	obj, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object, got %s", describe(v))
		return
	}
	mp := m.Mutable(fd).Map()
	quantities := isQuantityField(fd)
	for _, key := range sortedKeys(obj) {
		p := keyPath(path, key)
		k, ok := d.mapKey(p, key, fd.MapKey())
		if !ok || obj[key] == nil {
			continue
		}
		var val protoreflect.Value
		if quantities {
			val, ok = d.quantity(p, obj[key])
		} else {
			val, ok = d.value(p, obj[key], fd.MapValue(), func() protoreflect.Message { return mp.NewValue().Message() })
		}
		if ok {
			mp.Set(k, val)
		}
	}
}

// mapKey converts a JSON object key to a map key of the field's key type.
func (d *decoder) mapKey(path, key string, kd protoreflect.FieldDescriptor) (protoreflect.MapKey, bool) {
	switch kd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(key).MapKey(), true
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(key)
		if err != nil {
			d.fail(path, "map key %s is not a boolean", quote(key))
			return protoreflect.MapKey{}, false
		}
		return protoreflect.ValueOfBool(b).MapKey(), true
	default:
		val, ok := d.scalar(path, json.Number(key), kd)
		if !ok {
			return protoreflect.MapKey{}, false
		}
		return val.MapKey(), true
	}
}

// value converts one non-null JSON value to a value of fd's type, ignoring
// fd's cardinality. newMessage makes the message to decode into when fd is a
// message field.
func (d *decoder) value(path string, v any, fd protoreflect.FieldDescriptor, newMessage func() protoreflect.Message) (protoreflect.Value, bool) {
	if isQuantityField(fd) {
		return d.quantity(path, v)
	}
	if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
		return d.scalar(path, v, fd)
	}
	switch fd.Message().FullName() {
	case timestampName:
		return d.timestamp(path, v, newMessage())
	case intOrStringName:
		return d.intOrString(path, v, newMessage())
	}
	obj, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object, got %s", describe(v))
		return protoreflect.Value{}, false
	}
	msg := newMessage()
	d.message(path, obj, msg)
	return protoreflect.ValueOfMessage(msg), true
}

// scalar converts a JSON value to a scalar of fd's kind.
func (d *decoder) scalar(path string, v any, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	bad := func() (protoreflect.Value, bool) {
		hint := ""
		switch v.(type) {
		case bool, json.Number:
			if fd.Kind() == protoreflect.StringKind {
				// YAML reads 8080, 1.0, yes and on as numbers and booleans.
				hint = " (put it in quotes to make it a string)"
			}
		}
		d.fail(path, "expected %s, got %s%s", expected(fd), describe(v), hint)
		return protoreflect.Value{}, false
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s, ok := v.(string); ok {
			return protoreflect.ValueOfString(s), true
		}
	case protoreflect.BoolKind:
		if b, ok := v.(bool); ok {
			return protoreflect.ValueOfBool(b), true
		}
	case protoreflect.BytesKind:
		if s, ok := v.(string); ok {
			return d.bytes(path, s)
		}
	case protoreflect.EnumKind:
		return d.enum(path, v, fd)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || (fd.Kind() == protoreflect.FloatKind && math.Abs(f) > math.MaxFloat32) {
			d.fail(path, "number %s is out of range", n)
			return protoreflect.Value{}, false
		}
		if fd.Kind() == protoreflect.FloatKind {
			return protoreflect.ValueOfFloat32(float32(f)), true
		}
		return protoreflect.ValueOfFloat64(f), true
	default:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		return d.integer(path, n, fd.Kind())
	}
	return bad()
}

// integer converts a JSON number to an integer of the given kind. The number
// must be integral ("3", "3.0", "3e2") and fit the kind's range.
func (d *decoder) integer(path string, n json.Number, kind protoreflect.Kind) (protoreflect.Value, bool) {
	var lo, hi int64
	unsigned := false
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		lo, hi = math.MinInt32, math.MaxInt32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		lo, hi = 0, math.MaxUint32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		unsigned = true
	default:
		lo, hi = math.MinInt64, math.MaxInt64
	}
	if unsigned {
		if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
			return protoreflect.ValueOfUint64(u), true
		}
	} else if i, err := strconv.ParseInt(string(n), 10, 64); err == nil && i >= lo && i <= hi {
		return ofInt(kind, i), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	switch {
	case err == nil && f != math.Trunc(f):
		d.fail(path, "expected an integer, got number %s", truncate(string(n)))
		return protoreflect.Value{}, false
	case unsigned && err == nil && f >= 0 && f < math.MaxUint64:
		return protoreflect.ValueOfUint64(uint64(f)), true
	case unsigned:
		d.fail(path, "%s is out of range (must be between 0 and %d)", truncate(string(n)), uint64(math.MaxUint64))
		return protoreflect.Value{}, false
	case err == nil && f >= float64(lo) && f <= float64(hi) && f > math.MinInt64 && f < math.MaxInt64:
		return ofInt(kind, int64(f)), true
	default:
		d.fail(path, "%s is out of range (must be between %d and %d)", truncate(string(n)), lo, hi)
		return protoreflect.Value{}, false
	}
}

func ofInt(kind protoreflect.Kind, i int64) protoreflect.Value {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(i))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(i))
	default:
		return protoreflect.ValueOfInt64(i)
	}
}

// enum accepts an enum value's name, or its number.
func (d *decoder) enum(path string, v any, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	values := fd.Enum().Values()
	switch v := v.(type) {
	case string:
		if ev := values.ByName(protoreflect.Name(v)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), true
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 32); err == nil && values.ByNumber(protoreflect.EnumNumber(i)) != nil {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(i)), true
		}
	}
	names := make([]string, values.Len())
	for i := range names {
		names[i] = string(values.Get(i).Name())
	}
	d.fail(path, "expected one of %s, got %s", strings.Join(names, ", "), describe(v))
	return protoreflect.Value{}, false
}

// expected names what a field of fd's type accepts, for error messages.
func expected(fd protoreflect.FieldDescriptor) string {
	if isQuantityField(fd) {
		return "a quantity (a number or a string such as \"100m\")"
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BoolKind:
		return "a boolean"
	case protoreflect.BytesKind:
		return "a base64 string"
	case protoreflect.EnumKind:
		return "an enum name"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case timestampName:
			return "an RFC 3339 timestamp string"
		case intOrStringName:
			return "an integer or a string"
		}
		return "an object"
	default:
		return "an integer"
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
