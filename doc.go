// Package nydus is the root of gonydus, a pure-Go implementation of the
// Nydus container image format (RAFS v6) and its tools.
//
// Packages are layered by top-level directory: a package imports only
// packages of a lower rank, or of its own directory. The ranks (the
// layers table of deps_test.go, which TestDependencyDirection enforces
// and TestLayeringDocumented keeps equal to this list and to the
// README's):
//
//	6   cmd, examples         thin mains; demo trees and packaging
//	5   exporter              the BuildKit exporter (pushes through convert)
//	4   convert, graphdriver  image conversion and checking; the Docker graphdriver plugin
//	3   daemon                the nydusd FUSE daemon and its configuration
//	2   overlay               the userspace writable overlay nydusd serves
//	1   storage               blob backends, chunk cache, prefetch
//	0   rafs                  the format: layout, builder, reader, merge, zran
//	-1  internal              imports none of ours: FUSE over io_uring, FUSE opcodes, progress, test support
package nydus
