// Package daemon is nydusd's core: it mounts RAFS images (each with its
// own storage chain) into one FUSE session, directly at the root or as
// pseudo-mounts in sub-directories, keeps the daemon state machine and
// serves upstream nydusd's HTTP API on a unix socket.
package daemon
