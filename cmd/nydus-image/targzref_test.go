package main

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestTargzRef builds targz-ref images of the upstream gzip vectors, checks
// them against the gzip layer, unpacks them through the zran path and
// compares with the layer's tar; a layer that does not match is refused.
func TestTargzRef(t *testing.T) {
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-single-stream.tar.gz", "zran-zero-file.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(testutil.TestdataPath("upstream-nydus", "zran"), name)
			gz, err := os.ReadFile(src)
			if err != nil {
				testutil.Missing(t, "upstream test vector (%v): put the shared testdata at ../shared/testdata beside the repository or set GONYDUS_TESTDATA", err)
			}
			f, err := os.Open(src)
			testutil.Must(t, err)
			zr, err := gzip.NewReader(f)
			testutil.Must(t, err)
			want := snapshotTar(t, zr)
			f.Close()
			for p, e := range want {
				e.Xattrs = ""
				want[p] = e
			}
			for _, extra := range [][]string{nil, {"--features", "blob-toc", "--chunk-size", "0x10000"}} {
				out := t.TempDir()
				boot := filepath.Join(out, "boot")
				nydusImage(t, append([]string{"create", "--log-level", "warn", "--type", "targz-ref", "--bootstrap", boot, "--blob-dir", out}, append(extra, src)...)...)
				// The layer, as nydusd finds it, is named by its sha256.
				sum := sha256.Sum256(gz)
				layer := filepath.Join(out, hex.EncodeToString(sum[:]))
				testutil.Must(t, os.WriteFile(layer, gz, 0o644))
				nydusImage(t, "check", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", out)
				nydusImage(t, "check", "--log-level", "warn", "--bootstrap", boot, "--blob", src, "--blob-dir", out)
				got := unpackSnapshot(t, boot, out)
				if _, ok := want["."]; !ok {
					delete(got, ".")
				}
				compareSnapshots(t, want, got)
				// A corrupted layer fails check.
				bad := append([]byte(nil), gz...)
				for i := len(bad) / 3; i < len(bad)-8; i += 97 {
					bad[i] ^= 0x42
				}
				badPath := filepath.Join(t.TempDir(), "bad.tar.gz")
				testutil.Must(t, os.WriteFile(badPath, bad, 0o644))
				if code := run([]string{"check", "--log-level", "error", "--bootstrap", boot, "--blob", badPath, "--blob-dir", out}); code == 0 {
					t.Fatal("check accepted a corrupted layer")
				}
			}
		})
	}
}

// An inline-bootstrap RAFS blob checks against its layer on its own.
func TestTargzRefInline(t *testing.T) {
	src := testutil.TestdataPath("upstream-nydus", "zran", "zran-two-streams.tar.gz")
	if _, err := os.Stat(src); err != nil {
		testutil.Missing(t, "upstream test vector (%v): put the shared testdata at ../shared/testdata beside the repository or set GONYDUS_TESTDATA", err)
	}
	out := t.TempDir()
	blob := filepath.Join(out, "rafs.blob")
	nydusImage(t, "create", "--log-level", "warn", "--type", "targz-ref", "--features", "blob-toc", "--blob-inline-meta", "--blob", blob, src)
	nydusImage(t, "check", "--log-level", "warn", "--blob", src, blob)
	if code := run([]string{"create", "--log-level", "error", "--type", "targz-ref", "--blob-id", "x", "--blob", blob, "--bootstrap", blob + ".boot", src}); code == 0 {
		t.Fatal("--blob-id accepted with targz-ref")
	}
	if code := run([]string{"create", "--log-level", "error", "--type", "targz-ref", "--blob", blob, "--bootstrap", blob + ".boot", "targzref_test.go"}); code == 0 {
		t.Fatal("a file that is not gzip built as targz-ref")
	}
}
