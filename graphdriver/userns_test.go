package graphdriver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
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
	testutil.Must(t, err)
	if f := strings.Fields(string(uidMap)); len(f) != 3 || f[2] != "1" {
		t.Fatalf("not in the user namespace the parent made: uid_map %q", uidMap)
	}
	// Mounts made here stay here (and go with the namespace).
	testutil.Must(t, syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
	autoOnNestedOverlay(t, plugin)
}
