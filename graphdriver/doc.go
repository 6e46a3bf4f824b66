// Package graphdriver is a Docker v2 graphdriver plugin (the protocol
// dockerd speaks to /run/docker/plugins/<name>.sock with --experimental)
// that stores ordinary layers as overlay2 does and runs nydus images
// lazily through nydusd.
//
// Every layer is a directory under the plugin's home (Init's Home):
//
//	<home>/<id>/diff     the layer's own files (the overlay upper of a
//	                     read-write layer), or for a nydus layer the
//	                     mountpoint of its nydusd
//	<home>/<id>/work     overlay work dir
//	<home>/<id>/merged   where the layer is mounted with its parents
//	<home>/<id>/parent   the parent's id (absent for a base layer)
//	<home>/<id>/link     the short name of diff under <home>/l
//	<home>/<id>/nydus/   a nydus layer's bootstrap, backend, config,
//	                     blob cache and nydusd log
//	<home>/l/<short>     symlink to ../<id>/diff, so overlay's mount data
//	                     (one page) holds long layer chains
//
// A layer whose tar holds only image/image.boot (and optionally
// image/backend.json, the registry the converter pushed the blobs to) is
// a nydus bootstrap layer: ApplyDiff keeps the bootstrap, and the first
// Get of the layer or of any child starts nydusd with the bootstrap, whose
// blobs are then read on demand from that registry. See "The
// docker-runnable layout" in docs/nydusify.md.
package graphdriver
