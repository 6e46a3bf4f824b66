package fuseuring

// What go-fuse knows but does not export, read from its Server by
// reflection under type checks (a layout change makes these fail, and
// the callers fall back; checkGoFuseLayout and the tests make it loud),
// and /dev/fuse descriptor handling. The package doc names the go-fuse
// versions this is checked against.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// goFuseField is an unexported field of fuse.Server this file reads: its
// path from the Server (through pointers) and the type it is read as.
type goFuseField struct {
	path string
	typ  reflect.Type
}

// goFuseFields lists every unexported field of fuse.Server read here.
// Offsets are not assumed: reflection finds each field where it is.
func goFuseFields() []goFuseField {
	return []goFuseField{
		{"opts", reflect.TypeFor[*fuse.MountOptions]()},     // serverOptions
		{"negotiatedFlags", reflect.TypeFor[uint64]()},      // negotiatedFlags (in the embedded protocolServer)
		{"mountPoint", reflect.TypeFor[string]()},           // serverConnID
		{"fuseFD.conn", reflect.TypeFor[syscall.RawConn]()}, // serverConn
	}
}

// checkGoFuseLayout reports every field of goFuseFields that fuse.Server
// no longer has with that type.
func checkGoFuseLayout() error {
	return checkLayout(reflect.TypeFor[fuse.Server](), goFuseFields())
}

// checkLayout reports every field of fields that struct type st lacks
// or has with another type.
func checkLayout(st reflect.Type, fields []goFuseField) error {
	var errs []error
	for _, f := range fields {
		t := st
		for name := range strings.SplitSeq(f.path, ".") {
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Struct {
				t = nil
				break
			}
			sf, ok := t.FieldByName(name)
			if !ok {
				t = nil
				break
			}
			t = sf.Type
		}
		switch {
		case t == nil:
			errs = append(errs, fmt.Errorf("%v has no field %s", st, f.path))
		case t != f.typ:
			errs = append(errs, fmt.Errorf("%v.%s is a %v, not a %v", st, f.path, t, f.typ))
		}
	}
	return errors.Join(errs...)
}

// serverField returns the (possibly unexported) field name of *srv.
func serverField(srv *fuse.Server, name string) (reflect.Value, error) {
	if srv == nil {
		return reflect.Value{}, errors.New("no server")
	}
	f := reflect.ValueOf(srv).Elem().FieldByName(name)
	if !f.IsValid() {
		return reflect.Value{}, fmt.Errorf("fuse.Server has no field %s", name)
	}
	return f, nil
}

// serverOptions returns the effective MountOptions of srv (defaults
// filled in, MaxWrite clamped), not to be modified.
func serverOptions(srv *fuse.Server) (*fuse.MountOptions, error) {
	f, err := serverField(srv, "opts")
	if err != nil {
		return nil, err
	}
	if f.Type() != reflect.TypeFor[*fuse.MountOptions]() || f.IsNil() {
		return nil, errors.New("fuse.Server.opts is not a *MountOptions")
	}
	return *(**fuse.MountOptions)(unsafe.Pointer(f.UnsafeAddr())), nil
}

// negotiatedFlags returns the capability flags srv sent in its INIT reply.
func negotiatedFlags(srv *fuse.Server) (uint64, error) {
	f, err := serverField(srv, "negotiatedFlags")
	if err != nil {
		return 0, err
	}
	if f.Kind() != reflect.Uint64 {
		return 0, errors.New("fuse.Server.negotiatedFlags is not a uint64")
	}
	return f.Uint(), nil
}

// serverConnID finds the FUSE connection id of srv's mount from go-fuse's
// (unexported) mount point.
func serverConnID(srv *fuse.Server) (int, error) {
	f, err := serverField(srv, "mountPoint")
	if err != nil {
		return -1, err
	}
	if f.Kind() != reflect.String || f.String() == "" {
		return -1, errors.New("fuse.Server has no mount point")
	}
	return ConnOf(f.String())
}

// deviceCloner returns a function giving a new /dev/fuse descriptor
// attached (FUSE_DEV_IOC_CLONE) to the mount's connection, so the queues
// own their descriptor's lifetime.
func deviceCloner(srv *fuse.Server, fd int) (func() (int, error), error) {
	if fd >= 0 {
		return func() (int, error) { return cloneDev(fd) }, nil
	}
	if rc, err := serverConn(srv); err == nil {
		return func() (int, error) {
			var nfd int
			var cerr error
			if err := rc.Control(func(fd uintptr) { nfd, cerr = cloneDev(int(fd)) }); err != nil {
				return -1, fmt.Errorf("fuseuring: go-fuse device fd: %w", err)
			}
			return nfd, cerr
		}, nil
	}
	fd, err := onlyFuseFD()
	if err != nil {
		return nil, err
	}
	return func() (int, error) { return cloneDev(fd) }, nil
}

// serverConn digs go-fuse's /dev/fuse RawConn out of the Server (go-fuse
// v2.12 keeps it in the unexported fuseFD.conn). Guarded by type checks,
// so a layout change only makes it fail.
func serverConn(srv *fuse.Server) (syscall.RawConn, error) {
	v, err := serverField(srv, "fuseFD")
	if err != nil {
		return nil, err
	}
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("fuse.Server has no fuseFD")
	}
	c := v.Elem().FieldByName("conn")
	if !c.IsValid() || c.Type() != reflect.TypeFor[syscall.RawConn]() || c.IsNil() {
		return nil, errors.New("fuseFD has no conn")
	}
	return *(*syscall.RawConn)(unsafe.Pointer(c.UnsafeAddr())), nil
}

// onlyFuseFD finds the single /dev/fuse descriptor of this process.
func onlyFuseFD() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, fmt.Errorf("fuseuring: %w", err)
	}
	found := -1
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != "/dev/fuse" {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if found >= 0 {
			return -1, errors.New("fuseuring: several /dev/fuse descriptors; use WithDeviceFD")
		}
		found = fd
	}
	if found < 0 {
		return -1, errors.New("fuseuring: no /dev/fuse descriptor found; use WithDeviceFD")
	}
	return found, nil
}

func cloneDev(fd int) (int, error) {
	nfd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("fuseuring: open /dev/fuse: %w", err)
	}
	src := uint32(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(nfd), fuseDevIocClone, uintptr(unsafe.Pointer(&src))); errno != 0 {
		unix.Close(nfd)
		return -1, fmt.Errorf("fuseuring: FUSE_DEV_IOC_CLONE: %w", errno)
	}
	return nfd, nil
}
