package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// Key rotation. Every node has a keyring: one primary key, which encrypts
// everything the node sends, and any number of secondary keys, which it
// also accepts. Keys are per node, so rotating the federation's key is
// three rounds over every node (the hub drives them over gRPC):
//
//  1. InstallKey(new) on every node: everyone accepts both keys.
//  2. UseKey(new) on every node: everyone sends with the new key. A node
//     that has switched and one that has not still understand each other,
//     because each has the other's primary key installed.
//  3. RemoveKey(old) on every node.
//
// A node that joins during the rotation needs a key the others accept:
// configure it with the new key as PrimaryKey and the old one in
// SecondaryKeys.

// GenerateKey returns a new random 32-byte key, base64-encoded, for
// Config.PrimaryKey or InstallKey.
func GenerateKey() (string, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("failed to generate a gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// newKeyring builds the keyring from the configured keys.
func newKeyring(primary string, secondary []string) (*memberlist.Keyring, error) {
	p, err := decodeKey(primary)
	if err != nil {
		return nil, fmt.Errorf("failed to decode the primary gossip key: %w", err)
	}
	keys := make([][]byte, 0, len(secondary))
	for i, s := range secondary {
		k, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("failed to decode secondary gossip key %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	kr, err := memberlist.NewKeyring(keys, p)
	if err != nil {
		return nil, fmt.Errorf("failed to create the gossip keyring: %w", err)
	}
	return kr, nil
}

// InstallKey adds a base64 key to the keyring as a secondary key: the node
// accepts it from now on. Installing a key twice is harmless.
func (g *Gossip) InstallKey(key string) error {
	k, err := decodeKey(key)
	if err != nil {
		return fmt.Errorf("failed to install gossip key: %w", err)
	}
	if g.closed.Load() {
		return ErrClosed
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if err := g.keyring.AddKey(k); err != nil {
		return fmt.Errorf("failed to install gossip key: %w", err)
	}
	g.log.Info("gossip key installed")
	return nil
}

// UseKey makes an installed base64 key the primary key: the node encrypts
// everything with it from now on. The key must have been installed
// (ErrKeyNotInstalled otherwise), on this node and, before this call, on
// every other one.
func (g *Gossip) UseKey(key string) error {
	k, err := decodeKey(key)
	if err != nil {
		return fmt.Errorf("failed to use gossip key: %w", err)
	}
	if g.closed.Load() {
		return ErrClosed
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if !slices.ContainsFunc(g.keyring.GetKeys(), func(x []byte) bool { return bytes.Equal(x, k) }) {
		return fmt.Errorf("failed to use gossip key: %w", ErrKeyNotInstalled)
	}
	if err := g.keyring.UseKey(k); err != nil {
		return fmt.Errorf("failed to use gossip key: %w", err)
	}
	g.log.Info("gossip primary key changed")
	return nil
}

// RemoveKey removes a base64 secondary key: the node no longer accepts it.
// The primary key cannot be removed (ErrRemovePrimaryKey); removing a key
// that is not installed is harmless.
//
// memberlist's Keyring.RemoveKey shifts the keys after the removed one in
// place, in the very array its packet handlers may be reading from without
// the lock (Keyring.GetKeys returns the array, not a copy) — a data race.
// Removing the last key shifts nothing, so RemoveKey removes the keys after
// the target from the end, then the target, and installs the others again.
// They are missing for microseconds; a packet sealed with one of them in
// that window is dropped, as UDP gossip tolerates.
func (g *Gossip) RemoveKey(key string) error {
	k, err := decodeKey(key)
	if err != nil {
		return fmt.Errorf("failed to remove gossip key: %w", err)
	}
	if g.closed.Load() {
		return ErrClosed
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	keys := slices.Clone(g.keyring.GetKeys())
	i := slices.IndexFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
	switch {
	case i < 0:
		return nil
	case i == 0:
		return fmt.Errorf("failed to remove gossip key: %w", ErrRemovePrimaryKey)
	}
	tail := keys[i+1:]
	for j := len(keys) - 1; j >= i; j-- {
		if err := g.keyring.RemoveKey(keys[j]); err != nil {
			return fmt.Errorf("failed to remove gossip key: %w", err)
		}
	}
	for _, t := range tail {
		if err := g.keyring.AddKey(t); err != nil {
			return fmt.Errorf("failed to reinstall gossip key after removing another: %w", err)
		}
	}
	g.log.Info("gossip key removed")
	return nil
}

// Keys returns the installed keys, base64-encoded, primary first.
func (g *Gossip) Keys() []string {
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	keys := g.keyring.GetKeys()
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = base64.StdEncoding.EncodeToString(k)
	}
	return out
}
