package graphdriver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon/spawn"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestNydusLayerFailover: with the plugin's keeper, a container layer
// over a nydus layer reads and writes on across SIGKILL of the layer's
// nydusd and across an upgrade to another nydusd build, each read
// reaching the new daemon (files first read after each event).
func TestNydusLayerFailover(t *testing.T) {
	requireMounts(t)
	testutil.RequireFUSE(t)
	nydusd, image := buildBinaries(t)
	plugin := buildPlugin(t)
	v2 := filepath.Join(t.TempDir(), "nydusd-v2")
	if b, err := exec.Command("go", "build", "-ldflags", "-X main.version=failover-v2", "-o", v2, "../cmd/nydusd").CombinedOutput(); err != nil {
		t.Fatalf("build the second nydusd: %v\n%s", err, b)
	}
	run, err := os.MkdirTemp("/tmp", "gdr") // short: socket paths
	testutil.Must(t, err)
	defer os.RemoveAll(run)

	src := t.TempDir()
	parts := map[string][]byte{}
	for _, name := range []string{"before", "afterkill", "afterupgrade", "afterkill2"} {
		parts[name] = bytes.Repeat([]byte(name+"\n"), 100_000)
		testutil.Must(t, os.WriteFile(filepath.Join(src, name), parts[name], 0o644))
	}
	layer, cfg := nydusLayerTar(t, image, src)
	d, home := newDriver(t, WithNydusd(nydusd), WithNydusdConfig(cfg), WithRuntimeDir(run),
		WithSupervisor(plugin, "supervise-nydusd"), WithContainerLayer(ContainerLayerKernel))
	testutil.Must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "img", "", layer); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.CreateReadWrite("rw", "img", nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)

	socks, _ := filepath.Glob(filepath.Join(run, "*"+spawn.ControlSuffix))
	if len(socks) != 1 {
		t.Fatalf("keeper control sockets in %s: %v", run, socks)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status := func() spawn.Status {
		t.Helper()
		st, err := spawn.Control(ctx, socks[0], "status", "")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	logTail := func() string { return spawn.LogTail(filepath.Join(home, "img", nydusDir, logName)) }
	check := func(name string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || !bytes.Equal(b, parts[name]) {
			t.Fatalf("%s: %d bytes, %v: %s", name, len(b), err, logTail())
		}
		testutil.Must(t, os.WriteFile(filepath.Join(root, "written-"+name), []byte(name), 0o644))
	}
	kill := func(n int) {
		t.Helper()
		old := status().PID
		testutil.Must(t, syscall.Kill(old, syscall.SIGKILL))
		for deadline := time.Now().Add(30 * time.Second); status().Failovers != n; {
			if time.Now().After(deadline) {
				t.Fatalf("no failover %d within 30 s: %s", n, logTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("failover %d: nydusd %d -> %d", n, old, status().PID)
	}

	check("before")
	if status().StateBytes == 0 {
		t.Fatalf("nydusd did not hand over its state: %s", logTail())
	}
	kill(1)
	check("afterkill")
	if err := spawn.UpgradeAll(ctx, run, v2, nil); err != nil {
		t.Fatalf("upgrade: %v: %s", err, logTail())
	}
	if st := status(); st.Nydusd != v2 || st.Upgrades != 1 {
		t.Fatalf("after the upgrade: %+v", st)
	}
	check("afterupgrade")
	kill(2)
	check("afterkill2")
	for name := range parts {
		if b, err := os.ReadFile(filepath.Join(home, "rw", "diff", "written-"+name)); err != nil || string(b) != name {
			t.Fatalf("upper dir: written-%s = %q, %v", name, b, err)
		}
	}
	testutil.Must(t, d.Put("rw"))
	testutil.Must(t, d.Remove("rw"))
	testutil.Must(t, d.Remove("img"))
	if socks, _ := filepath.Glob(filepath.Join(run, "*"+spawn.ControlSuffix)); len(socks) != 0 {
		t.Fatalf("keeper sockets left after Remove: %v", socks)
	}
}
