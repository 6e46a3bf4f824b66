// Package snapshotterconverter holds end-to-end tests that run
// nydus-snapshotter's own converter package (pkg/converter: Pack, Merge,
// Unpack) against gonydus's nydus-image and nydusd binaries, and check
// that what it produces mounts (kernel EROFS via `nydus-image export
// --block`, and nydusd over FUSE) and reads back equal to the source.
//
// It is a module of its own so that the main module does not take on the
// snapshotter's dependencies; it does not import gonydus at all but drives
// its binaries by path: $NYDUS_IMAGE and $NYDUSD when set (what
// scripts/e2e-converter.sh does), otherwise they are built from the
// repository this module sits in.
package snapshotterconverter
