package graphdriver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// usernsChildEnv marks the test binary re-executed inside a new user and
// mount namespace; its value is the plugin binary.
const usernsChildEnv = "GONYDUS_GRAPHDRIVER_USERNS_CHILD"

// TestContainerLayerAutoUserNamespace runs the plugin's mount path as
// dockerd inside a user-namespaced container does (rootless Docker in
// Docker): a new user namespace (root mapped) with its own mount
// namespace, the graphdriver's home on an overlayfs mounted inside it. The
// kernel refuses overlayfs there (an overlayfs upper dir is not
// supported): kernel mode must fail, auto must fall back to the userspace
// overlay (FUSE, which a user namespace may mount) and give the same
// reads, writes and changes as kernel mode on an ordinary home.
func TestContainerLayerAutoUserNamespace(t *testing.T) {
	if plugin := os.Getenv(usernsChildEnv); plugin != "" {
		autoInUserNamespace(t, plugin)
		return
	}
	requireFUSE(t)
	plugin := buildPlugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestContainerLayerAutoUserNamespace$", "-test.v", "-test.timeout=150s")
	cmd.Env = append(os.Environ(), usernsChildEnv+"="+plugin)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the user-namespace child did not finish within 3 minutes:\n%s", out.String())
	}
	if m := regexp.MustCompile(`(?m)^\s+userns_test.go:\d+: (.*)\n--- SKIP`).FindStringSubmatch(out.String()); m != nil {
		t.Skipf("in the user namespace: %s", m[1])
	}
	if err != nil || !strings.Contains(out.String(), "--- PASS: TestContainerLayerAutoUserNamespace") {
		t.Fatalf("user-namespace child: %v\n%s", err, out.String())
	}
	t.Logf("user-namespace child:\n%s", out.String())
}

// autoInUserNamespace is the test's body in the child.
func autoInUserNamespace(t *testing.T, plugin string) {
	uidMap, err := os.ReadFile("/proc/self/uid_map")
	must(t, err)
	if f := strings.Fields(string(uidMap)); len(f) != 3 || f[2] != "1" {
		t.Fatalf("not in the user namespace the parent made: uid_map %q", uidMap)
	}
	// Mounts made here stay here (and go with the namespace).
	must(t, syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
	base, err := os.MkdirTemp("/tmp", "gduserns")
	must(t, err)
	defer os.RemoveAll(base)
	for _, s := range []string{"lo", "up", "wk", "mnt"} {
		must(t, os.Mkdir(filepath.Join(base, s), 0o755))
	}
	// The container's root file system: an overlayfs the user namespace
	// mounts itself.
	mnt := filepath.Join(base, "mnt")
	if err := syscall.Mount("overlay", mnt, "overlay", 0, "lowerdir="+filepath.Join(base, "lo")+",upperdir="+filepath.Join(base, "up")+",workdir="+filepath.Join(base, "wk")); err != nil {
		t.Skipf("this kernel does not mount overlayfs in a user namespace: %v", err)
	}
	defer unmountIfMounted(mnt)
	home := filepath.Join(mnt, "nydus")
	ctx := context.Background()
	image := func(d *Driver) {
		t.Helper()
		must(t, d.Create("base", "", nil))
		if _, err := d.ApplyDiff(ctx, "base", "", tarOf(t, dir("etc/"), file("etc/mod", "m"), file("etc/keep", "k"))); err != nil {
			t.Fatal(err)
		}
		must(t, d.CreateReadWrite("rw", "base", nil))
	}

	k, err := New(modeOpts(plugin, ContainerLayerKernel)...)
	must(t, err)
	must(t, k.Init(home, nil, nil, nil))
	image(k)
	if _, err := k.Get("rw", ""); err == nil {
		k.Put("rw")
		t.Skip("the kernel mounts overlayfs with an overlayfs upper dir in a user namespace: nothing to fall back from")
	} else {
		t.Logf("kernel mode refused: %v", err)
	}

	a, err := New(modeOpts(plugin, ContainerLayerAuto)...)
	must(t, err)
	must(t, a.Init(home, nil, nil, nil))
	defer a.Cleanup()
	root, err := a.Get("rw", "")
	must(t, err)
	if typ, _ := mountedAt(root); typ != "fuse.nydus-overlay" {
		a.Put("rw")
		t.Fatalf("auto mode in a user namespace: the container root is %q, want fuse.nydus-overlay", typ)
	}
	addOnlyWork(t, root)
	if b, err := os.ReadFile(filepath.Join(root, "etc/mod")); err != nil || string(b) != "modified" {
		t.Fatalf("read back through the userspace overlay: %q, %v", b, err)
	}
	must(t, a.Put("rw"))
	got := changesListing(t, a, "rw", "base")
	// Mounted again, the container layer still holds the work.
	root, err = a.Get("rw", "")
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "newdir/x")); err != nil || string(b) != "x" {
		t.Errorf("remounted: newdir/x %q, %v", b, err)
	}
	must(t, a.Put("rw"))

	// The same work in kernel mode on a home overlayfs accepts (a plain
	// directory, in the same user namespace).
	kd, _ := newDriver(t, modeOpts(plugin, ContainerLayerKernel)...)
	image(kd)
	kroot, err := kd.Get("rw", "")
	must(t, err)
	if typ, _ := mountedAt(kroot); typ != "overlay" {
		t.Fatalf("kernel mode on a plain home: %q", typ)
	}
	addOnlyWork(t, kroot)
	must(t, kd.Put("rw"))
	if want := changesListing(t, kd, "rw", "base"); got != want || got == "" {
		t.Fatalf("changes in auto mode in a user namespace:\n%s\nkernel mode:\n%s", got, want)
	}
}
