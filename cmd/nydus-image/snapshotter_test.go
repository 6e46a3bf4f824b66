package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/blob"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// removeBuiltBinary removes what builtBinary built (TestMain runs it).
func removeBuiltBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// builtBinary compiles nydus-image once per test run.
func builtBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nydus-image-bin-")
		if err != nil {
			binErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "nydus-image")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("build nydus-image: %v: %s", binErr, binPath)
	}
	return binPath
}

// packFromTar runs create exactly as nydus-snapshotter's converter does:
// FIFO in, FIFO out, prefetch patterns on stdin. It returns the blob.
func packFromTar(t *testing.T, bin, wd string, layer []byte) []byte {
	t.Helper()
	in := filepath.Join(wd, "blob.targz")
	out := filepath.Join(wd, "blob.rafs")
	for _, p := range []string{in, out} {
		os.Remove(p)
		testutil.Must(t, unix.Mkfifo(p, 0o644))
	}
	cmd := exec.Command(bin, "create", "--log-level", "warn", "--prefetch-policy", "fs", "--blob", out,
		"--whiteout-spec", "none", "--fs-version", "6", "--type", "tar-rafs", "--blob-inline-meta",
		"--features", "blob-toc", in)
	cmd.Stdin = strings.NewReader("/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	testutil.Must(t, cmd.Start())
	var wg sync.WaitGroup
	var blobData []byte
	var readErr, writeErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(in, os.O_WRONLY, 0)
		if err != nil {
			writeErr = err
			return
		}
		_, writeErr = f.Write(layer)
		f.Close()
	}()
	go func() {
		defer wg.Done()
		f, err := os.Open(out)
		if err != nil {
			readErr = err
			return
		}
		blobData, readErr = io.ReadAll(f)
		f.Close()
	}()
	err := cmd.Wait()
	wg.Wait()
	if err != nil || readErr != nil || writeErr != nil {
		t.Fatalf("create: %v (read %v, write %v): %s", err, readErr, writeErr, stderr.String())
	}
	return blobData
}

// TestSnapshotterConverterArgv drives the binary with the argv that
// nydus-snapshotter's converter (and so BuildKit) uses: feature detection,
// tar2rafs pack through FIFOs, merge with --output-json, unpack.
func TestSnapshotterConverterArgv(t *testing.T) {
	bin := builtBinary(t)
	help, err := exec.Command(bin, "create", "-h").Output()
	if err != nil {
		t.Fatalf("create -h: %v", err)
	}
	if !bytes.Contains(help, []byte("--type")) || !bytes.Contains(help, []byte("tar-rafs")) {
		t.Fatalf("create -h lacks --type/tar-rafs: %s", help)
	}
	wd := t.TempDir()
	layers := [][]byte{
		tartest.Tar(t, tartest.Dir("etc/"), tartest.File("etc/os-release", "ID=demo\n"),
			tartest.File("etc/remove-me", "gone\n"), tartest.Dir("bin/"), tartest.File("bin/app", "v1")),
		tartest.Tar(t, tartest.Dir("etc/"), tartest.File("etc/.wh.remove-me", ""),
			tartest.Dir("bin/"), tartest.File("bin/app", "v2")),
	}
	var hexes []string
	for i, layer := range layers {
		data := packFromTar(t, bin, wd, layer)
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		hexes = append(hexes, h)
		testutil.Must(t, os.WriteFile(filepath.Join(wd, h+".blob"), data, 0o644))
		// The snapshotter extracts image.boot by ToC into <wd>/<layer digest hex>.
		boot, err := blob.InlineBootstrap(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		testutil.Must(t, os.WriteFile(filepath.Join(wd, h), boot, 0o644))
	}
	mergeCmd := exec.Command(bin, "merge", "--log-level", "warn", "--prefetch-policy", "fs",
		"--output-json", filepath.Join(wd, "merge-output.json"), "--bootstrap", filepath.Join(wd, "bootstrap"),
		filepath.Join(wd, hexes[0]), filepath.Join(wd, hexes[1]))
	mergeCmd.Stdin = strings.NewReader("/")
	if out, err := mergeCmd.CombinedOutput(); err != nil {
		t.Fatalf("merge: %v: %s", err, out)
	}
	var mo struct {
		Blobs []string `json:"blobs"`
	}
	b, err := os.ReadFile(filepath.Join(wd, "merge-output.json"))
	testutil.Must(t, err)
	testutil.Must(t, json.Unmarshal(b, &mo))
	// Blob table order is first reference in a breadth-first walk, as upstream.
	if len(mo.Blobs) != 2 || !slices.Contains(mo.Blobs, hexes[0]) || !slices.Contains(mo.Blobs, hexes[1]) {
		t.Fatalf("merge output blobs %v, want %v", mo.Blobs, hexes)
	}
	// The merged image reads both layers, with the whiteout applied.
	boot, err := os.ReadFile(filepath.Join(wd, "bootstrap"))
	testutil.Must(t, err)
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	testutil.Must(t, err)
	files := map[string]io.ReaderAt{}
	for _, h := range hexes {
		f, err := os.Open(filepath.Join(wd, h+".blob"))
		testutil.Must(t, err)
		defer f.Close() //nolint:revive // the files serve the image until the test returns
		files[h] = f
	}
	fsys := img.FS(t.Context(), rafs.NewLocalBlobs("", files))
	for name, want := range map[string]string{"bin/app": "v2", "etc/os-release": "ID=demo\n"} {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || string(got) != want {
			t.Fatalf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := img.LookupPath("etc/remove-me"); err == nil {
		t.Fatal("whiteout did not remove etc/remove-me")
	}
	if _, err := img.LookupPath("etc/.wh.remove-me"); err == nil {
		t.Fatal("whiteout marker leaked into the merged image")
	}
	// Unpack exactly as the converter does: FIFO output, --blob.
	fifo := filepath.Join(wd, "oci.tar")
	testutil.Must(t, unix.Mkfifo(fifo, 0o644))
	ub := filepath.Join(wd, "image.boot")
	testutil.Must(t, os.WriteFile(ub, mustRead(t, filepath.Join(wd, hexes[1])), 0o644))
	done := snapshotFIFO(t, fifo)
	unpackCmd := exec.Command(bin, "unpack", "--log-level", "warn", "--bootstrap", ub, "--output", fifo,
		"--blob", filepath.Join(wd, hexes[1]+".blob"))
	if out, err := unpackCmd.CombinedOutput(); err != nil {
		t.Fatalf("unpack: %v: %s", err, out)
	}
	got := <-done
	if e, ok := got["bin/app"]; !ok || e.Size != 2 {
		t.Fatalf("unpacked layer: %v", got)
	}
	if _, ok := got["etc/.wh.remove-me"]; !ok {
		t.Fatal("layer unpack lost the whiteout entry (layer bootstraps keep them)")
	}
}
