// Package overlay holds the overlay side of Nydus: mount-option handling
// for the nydus-overlayfs mount helper (package mountopt). The userspace
// writable overlay nydusd serves is not implemented yet.
package overlay
