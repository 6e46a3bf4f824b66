package graphdriver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// usernsChildEnv marks the test binary re-executed inside a new user and
// mount namespace; its value is the plugin binary.
const usernsChildEnv = "GONYDUS_GRAPHDRIVER_USERNS_CHILD"

// usernsDetachedEnv marks the test binary re-executed, as the host's root,
// in a mount namespace of its own whose copies of the host's mounts it
// detaches before it makes the user namespace; its value is the plugin.
const usernsDetachedEnv = "GONYDUS_GRAPHDRIVER_USERNS_DETACHED"

// TestContainerLayerAutoUserNamespace runs the plugin's mount path as
// dockerd inside a user-namespaced container does (rootless Docker in
// Docker): a new user namespace (root mapped) with its own mount
// namespace, the graphdriver's home on an overlayfs mounted inside it. The
// kernel refuses overlayfs there (an overlayfs upper dir is not
// supported): kernel mode must fail, auto must fall back to the userspace
// overlay (FUSE, which a user namespace may mount) and give the same
// reads, writes and changes as kernel mode on an ordinary home.
//
// The user namespace is made from a mount namespace that has first
// detached its copies of the host's mounts: a copy of another test's FUSE
// mount would otherwise keep that mount's server running after the other
// test unmounts it, for as long as this test's namespace lives (a user
// namespace's copies are locked and cannot be detached from inside).
func TestContainerLayerAutoUserNamespace(t *testing.T) {
	if plugin := os.Getenv(usernsChildEnv); plugin != "" {
		autoInUserNamespace(t, plugin)
		return
	}
	if plugin := os.Getenv(usernsDetachedEnv); plugin != "" {
		detachHostMounts(t)
		runUsernsStage(t, "user-namespace child", usernsChildEnv+"="+plugin, &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
			Pdeathsig:   syscall.SIGKILL,
		})
		return
	}
	requireFUSE(t)
	plugin := buildPlugin(t)
	runUsernsStage(t, "mount-namespace child", usernsDetachedEnv+"="+plugin, &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	})
}

// runUsernsStage re-runs this test in a child made with attr and env set,
// and passes, skips or fails as the child did.
func runUsernsStage(t *testing.T, what, env string, attr *syscall.SysProcAttr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestContainerLayerAutoUserNamespace$", "-test.v", "-test.timeout=150s")
	cmd.Env = append(os.Environ(), env)
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the %s did not finish within 3 minutes:\n%s", what, out.String())
	}
	if m := regexp.MustCompile(`(?m)^\s+userns_test.go:\d+: (.*)\n--- SKIP`).FindStringSubmatch(out.String()); m != nil {
		t.Skipf("in the %s: %s", what, m[1])
	}
	if err != nil || !strings.Contains(out.String(), "--- PASS: TestContainerLayerAutoUserNamespace") {
		t.Fatalf("%s: %v\n%s", what, err, out.String())
	}
	t.Logf("%s:\n%s", what, out.String())
}

// detachHostMounts makes this mount namespace's mounts private and
// detaches its copies of the host's mounts (hostMountCopies), deepest
// first.
func detachHostMounts(t *testing.T) {
	t.Helper()
	testutil.Must(t, syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
	points := hostMountCopies(t)
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH) // gone with a parent already, or not ours to care about
	}
	if left := hostMountCopies(t); len(left) > 0 {
		t.Fatalf("mounts left after detaching: %q", left)
	}
}

// hostMountCopies lists the mount points of this mount namespace but /,
// the /proc, /sys and /dev trees and top-level mounts such as /tmp.
func hostMountCopies(t *testing.T) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(nil)
	testutil.Must(t, err)
	var points []string
	for _, m := range ms {
		p := m.Mountpoint
		if strings.Count(p, "/") < 2 {
			continue
		}
		if top := strings.SplitN(p, "/", 3)[1]; top == "proc" || top == "sys" || top == "dev" {
			continue
		}
		points = append(points, p)
	}
	return points
}

// autoInUserNamespace is the test's body in the child.
func autoInUserNamespace(t *testing.T, plugin string) {
	uidMap, err := os.ReadFile("/proc/self/uid_map")
	testutil.Must(t, err)
	if f := strings.Fields(string(uidMap)); len(f) != 3 || f[2] != "1" {
		t.Fatalf("not in the user namespace the parent made: uid_map %q", uidMap)
	}
	if copies := hostMountCopies(t); len(copies) > 0 {
		t.Fatalf("the user namespace holds copies of host mounts: %q", copies)
	}
	// Mounts made here stay here (and go with the namespace).
	testutil.Must(t, syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
	autoOnNestedOverlay(t, plugin)
}
