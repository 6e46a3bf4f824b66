// Package nydus is the root of gonydus, a pure-Go implementation of the
// Nydus container image format (RAFS v6) and its tools.
//
// Packages are layered and depend only downwards:
//
//	cmd/...               thin mains
//	graphdriver, exporter Docker and BuildKit integrations
//	daemon, overlay       the nydusd FUSE daemon and its writable overlay
//	storage               blob backends, chunk cache, prefetch
//	rafs                  the format: layout, builder, reader, merge, zran
//
// TestDependencyDirection enforces this.
package nydus
