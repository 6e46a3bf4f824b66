package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The daemon opens /dev/fuse and mounts it itself, so that it holds the
// session's descriptor: it hands it to a supervisor (sendfd) and a
// successor serves the same kernel connection with it (takeover).
//
// go-fuse can only start a server by answering INIT, which the kernel
// sends once per connection. So the daemon reads INIT itself and lets
// go-fuse answer it over a socket pair standing in for /dev/fuse; then it
// puts the real descriptor in the pair's place (dup3) before go-fuse reads
// anything else. A successor replays the INIT request saved in the state
// the same way and discards the answer: the kernel keeps the negotiation
// of the first daemon, and go-fuse learns the same settings from it.

// fuseOpInit is FUSE_INIT's opcode.
const fuseOpInit = 26

// mountOwned opens /dev/fuse and mounts it at dir as go-fuse's direct
// mount would with opts, returning the descriptor.
func mountOwned(dir string, opts *fuse.MountOptions) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return -1, fmt.Errorf("mountpoint: %w", err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if opts.DirectMountFlags != 0 {
		flags = opts.DirectMountFlags
	}
	maxWrite := opts.MaxWrite
	if maxWrite == 0 {
		maxWrite = 128 << 10
	}
	data := []string{
		fmt.Sprintf("fd=%d", fd),
		fmt.Sprintf("rootmode=%o", st.Mode&unix.S_IFMT),
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", maxWrite),
	}
	for _, o := range opts.Options {
		switch o {
		case "nodev":
			flags |= unix.MS_NODEV
		case "dev":
			flags &^= unix.MS_NODEV
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "suid":
			flags &^= unix.MS_NOSUID
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "exec":
			flags &^= unix.MS_NOEXEC
		default:
			data = append(data, o)
		}
	}
	if opts.AllowOther {
		data = append(data, "allow_other")
	}
	source := opts.FsName
	if source == "" {
		source = opts.Name
	}
	if err := unix.Mount(source, dir, "fuse."+opts.Name, flags, strings.Join(data, ",")); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount: %w", err)
	}
	return fd, nil
}

// readInit reads the kernel's INIT request from a freshly mounted fd.
func readInit(fd int) ([]byte, error) {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read INIT: %w", err)
		}
		if n < 40 || int(le32(buf[4:])) != fuseOpInit {
			return nil, fmt.Errorf("read INIT: the first request (%d bytes, opcode %d) is not INIT", n, le32(buf[4:]))
		}
		return append([]byte(nil), buf[:n]...), nil
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// newServerOn returns a go-fuse server of raw on the FUSE descriptor fd
// (which it dups; fd stays the caller's), answering the INIT request
// initReq through a socket pair; it returns go-fuse's INIT answer. The
// server reads nothing from fd until Serve.
func newServerOn(raw fuse.RawFileSystem, fd int, initReq []byte, opts *fuse.MountOptions) (*fuse.Server, []byte, error) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(sp[1])
	if _, err := unix.Write(sp[1], initReq); err != nil {
		unix.Close(sp[0])
		return nil, nil, fmt.Errorf("replay INIT: %w", err)
	}
	o := *opts
	o.DirectMount, o.DirectMountStrict = false, false
	srv, err := fuse.NewServer(raw, fmt.Sprintf("/dev/fd/%d", sp[0]), &o)
	if err != nil {
		// NewServer closed sp[0].
		return nil, nil, fmt.Errorf("answer INIT: %w", err)
	}
	reply := make([]byte, 4096)
	n, err := unix.Read(sp[1], reply)
	if err != nil {
		return nil, nil, fmt.Errorf("INIT answer: %w", err)
	}
	// The server's descriptor becomes the session's.
	if err := unix.Dup3(fd, sp[0], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("dup3: %w", err)
	}
	return srv, reply[:n], nil
}

// initOutFlags returns the flags and max_write of an INIT answer (header
// included): fuse_init_out is major, minor, max_readahead, flags,
// max_background, congestion_threshold, max_write, time_gran, max_pages,
// map_alignment, flags2.
func initOutFlags(reply []byte) (flags uint64, maxWrite uint32, err error) {
	const hdr = 16
	if len(reply) < hdr+24 {
		return 0, 0, fmt.Errorf("INIT answer of %d bytes", len(reply))
	}
	if e := int32(le32(reply[4:])); e != 0 {
		return 0, 0, fmt.Errorf("INIT answered with error %d", e)
	}
	body := reply[hdr:]
	flags = uint64(le32(body[12:]))
	maxWrite = le32(body[20:])
	if len(body) >= 36 {
		flags |= uint64(le32(body[32:])) << 32
	}
	return flags, maxWrite, nil
}

// initInFlags returns the kernel's offered flags of an INIT request:
// fuse_in_header (40 bytes), then major, minor, max_readahead, flags,
// flags2.
func initInFlags(req []byte) uint64 {
	if len(req) < 40+16 {
		return 0
	}
	f := uint64(le32(req[52:]))
	if len(req) >= 40+20 {
		f |= uint64(le32(req[56:])) << 32
	}
	return f
}
