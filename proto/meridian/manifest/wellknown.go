package manifest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"
)

// The message types that have a JSON form of their own.
const (
	// timestampName is written as an RFC 3339 string.
	timestampName protoreflect.FullName = "google.protobuf.Timestamp"
	// intOrStringName is written as a JSON integer or a string.
	intOrStringName protoreflect.FullName = "meridian.v1.IntOrString"
)

// quantityFields are the string fields (or maps of strings) that hold
// Kubernetes quantities. Manifests may write a quantity as a number
// (cpu: 1, cpu: 0.5) or a string (cpu: "500m"); it is stored as its string
// form and checked with resource.ParseQuantity.
var quantityFields = map[protoreflect.FullName]bool{
	"meridian.v1.ResourceRequirements.requests":   true,
	"meridian.v1.ResourceRequirements.limits":     true,
	"meridian.v1.ClusterStatus.capacity":          true,
	"meridian.v1.ClusterStatus.allocatable":       true,
	"meridian.v1.ClusterStatus.available":         true,
	"meridian.v1.NodeStatus.capacity":             true,
	"meridian.v1.NodeStatus.allocatable":          true,
	"meridian.v1.EmptyDirVolumeSource.size_limit": true,
}

func isQuantityField(fd protoreflect.FieldDescriptor) bool {
	return quantityFields[fd.FullName()]
}

// quantity decodes a quantity written as a number or a string.
func (d *decoder) quantity(path string, v any) (protoreflect.Value, bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = string(v)
	case string:
		s = v
	default:
		d.fail(path, "expected a quantity (a number or a string such as \"100m\"), got %s", describe(v))
		return protoreflect.Value{}, false
	}
	if _, err := k8sresource.ParseQuantity(s); err != nil {
		d.fail(path, "invalid quantity %s: %v", quote(s), err)
		return protoreflect.Value{}, false
	}
	return protoreflect.ValueOfString(s), true
}

// timestamp decodes an RFC 3339 string ("2024-05-01T12:00:00Z") into a
// google.protobuf.Timestamp.
func (d *decoder) timestamp(path string, v any, msg protoreflect.Message) (protoreflect.Value, bool) {
	s, ok := v.(string)
	if !ok {
		d.fail(path, "expected an RFC 3339 timestamp string, got %s", describe(v))
		return protoreflect.Value{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.fail(path, "invalid timestamp %s: use RFC 3339, such as \"2024-05-01T12:00:00Z\"", quote(s))
		return protoreflect.Value{}, false
	}
	ts := timestamppb.New(t)
	if err := ts.CheckValid(); err != nil {
		d.fail(path, "invalid timestamp %s: it must be between years 0001 and 9999", quote(s))
		return protoreflect.Value{}, false
	}
	fields := msg.Descriptor().Fields()
	msg.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(ts.GetSeconds()))
	msg.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(ts.GetNanos()))
	return protoreflect.ValueOfMessage(msg), true
}

// intOrString decodes a JSON integer or string into a meridian.v1.IntOrString.
func (d *decoder) intOrString(path string, v any, msg protoreflect.Message) (protoreflect.Value, bool) {
	fields := msg.Descriptor().Fields()
	switch v := v.(type) {
	case json.Number:
		i, ok := d.integer(path, v, protoreflect.Int32Kind)
		if !ok {
			return protoreflect.Value{}, false
		}
		msg.Set(fields.ByName("int_val"), i)
	case string:
		msg.Set(fields.ByName("str_val"), protoreflect.ValueOfString(v))
	default:
		d.fail(path, "expected an integer or a string, got %s", describe(v))
		return protoreflect.Value{}, false
	}
	return protoreflect.ValueOfMessage(msg), true
}

// bytes decodes standard base64, as Kubernetes writes Secret data. The
// value is never repeated in an error: it may be a secret.
func (d *decoder) bytes(path, s string) (protoreflect.Value, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		d.fail(path, "invalid base64 data: %v", err)
		return protoreflect.Value{}, false
	}
	return protoreflect.ValueOfBytes(b), true
}

// encodeTimestamp writes a google.protobuf.Timestamp as an RFC 3339 string
// in UTC.
func encodeTimestamp(m protoreflect.Message) (string, error) {
	fields := m.Descriptor().Fields()
	ts := &timestamppb.Timestamp{
		Seconds: m.Get(fields.ByName("seconds")).Int(),
		Nanos:   int32(m.Get(fields.ByName("nanos")).Int()),
	}
	if err := ts.CheckValid(); err != nil {
		return "", fmt.Errorf("invalid timestamp: %w", err)
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano), nil
}

// encodeIntOrString writes a meridian.v1.IntOrString as an integer or a
// string; ok is false when it holds neither.
func encodeIntOrString(m protoreflect.Message) (v any, ok bool) {
	fields := m.Descriptor().Fields()
	switch iv, sv := fields.ByName("int_val"), fields.ByName("str_val"); {
	case m.Has(iv):
		return m.Get(iv).Int(), true
	case m.Has(sv):
		return m.Get(sv).String(), true
	default:
		return nil, false
	}
}
