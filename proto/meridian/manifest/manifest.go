// Package manifest reads and writes Meridian's resources as the YAML and JSON
// manifests users write: standard Kubernetes apps/v1, batch/v1 and v1
// manifests for the supported kinds, and meridian.io/v1 for Meridian's own.
//
// Decoding is strict and reports every problem at once. Each document goes
// YAML → JSON (sigs.k8s.io/yaml, duplicate keys rejected) → generic values,
// which are then walked against the kind's protobuf descriptor: an unknown
// field, a value of the wrong type or an integer out of range is an error that
// names the source, the document and the full field path, with a suggestion
// for a misspelt field. A document that decodes cleanly is then checked by
// package validation, whose problems are reported the same way.
//
//	docs, err := manifest.Load([]string{"deploy/"}, os.Stdin)
//	if err != nil {
//		// err is an Errors; print it, one problem per line
//	}
//
// Encoding is the inverse: only populated fields, Kubernetes JSON names,
// integers as numbers, so that Decode(MarshalYAML(x)) gives back x.
package manifest

import (
	"bytes"
	"fmt"
	"io"

	"github.com/meridian-fed/meridian/proto/meridian/resource"
)

// Document is one decoded object and where it came from.
type Document struct {
	// Source names the file ("<stdin>" for standard input).
	Source string
	// Index is the 1-based number of the YAML document in Source. Empty
	// documents are counted too, so the number matches what a reader counts.
	Index int
	// Item is the 1-based position of the object in a List document (a
	// "kind: List" with items, or a JSON array); 0 for a plain document.
	Item int
	// Kind is the object's kind.
	Kind *resource.Kind
	// Object is the typed object (*meridianv1.Deployment and so on).
	Object resource.Object
}

// Decode decodes the manifests in data: a multi-document YAML stream ("---"
// separated) or JSON (one object, or an array of objects). A "kind: List"
// document stands for its items. source names the data in errors and in the
// returned documents.
//
// Decode checks every document, structurally and semantically. If any has a
// problem, it returns no documents and an Errors listing every problem of
// every document.
func Decode(data []byte, source string) ([]Document, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	d := &decoder{source: source}
	var docs []Document
	if isJSON(data) {
		d.doc = 1
		v, err := parseJSON(data)
		if err != nil {
			d.fail("", "%s", err.Error())
		} else {
			docs = append(docs, d.document(v)...)
		}
	} else {
		for _, seg := range splitDocuments(data) {
			if isBlank(seg.data) {
				continue
			}
			d.doc = seg.index
			v, msgs := parseYAML(seg)
			for _, m := range msgs {
				d.fail("", "%s", m)
			}
			if len(msgs) == 0 {
				docs = append(docs, d.document(v)...)
			}
		}
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return docs, nil
}

// DecodeReader reads r to its end and decodes it as Decode does.
func DecodeReader(r io.Reader, source string) ([]Document, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, Errors{{Source: source, Message: fmt.Sprintf("failed to read: %v", err)}}
	}
	return Decode(data, source)
}

// document decodes one parsed YAML document or JSON value: an object, a
// List of objects or an array of objects. An empty document (null) is
// skipped.
func (d *decoder) document(v any) []Document {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return d.items("", v)
	case map[string]any:
		if v["kind"] == "List" {
			return d.list(v)
		}
		if doc, ok := d.object("", v); ok {
			return []Document{doc}
		}
		return nil
	default:
		d.fail("", "expected a manifest object (with apiVersion and kind), got %s", describe(v))
		return nil
	}
}

// list decodes a "kind: List" document: apiVersion v1, kind List, items.
func (d *decoder) list(v map[string]any) []Document {
	var items []any
	if _, ok := v["apiVersion"]; !ok {
		d.fail("apiVersion", "field is required (use v1 for kind List)")
	}
	for _, key := range sortedKeys(v) {
		switch val := v[key]; key {
		case "kind":
		case "apiVersion":
			switch s, ok := val.(string); {
			case val == nil || val == "":
				d.fail("apiVersion", "field is required (use v1 for kind List)")
			case !ok:
				d.fail("apiVersion", "expected a string, got %s", describe(val))
			case s != "v1":
				d.fail("apiVersion", "%s is not supported for kind List (use v1)", quote(s))
			}
		case "metadata":
			if _, ok := val.(map[string]any); !ok && val != nil {
				d.fail("metadata", "expected an object, got %s", describe(val))
			}
		case "items":
			list, ok := val.([]any)
			if !ok && val != nil {
				d.fail("items", "expected a list, got %s", describe(val))
			}
			items = list
		default:
			d.fail(key, "unknown field %q in a List (it has apiVersion, kind, metadata and items)", key)
		}
	}
	return d.items("items", items)
}

// items decodes the objects of a List or JSON array; path is where they are.
func (d *decoder) items(path string, items []any) []Document {
	var docs []Document
	for i, item := range items {
		if doc, ok := d.object(indexPath(path, i), item); ok {
			doc.Item = i + 1
			docs = append(docs, doc)
		}
	}
	return docs
}
