package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/internal/fuseuring"
	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/internal/testutil"
)

// registryConfig writes a nydusd configuration reading blobs from
// repository app of reg (cached in cacheDir) and returns its path.
func registryConfig(t *testing.T, reg *testregistry.InProcess, cacheDir string) string {
	host := reg.Host
	p := filepath.Join(t.TempDir(), "nydusd.json")
	cfg := fmt.Sprintf(`{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app","timeout":10,"retry_limit":2}},
		"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":true,"enable_xattr":true,"amplify_io":0}`, host, cacheDir)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testImage is an image built by nydus-image whose blob is in a registry.
type testImage struct {
	boot  string
	files map[string][]byte // path in the image -> content
}

// buildRegistryImage builds an image of files with nydus-image and
// pushes its blobs to reg.
func buildRegistryImage(t *testing.T, imageBin string, reg *testregistry.InProcess, files map[string][]byte) *testImage {
	t.Helper()
	src, blobs := t.TempDir(), t.TempDir()
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	boot := filepath.Join(t.TempDir(), "image.boot")
	if out, err := exec.Command(imageBin, "create", "-l", "warn", "--compressor", "zstd", "-B", boot, "-D", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	ents, err := os.ReadDir(blobs)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no blob written: %v", err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(blobs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		reg.Push(t, "app", data)
	}
	return &testImage{boot: boot, files: files}
}

// randomFiles returns n files of random bytes, sizes from 1 byte to
// about 2*avg, in a few directories.
func randomFiles(seed uint64, n, avg int) map[string][]byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	files := map[string][]byte{}
	for i := range n {
		data := make([]byte, 1+rng.IntN(2*avg))
		for k := range data {
			data[k] = byte(rng.UintN(256))
		}
		files[fmt.Sprintf("d%02d/f%04d", i%7, i)] = data
	}
	return files
}

// readResult is the outcome of a read by another process.
type readResult struct {
	data []byte
	err  error
}

// readAsync reads path with cat(1), in a process of its own: this test
// process forks daemons, and a child inherits every open file until it
// execs, when the close of a FUSE file waits for a FLUSH that no daemon
// answers while the session has none.
func readAsync(path string) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		b, err := exec.Command("cat", path).Output()
		ch <- readResult{b, err}
	}()
	return ch
}

// statWithin stats path, failing if that takes longer than limit.
func statWithin(path string, limit time.Duration) error {
	ch := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		ch <- unix.Stat(path, &st)
	}()
	select {
	case err := <-ch:
		return err
	case <-time.After(limit):
		return fmt.Errorf("stat %s still blocked after %v", path, limit)
	}
}

// verifyAll reads every file of im under root and compares it.
func verifyAll(t *testing.T, root string, im *testImage) {
	t.Helper()
	for name, want := range im.files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v (read %d bytes, want %d)", name, err, len(got), len(want))
		}
	}
}

// abortConnection aborts the FUSE connection mounted at dir (fusectl),
// so that no test leaves a caller blocked, and detaches the mount.
func abortConnection(dir string) {
	if conn, err := fuseuring.ConnOf(dir); err == nil {
		fuseuring.AbortConn(conn)
		unix.Unmount(dir, unix.MNT_DETACH)
	}
}

// TestFailoverResend is the kernel-level failover: a READ the daemon has
// taken from /dev/fuse (its backend fetch held) when it is SIGKILLed is
// answered by a successor started with the same command line: the
// successor finds the mount and the dead API socket and waits in INIT
// (answering within 1.5 s), takes the descriptor and state from the
// supervisor, and after start has the kernel resend the READ.
// Meanwhile the mount stays, and a stat of it is answered from the
// kernel's cache.
//
// With --failover-policy none the same READ stays blocked after start
// (the kernel does not repeat it by itself) while other reads are served:
// what completes it is the resend.
func TestFailoverResend(t *testing.T) {
	testutil.RequireFUSE(t)
	for _, policy := range []string{"resend", "none"} {
		t.Run(policy, func(t *testing.T) { failoverHeldRead(t, policy) })
	}
}

func failoverHeldRead(t *testing.T, policy string) {
	imageBin, nydusd := testBinaries(t)
	reg := testregistry.Start(t)
	files := randomFiles(1, 12, 200<<10)
	im := buildRegistryImage(t, imageBin, reg, files)
	work := t.TempDir()
	mnt := filepath.Join(work, "mnt")
	os.Mkdir(mnt, 0o755)
	t.Cleanup(func() { abortConnection(mnt) })
	sock := filepath.Join(work, "api.sock")
	sup := newTestSupervisor(t, filepath.Join(work, "supervisor.sock"))
	args := []string{"fuse", "--id", "d1", "--bootstrap", im.boot, "--config", registryConfig(t, reg, filepath.Join(work, "cache")),
		"--mountpoint", mnt, "--apisock", sock, "--log-level", "info", "--supervisor", sup.path, "--failover-policy", policy}
	d1 := startDaemon(t, nydusd, sock, args...)
	d1.waitState(t, "RUNNING", 20*time.Second)
	if err := sup.fetch(func() error { return d1.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
		t.Fatal(err)
	}
	reg.Hold()
	held := "d03/f0003"
	pending := readAsync(filepath.Join(mnt, held))
	deadline := time.Now().Add(10 * time.Second)
	for reg.Held() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the READ never reached the backend")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d1.kill(t)
	reg.Release()
	if !daemon.Mounted(mnt) {
		t.Fatal("the mount went with the daemon, though the supervisor holds its descriptor")
	}
	if err := statWithin(mnt, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-pending:
		t.Fatalf("the READ the dead daemon held returned (%d bytes, %v) with no daemon", len(r.data), r.err)
	case <-time.After(300 * time.Millisecond):
	}

	start := time.Now()
	d2 := startDaemon(t, nydusd, sock, args...)
	initIn := d2.waitState(t, "INIT", 5*time.Second)
	if initIn > 1500*time.Millisecond {
		t.Errorf("the successor answered INIT after %v (nydus-snapshotter gives up after about 1.9 s)", initIn)
	}
	if terr, serr := sup.send(nil, func() error { return d2.put("/api/v1/daemon/fuse/takeover") }); terr != nil || serr != nil {
		t.Fatalf("takeover: %v / supervisor: %v", terr, serr)
	}
	if body, _ := apiState(sock); !strings.Contains(body, `"state":"READY"`) {
		t.Fatalf("after takeover: %s", body)
	}
	if err := d2.put("/api/v1/daemon/start"); err != nil {
		t.Fatal(err)
	}
	t.Logf("successor: INIT after %v, RUNNING %v after exec", initIn, time.Since(start))
	if policy == "none" {
		select {
		case r := <-pending:
			t.Fatalf("the READ the dead daemon held returned without a resend (%d bytes, %v): the test cannot tell resend from its absence", len(r.data), r.err)
		case <-time.After(2 * time.Second):
		}
		others := map[string][]byte{}
		for name, data := range files {
			if name != held {
				others[name] = data
			}
		}
		verifyAll(t, mnt, &testImage{files: others})
		abortConnection(mnt)
		select {
		case <-pending:
		case <-time.After(10 * time.Second):
			t.Fatal("the held READ did not return after the connection was aborted")
		}
		return
	}
	select {
	case r := <-pending:
		if r.err != nil || !bytes.Equal(r.data, files[held]) {
			t.Fatalf("the resent READ: %v, %d bytes (want %d)", r.err, len(r.data), len(files[held]))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the READ the dead daemon held is still blocked 10 s after the successor started")
	}
	verifyAll(t, mnt, im)
	d2.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-d2.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("nydusd did not stop on SIGTERM")
	}
	if daemon.Mounted(mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
}

// TestFailoverPolicyFlush: the flush policy needs a fusectl flush file,
// which mainline kernels lack: nydusd refuses to start without one, with
// a message naming it, and leaves no mount; with one it serves.
func TestFailoverPolicyFlush(t *testing.T) {
	testutil.RequireFUSE(t)
	imageBin, nydusd := testBinaries(t)
	reg := testregistry.Start(t)
	im := buildRegistryImage(t, imageBin, reg, randomFiles(4, 2, 1000))
	work := t.TempDir()
	mnt := filepath.Join(work, "mnt")
	os.Mkdir(mnt, 0o755)
	t.Cleanup(func() { abortConnection(mnt) })
	sock := filepath.Join(work, "api.sock")
	d := startDaemon(t, nydusd, sock, "--id", "f", "--bootstrap", im.boot, "--config", registryConfig(t, reg, filepath.Join(work, "cache")),
		"--mountpoint", mnt, "--apisock", sock, "--supervisor", filepath.Join(work, "sup.sock"), "--failover-policy", "flush")
	select {
	case <-d.exited:
		if d.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(d.stderr.String(), "flush") {
			t.Fatalf("exit %v, stderr:\n%s", d.cmd.ProcessState, d.stderr.String())
		}
		if daemon.Mounted(mnt) {
			t.Fatal("a refused start left its mount")
		}
		t.Logf("refused: %s", strings.TrimSpace(d.stderr.String()))
	case <-time.After(20 * time.Second):
		d.waitState(t, "RUNNING", time.Second)
		t.Log("this kernel has a fusectl flush file: the flush policy serves")
	}
}

// TestUpgradeAndFailovers: a shared-mode daemon with a pseudo-mount whose
// state is over 256 KiB (a long prefetch list) is upgraded live: the
// successor (--upgrade) refuses a state of an unknown version and one
// that is not ours, leaving the old daemon serving; then takes over,
// sends its state in READY, and serves after the old daemon's exit, which
// leaves the mount. Then it is killed twice in a row and each successor,
// started without --upgrade, takes over.
func TestUpgradeAndFailovers(t *testing.T) {
	testutil.RequireFUSE(t)
	imageBin, nydusd := testBinaries(t)
	reg := testregistry.Start(t)
	im := buildRegistryImage(t, imageBin, reg, randomFiles(2, 20, 100<<10))
	work := t.TempDir()
	mnt := filepath.Join(work, "mnt")
	os.Mkdir(mnt, 0o755)
	t.Cleanup(func() { abortConnection(mnt) })
	sup := newTestSupervisor(t, filepath.Join(work, "supervisor.sock"))
	sock1 := filepath.Join(work, "api.sock")
	base := []string{"--id", "d1", "--mountpoint", mnt, "--log-level", "info", "--supervisor", sup.path, "--failover-policy", "resend"}
	d1 := startDaemon(t, nydusd, sock1, append([]string{"fuse", "--apisock", sock1}, base...)...)
	d1.waitState(t, "RUNNING", 20*time.Second)

	cfg, err := os.ReadFile(registryConfig(t, reg, filepath.Join(work, "cache")))
	if err != nil {
		t.Fatal(err)
	}
	var prefetch []string
	for i := range 12000 {
		prefetch = append(prefetch, fmt.Sprintf("/no/such/prefetch/path/%06d", i))
	}
	body, _ := json.Marshal(map[string]any{"source": im.boot, "fs_type": "rafs", "config": string(cfg), "prefetch_files": prefetch})
	if code, out, err := d1.do("POST", "/api/v1/mount?mountpoint=/img", string(body)); err != nil || code != 204 {
		t.Fatalf("mount: %d %s %v", code, out, err)
	}
	root := filepath.Join(mnt, "img")
	verifyAll(t, root, im)
	if err := sup.fetch(func() error { return d1.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
		t.Fatal(err)
	}
	if len(sup.data) <= 256<<10 {
		t.Fatalf("state of %d bytes; the test wants one over 256 KiB", len(sup.data))
	}
	t.Logf("state: %d bytes", len(sup.data))

	// Live upgrade.
	sock2 := filepath.Join(work, "api2.sock")
	args2 := append([]string{"fuse", "--apisock", sock2}, base...)
	d2 := startDaemon(t, nydusd, sock2, append(args2, "--upgrade")...)
	d2.waitState(t, "INIT", 5*time.Second)
	var st map[string]any
	if err := json.Unmarshal(sup.data, &st); err != nil {
		t.Fatal(err)
	}
	st["version"] = 99
	newer, _ := json.Marshal(st)
	for _, c := range []struct {
		blob []byte
		want string
	}{{newer, "version 99"}, {[]byte{0}, "not a gonydus nydusd state"}} {
		_, serr := sup.send(c.blob, func() error {
			code, out, err := d2.do("PUT", "/api/v1/daemon/fuse/takeover", "")
			if err != nil || code/100 == 2 || !strings.Contains(out, c.want) {
				return fmt.Errorf("takeover of a bad state: %d %s %w (want a refusal naming %q)", code, out, err, c.want)
			}
			return nil
		})
		if serr != nil {
			t.Fatal(serr)
		}
		if body, _ := apiState(sock2); !strings.Contains(body, `"state":"INIT"`) {
			t.Fatalf("after a refused takeover: %s", body)
		}
		if body, _ := apiState(sock1); !strings.Contains(body, `"state":"RUNNING"`) {
			t.Fatalf("the old daemon after a refused takeover: %s", body)
		}
		verifyAll(t, root, im)
	}
	if terr, serr := sup.send(nil, func() error { return d2.put("/api/v1/daemon/fuse/takeover") }); terr != nil || serr != nil {
		t.Fatalf("takeover: %v / supervisor: %v", terr, serr)
	}
	d2.waitState(t, "READY", time.Second)
	// sendfd in READY, as the nydus smoke test calls it.
	if err := sup.fetch(func() error { return d2.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
		t.Fatal(err)
	}
	if err := d1.put("/api/v1/daemon/exit"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d1.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the old daemon did not exit")
	}
	if !daemon.Mounted(mnt) {
		t.Fatal("the old daemon's exit unmounted the session")
	}
	if err := d2.put("/api/v1/daemon/start"); err != nil {
		t.Fatal(err)
	}
	dropFileCaches(t, root, im)
	verifyAll(t, root, im)
	// nydus-snapshotter mounts its images again after an upgrade.
	if code, out, err := d2.do("POST", "/api/v1/mount?mountpoint=/img", string(body)); err != nil || code != 204 {
		t.Fatalf("the same mount again: %d %s %v", code, out, err)
	}
	other, _ := json.Marshal(map[string]any{"source": im.boot + ".other", "fs_type": "rafs", "config": string(cfg)})
	if code, out, err := d2.do("POST", "/api/v1/mount?mountpoint=/img", string(other)); err != nil || code != 400 {
		t.Fatalf("another image at a mounted mountpoint: %d %s %v", code, out, err)
	}

	// Two failovers in a row.
	cur := d2
	for i := range 2 {
		if err := sup.fetch(func() error { return cur.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
			t.Fatal(err)
		}
		cur.kill(t)
		killed := time.Now()
		next := startDaemon(t, nydusd, sock2, args2...)
		next.waitState(t, "INIT", 5*time.Second)
		if terr, serr := sup.send(nil, func() error { return next.put("/api/v1/daemon/fuse/takeover") }); terr != nil || serr != nil {
			t.Fatalf("failover %d: takeover: %v / supervisor: %v", i+1, terr, serr)
		}
		if err := next.put("/api/v1/daemon/start"); err != nil {
			t.Fatal(err)
		}
		t.Logf("failover %d: RUNNING %v after the kill", i+1, time.Since(killed))
		dropFileCaches(t, root, im)
		verifyAll(t, root, im)
		cur = next
	}
	cur.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-cur.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("nydusd did not stop on SIGTERM")
	}
}

// dropFileCaches evicts the files of im under root from the page cache,
// so the next reads reach the daemon.
func dropFileCaches(t *testing.T, root string, im *testImage) {
	t.Helper()
	for name := range im.files {
		f, err := os.Open(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}
}
