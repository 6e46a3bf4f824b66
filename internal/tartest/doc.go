// Package tartest writes tar streams for tests from a small list of
// entries: files, directories, symlinks, hardlinks, OCI whiteouts and
// opaque markers, devices and FIFOs, with modes, owners, times, xattrs and
// PAX records as options. Entries default to a fixed modification time
// (2023-11-14), so the same list gives the same bytes.
//
//	layer := tartest.Tar(t,
//		tartest.Dir("etc/"),
//		tartest.File("etc/motd", "hello", tartest.Mode(0o600), tartest.Owner(1000, 1000)),
//		tartest.Symlink("etc/link", "motd"),
//		tartest.Whiteout("etc/old"),
//	)
package tartest
