package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"

	"golang.org/x/sys/unix"
)

// runStderr runs nydus-image in-process and returns its exit code and
// what it wrote to stderr.
func runStderr(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return testutil.CaptureStderr(t, func() int { return run(args) })
}

// runStdout runs nydus-image in-process and returns its exit code and
// what it wrote to stdout.
func runStdout(t *testing.T, args ...string) (int, []byte) {
	t.Helper()
	return testutil.CaptureStdout(t, func() int { return run(args) })
}

type outputDoc struct {
	Bootstrap string   `json:"bootstrap"`
	Blobs     []string `json:"blobs"`
}

func readOutput(t *testing.T, path string) outputDoc {
	t.Helper()
	var o outputDoc
	testutil.Must(t, json.Unmarshal(mustRead(t, path), &o))
	return o
}

// TestUpstreamSpellings runs every subcommand with upstream's spellings of
// its options (long names, short names, aliases, global options before
// the subcommand) and checks each does its job: the images built unpack
// to the source tree, check and inspect report the image's blobs, export
// writes the same block image whichever spelling names the blob directory
// (and the kernel mounts it as the source tree, as root), merge writes its
// output, and refused commands and options fail naming why.
func TestUpstreamSpellings(t *testing.T) {
	src := t.TempDir()
	plainTree(t, src)
	srcTree := snapshotDir(t, src, nil)
	delete(srcTree, ".")
	work := t.TempDir()
	p := func(name string) string { return filepath.Join(work, name) }
	testutil.Must(t, os.Mkdir(p("blobs"), 0o755))
	testutil.Must(t, os.WriteFile(p("layer.tar"), tartest.FromDir(t, src), 0o644))
	cfg := p("localfs.json")
	testutil.Must(t, os.WriteFile(cfg, []byte(`{"version":2,"backend":{"type":"localfs","localfs":{"dir":"`+p("blobs")+`"}}}`), 0o644))

	ok := func(args ...string) {
		t.Helper()
		if code, msg := runStderr(t, args...); code != 0 {
			t.Fatalf("nydus-image %q: exit %d: %s", args, code, msg)
		}
	}
	unpacksToSource := func(args ...string) {
		t.Helper()
		got := snapshotTar(t, bytes.NewReader(unpackTar(t, args...)))
		delete(got, ".")
		compareSnapshots(t, srcTree, got)
	}

	// create: long names, short names and aliases.
	ok("--log-level", "warn", "create", "--type", "dir-rafs", "--bootstrap", p("a.boot"), "--blob-dir", p("blobs"),
		"--chunk-size", "0x10000", "--compressor", "zstd", "--digester", "sha256", "--fs-version", "6", "--features", "blob-toc",
		"--whiteout-spec", "oci", "--prefetch-policy", "none", "--output-json", p("a.json"), "--aligned-chunk",
		"--disable-check", "--config", cfg, "--batch-size", "0", "--blob-offset", "0", src)
	a := readOutput(t, p("a.json"))
	if a.Bootstrap != p("a.boot") || len(a.Blobs) != 1 {
		t.Fatalf("create --output-json: %+v", a)
	}
	ok("-l", "warn", "create", "-t", "directory", "-B", p("b.boot"), "-D", p("blobs"), "-v", "6", "-J", p("b.json"), "--repeatable", src)
	ok("create", "-l", "warn", "--source-type", "tar-rafs", "-b", p("c.blob"), "--inline-bootstrap", p("layer.tar"))
	ok("create", "-L", p("create-log"), "--type", "tar-rafs", "--blob-inline-meta", "--blob", p("d.blob"), "--compressor", "lz4_block", p("layer.tar"))
	if st, err := os.Stat(p("create-log.log")); err != nil || st.Size() == 0 {
		t.Fatalf("-L: the log file (\".log\" appended) is missing or empty: %v", err)
	}
	unpacksToSource("--bootstrap", p("a.boot"), "--blob-dir", p("blobs"))
	unpacksToSource(p("b.boot"), "-D", p("blobs"))
	unpacksToSource(p("c.blob"))
	unpacksToSource("-B", p("d.blob"), "--blob", p("d.blob"))
	unpacksToSource(p("a.boot"), "--backend-type", "localfs", "--backend-config", `{"dir":"`+p("blobs")+`"}`)

	// check and inspect report the blob.
	ok("check", "-l", "warn", p("a.boot"), "-D", p("blobs"), "-v", "-J", p("check.json"))
	ok("check", "-l", "warn", "-B", p("a.boot"), "-C", cfg, "--output-json", p("check2.json"))
	for _, j := range []string{"check.json", "check2.json"} {
		if o := readOutput(t, p(j)); len(o.Blobs) != 1 || o.Blobs[0] != a.Blobs[0] {
			t.Fatalf("check %s: %+v, want blob %s", j, o, a.Blobs[0])
		}
	}
	for _, args := range [][]string{{p("a.boot"), "-R", "blobs"}, {"-B", p("a.boot"), "--request", "blobs", "-D", p("blobs")}} {
		code, out := runStdout(t, append([]string{"inspect"}, args...)...)
		var blobs []blobJSON
		if code != 0 || json.Unmarshal(out, &blobs) != nil || len(blobs) != 1 || blobs[0].BlobID != a.Blobs[0] {
			t.Fatalf("inspect %q: exit %d: %s", args, code, out)
		}
	}
	// nydus-snapshotter reads `create -h` for "--type tar-rafs" (to stream
	// tars) and for "--batch-size" and "--encrypt" (passed only when
	// listed): refused options stay out of the help.
	if code, help := runStdout(t, "create", "-h"); code != 0 || !bytes.Contains(help, []byte("--type")) ||
		!bytes.Contains(help, []byte("tar-rafs")) || bytes.Contains(help, []byte("--batch-size")) || bytes.Contains(help, []byte("--encrypt")) {
		t.Fatalf("create -h: exit %d:\n%s", code, help)
	}

	// merge with upstream's names.
	ok("merge", "-l", "warn", "-B", p("merged.boot"), "-J", p("merged.json"), "--prefetch-policy", "none", "-D", p("blobs"), "-C", cfg, p("a.boot"))
	if o := readOutput(t, p("merged.json")); o.Bootstrap != p("merged.boot") || len(o.Blobs) != 1 {
		t.Fatalf("merge --output-json: %+v", o)
	}
	unpacksToSource(p("merged.boot"), "--blob-dir", p("blobs"))

	// export: every spelling of the blob directory gives the same image;
	// without -O it lands in the localfs directory, as upstream writes it.
	ok("create", "-l", "warn", "--compressor", "none", "-B", p("e.boot"), "-D", p("blobs"), src)
	ok("export", "--block", "-B", p("e.boot"), "--localfs-dir", p("blobs"), "-O", p("e1.img"))
	ok("export", "--block", "--bootstrap", p("e.boot"), "-D", p("blobs"), "--output", p("e2.img"), "--threads", "2")
	ok("export", "--block", p("e.boot"), "--blob-dir", p("blobs"), "-O", p("e3.img"))
	ok("export", "--block", "-B", p("e.boot"), "-C", cfg, "-O", p("e4.img"))
	ok("-l", "warn", "export", "--block", "-B", p("e.boot"), "--localfs-dir", p("blobs"))
	e1 := mustRead(t, p("e1.img"))
	for _, other := range []string{p("e2.img"), p("e3.img"), p("e4.img"), filepath.Join(p("blobs"), "e.boot.disk")} {
		if !bytes.Equal(e1, mustRead(t, other)) {
			t.Fatalf("%s differs from the --localfs-dir export", other)
		}
	}
	if os.Geteuid() == 0 {
		fss, _ := os.ReadFile("/proc/filesystems")
		if !strings.Contains(string(fss), "erofs") {
			_ = exec.Command("modprobe", "erofs").Run()
			fss, _ = os.ReadFile("/proc/filesystems")
		}
		if strings.Contains(string(fss), "erofs") {
			mnt := t.TempDir()
			if b, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", p("e1.img"), mnt).CombinedOutput(); err != nil {
				t.Fatalf("mount -t erofs: %v: %s", err, b)
			}
			got := snapshotDir(t, mnt, nil)
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Errorf("umount: %v", err)
			}
			delete(got, ".")
			compareSnapshots(t, srcTree, got)
		} else {
			t.Log("kernel has no EROFS: export compared by bytes only")
		}
	}

	// Refused commands and options say why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stat", "-B", p("a.boot"), "-T", p("b.boot"), "--digester", "sha256", "-J", p("s.json")}, "statistics"},
		{[]string{"compact", "-B", p("a.boot"), "-D", p("blobs"), "--min-used-ratio", "5", "--backend-type", "oss", "-O", p("x")}, "unused chunks"},
		{[]string{"optimize", "-B", p("a.boot"), "-p", p("list"), "--output-blob-dir", p("o")}, "prefetch"},
		{[]string{"chunkdict", "generate", "--database", "sqlite:///x.db", "-B", p("x"), p("a.boot")}, "chunk database"},
		{[]string{"create", "--batch-size", "0x1000", "-B", p("x"), "-D", p("blobs"), src}, "batch"},
		{[]string{"create", "-E", "-B", p("x"), "-D", p("blobs"), src}, "encrypted"},
		{[]string{"create", "--blob-cache-dir", p("c"), "-B", p("x"), src}, "blob cache"},
		{[]string{"create", "--attributes", p(".nydusattributes"), "-B", p("x"), "-D", p("blobs"), src}, "external"},
		{[]string{"create", "-t", "estargz-rafs", "-B", p("x"), "-D", p("blobs"), p("layer.tar")}, "eStargz"},
		{[]string{"create", "-t", "tar-tarfs", "-B", p("x"), "-D", p("blobs"), p("layer.tar")}, "tarfs"},
		{[]string{"create", "-v", "5", "-B", p("x"), "-D", p("blobs"), src}, "v5"},
		{[]string{"export", "--block", "--verity", "-B", p("e.boot"), "-D", p("blobs")}, "dm-verity"},
		{[]string{"export", "--block", "-B", p("e.boot"), "-D", p("blobs"), "--threads", "0"}, "threads"},
		{[]string{"export", "--block", "-B", p("e.boot"), "-D", p("blobs"), "-C", cfg}, "conflicts"},
	} {
		code, msg := runStderr(t, tc.args...)
		if code == 0 || !strings.Contains(msg, tc.want) {
			t.Errorf("nydus-image %q: exit %d, %q; want a failure naming %q", tc.args, code, msg, tc.want)
		}
	}
}
