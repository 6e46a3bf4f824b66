// Package testregistry runs OCI distribution registries for tests: an
// in-process one (go-containerregistry's pkg/registry) behind an optional
// Basic or Bearer auth layer with its own token endpoint issuing expiring
// tokens, and Debian's docker-registry (distribution 2.8) as a child
// process on a free loopback port. Push uploads a blob monolithically
// through the distribution API.
package testregistry
