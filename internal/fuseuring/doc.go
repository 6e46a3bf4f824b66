// Package fuseuring serves the requests of a go-fuse mount over FUSE's
// io_uring transport (Linux 6.14+, CONFIG_FUSE_IO_URING, module parameter
// fuse.enable_uring=Y), next to go-fuse's own /dev/fuse reader loop.
//
// With io_uring the kernel queues each request on the ring of the CPU the
// calling task runs on. Start runs one queue per possible CPU: a goroutine
// locked to an OS thread pinned to that CPU, with a few ring entries, that
// waits for requests, calls the fuse.RawFileSystem inline and sends the
// reply together with the request for the next entry in one
// io_uring_enter. There is no hand-off to another thread and no
// cross-CPU wake-up.
//
// go-fuse keeps serving what the kernel still sends on /dev/fuse: INIT,
// FORGET and BATCH_FORGET, INTERRUPT, and notifications. INTERRUPTs thus
// never reach requests served here: their cancel channel is never closed.
//
// Use:
//
//	opts.MountOptions.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
//	raw := fs.NewNodeFS(root, opts)
//	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions) // answers INIT
//	tr, err := fuseuring.Start(srv, raw)                     // before Serve/WaitMount
//	go srv.Serve()
//	err = srv.WaitMount()
//	...
//	srv.Unmount(); tr.Close()
//
// Once INIT negotiated FUSE_OVER_IO_URING the kernel holds back every new
// request until all queues are registered, so Start must follow NewServer
// promptly and come before WaitMount (whose probe of go-fuse's
// ".go-fuse-epoll-hack" file is answered here as go-fuse would). If Start
// fails, it first makes the kernel turn io_uring off for the connection
// (a failed registration does that), so /dev/fuse serves everything and
// the caller can go on with Serve; queues that did register keep serving
// until the connection ends, in case the kernel switched to the rings
// before the failure.
//
// No request is ever left on a ring nobody serves. Once the rings are in
// use the kernel never hands requests back to /dev/fuse, so a queue
// never stops while the connection lives: the queues end by themselves
// when the connection ends (unmount, or the last open file of a lazily
// unmounted mount closed; see Done). Close on a live connection, and a
// queue thread that dies (an io_uring_enter error, a panic outside the
// file system's handlers), abort the connection through fusectl
// (mounting it on /sys/fs/fuse/connections if needed), which ends every
// request it holds with an error. If the process dies, the kernel aborts
// the connection itself once the last /dev/fuse descriptor is closed.
//
// Inline serving is the fast path, but a request that blocks (a read
// that waits on the network, a lock wait) holds up every other request
// of its CPU. WithAsyncOps and WithAsyncIf hand such requests to
// goroutines, at the cost of Go scheduler hand-offs (about 35 µs more per
// request on a 2-vCPU VM; inline is about 13 µs less than /dev/fuse).
//
// Requests call the RawFileSystem as go-fuse's own server does, honouring
// MountOptions.DisableXAttrs, IgnoreSecurityLabels, SingleThreaded and
// PanicHandler (read from the fuse.Server). IOCTL, POLL, BMAP, SYNCFS,
// COPY_FILE_RANGE_64 and NOTIFY_REPLY (answers to
// Server.InodeRetrieveCache, which therefore must not be used with the
// rings) get ENOSYS. Every request gets a reply: a panic in the file
// system becomes EIO.
//
// Without io_uring, ServeDevice serves a mount from /dev/fuse the same
// way: one goroutine reads a request from a cloned descriptor, calls the
// file system inline and writes the reply, in place of go-fuse's Serve
// (see DevLoop), with the operations named by WithAsyncOps/WithAsyncIf
// on goroutines.
//
// # go-fuse's unexported fields
//
// The package is internal because it reads fields go-fuse does not
// export from its fuse.Server, by reflection under type checks: opts
// (the effective MountOptions), negotiatedFlags (the INIT reply's flags),
// mountPoint (to find the FUSE connection) and fuseFD.conn (the
// /dev/fuse descriptor to clone). Offsets are never assumed.
//
// Checked against go-fuse v2.12.1 (the version in go.mod).
//
// A go-fuse that moves or retypes one of these fields makes Start log a
// warning and fall back (defaults, WithDeviceFD, WithConnID); the tests
// fail loudly instead: TestGoFuseLayout on the types,
// TestGoFuseFieldsOnMount on a live mount, and TestGoFuseVersionChecked
// when go.mod names a go-fuse version not listed above. After checking a
// new version (the tests pass, and go-fuse's server.go and fusefd.go
// still mean the same by these fields), add it to the list.
package fuseuring
