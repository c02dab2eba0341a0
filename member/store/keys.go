package store

import "github.com/meridian-fed/meridian/proto/meridian/resource"

// This file holds the object keys of the bbolt file. The rules every store
// applies (validation, what the server owns in an object, the encoding) are
// package storage's (proto/meridian/storage/rules.go).

var namespaceKind = resource.MustLookup("Namespace")

// KindPrefix is the key prefix of every object of a kind.
func KindPrefix(kind *resource.Kind) string { return kind.Plural + "/" }

// ObjectKey is the bbolt key of one object. The namespace of a
// cluster-scoped kind is ignored.
func ObjectKey(kind *resource.Kind, namespace, name string) string {
	if !kind.Namespaced || namespace == "" {
		return KindPrefix(kind) + name
	}
	return KindPrefix(kind) + namespace + "/" + name
}

// rangePrefix is the key prefix of a List or Watch: a kind, or a kind in
// one namespace. The trailing slash keeps namespace "a" apart from "a-b".
func rangePrefix(kind *resource.Kind, namespace string) string {
	if !kind.Namespaced || namespace == "" {
		return KindPrefix(kind)
	}
	return KindPrefix(kind) + namespace + "/"
}

// objectRef is one object's identity, checked: its key for messages and its
// bbolt key.
type objectRef struct {
	kind *resource.Kind
	key  resource.Key
	db   string
}

// ref returns the keys of an object from the key storage.CheckKey or
// storage.CheckObjectKey returned, or their error:
//
//	r, err := ref(storage.CheckKey(kind, namespace, name))
func ref(key resource.Key, err error) (objectRef, error) {
	if err != nil {
		return objectRef{}, err
	}
	return objectRef{kind: key.Kind, key: key, db: ObjectKey(key.Kind, key.Namespace, key.Name)}, nil
}

// namespaceKey is the bbolt key of the Namespace an object lives in, or ""
// for cluster-scoped kinds.
func (r objectRef) namespaceKey() string {
	if !r.kind.Namespaced {
		return ""
	}
	return ObjectKey(namespaceKind, "", r.key.Namespace)
}
