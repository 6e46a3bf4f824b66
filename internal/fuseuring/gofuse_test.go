package fuseuring

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

const goFuseModule = "github.com/hanwen/go-fuse/v2"

// TestGoFuseLayout fails when fuse.Server no longer has an unexported
// field this package reads, or has it with another type.
func TestGoFuseLayout(t *testing.T) {
	if err := checkGoFuseLayout(); err != nil {
		t.Fatalf("go-fuse's private layout changed; Start would fall back: %v\n"+
			"re-read go-fuse's server.go and fusefd.go, then fix gofuse.go and the package doc", err)
	}
	fields := goFuseFields()
	if len(fields) != 4 {
		t.Fatalf("goFuseFields lists %d fields; the package doc and this test know 4", len(fields))
	}
	for _, f := range fields {
		t.Logf("fuse.Server.%s: %v", f.path, f.typ)
	}
	// The check can fail: a missing field, a missing field behind a
	// pointer, a changed type.
	srv := reflect.TypeFor[fuse.Server]()
	for _, bad := range []goFuseField{
		{"noSuchField", reflect.TypeFor[uint64]()},
		{"fuseFD.noSuchField", reflect.TypeFor[syscall.RawConn]()},
		{"mountPoint.x", reflect.TypeFor[string]()},
		{"opts", reflect.TypeFor[fuse.MountOptions]()},
		{"negotiatedFlags", reflect.TypeFor[uint32]()},
	} {
		if err := checkLayout(srv, []goFuseField{bad}); err == nil {
			t.Errorf("checkLayout accepts fuse.Server.%s as a %v", bad.path, bad.typ)
		}
	}
}

// TestGoFuseVersionChecked fails when go.mod names a go-fuse version the
// package doc does not list as checked.
func TestGoFuseVersionChecked(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(goFuseModule) + `\s+(\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatalf("go.mod does not require %s", goFuseModule)
	}
	if regexp.MustCompile(`(?m)^replace\s.*` + regexp.QuoteMeta(goFuseModule)).Match(gomod) {
		t.Fatalf("go.mod replaces %s: check the replacement's layout and teach this test its version", goFuseModule)
	}
	version := string(m[1])
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var listed string
	for line := range strings.SplitSeq(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(line, "// Checked against go-fuse "); ok {
			listed = rest
		}
	}
	if listed == "" {
		t.Fatal(`doc.go has no "// Checked against go-fuse ..." line`)
	}
	for _, v := range strings.FieldsFunc(listed, func(r rune) bool { return r == ',' || r == ' ' || r == '(' }) {
		if v == version {
			return
		}
	}
	t.Fatalf("go.mod has go-fuse %s, but the package doc lists only %q as checked: run this package's tests as root, "+
		"re-read go-fuse's server.go and fusefd.go for the fields gofuse.go reads, then add %s to doc.go", version, listed, version)
}

// TestGoFuseFieldsOnMount reads each unexported field from a live
// go-fuse mount (plain /dev/fuse) and checks it against what the kernel
// and the mount itself say.
func TestGoFuseFieldsOnMount(t *testing.T) {
	testutil.RequireRoot(t, "mounts FUSE")
	testutil.RequireFUSE(t)
	testutil.RequireFusermount(t)
	dir := t.TempDir()
	opts := &fs.Options{}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-layout", Name: "fuseuringtest", MaxWrite: 128 << 10}
	srv, err := fuse.NewServer(fs.NewNodeFS(&testTree{}, opts), dir, &opts.MountOptions)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	go srv.Serve()
	defer func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			AbortConn(connOf(dir))
		}
		waitOrFail(t, "go-fuse Serve to end", func() { srv.Wait() })
	}()
	if err := srv.WaitMount(); err != nil {
		t.Fatalf("WaitMount: %v", err)
	}

	mo, err := serverOptions(srv)
	if err != nil {
		t.Fatalf("fuse.Server.opts: %v", err)
	}
	if mo.FsName != "fuseuring-layout" || mo.MaxWrite != 128<<10 {
		t.Errorf("fuse.Server.opts: FsName %q MaxWrite %d, the mount was made with %q and %d", mo.FsName, mo.MaxWrite, "fuseuring-layout", 128<<10)
	}

	neg, err := negotiatedFlags(srv)
	if err != nil {
		t.Fatalf("fuse.Server.negotiatedFlags: %v", err)
	}
	offered := srv.KernelSettings().Flags64()
	if neg == 0 || neg&^offered != 0 {
		t.Errorf("fuse.Server.negotiatedFlags = %#x: not a non-empty subset of the kernel's offer %#x", neg, offered)
	}

	conn, err := serverConnID(srv)
	if err != nil {
		t.Fatalf("fuse.Server.mountPoint: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	// fusectl names a connection by the kernel's dev_t of the mount.
	if want := int(unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)); conn != want {
		t.Errorf("connection from fuse.Server.mountPoint = %d; stat of the mount says %d", conn, want)
	}

	rc, err := serverConn(srv)
	if err != nil {
		t.Fatalf("fuse.Server.fuseFD.conn: %v", err)
	}
	var target string
	if err := rc.Control(func(fd uintptr) {
		target, _ = os.Readlink(filepath.Join("/proc/self/fd", strconv.Itoa(int(fd))))
	}); err != nil {
		t.Fatalf("fuse.Server.fuseFD.conn: %v", err)
	}
	if target != "/dev/fuse" {
		t.Errorf("fuse.Server.fuseFD.conn's descriptor is %q, not /dev/fuse", target)
	}
}
