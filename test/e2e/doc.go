// Package e2e drives the real meridian binary: it builds it, runs it as a
// separate process on loopback, and talks to it as a user would.
package e2e
