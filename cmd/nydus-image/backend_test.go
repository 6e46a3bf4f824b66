package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gonydus/nydus/rafs/blob"
)

// plainTree writes a tree a non-root user can make: nested directories,
// an empty file, text, multi-chunk random data, a duplicate, symlinks and
// a hard link.
func plainTree(t testing.TB, root string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 13))
	random := make([]byte, 700_000)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	files := map[string][]byte{
		"empty":              nil,
		"etc/hostname":       []byte("nydus\n"),
		"usr/lib/random.bin": random,
		"usr/share/copy.bin": random,
		"a/b/c/d/deep.txt":   bytes.Repeat([]byte("deep "), 50_000),
	}
	for p, data := range files {
		must(t, os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), data, 0o644))
	}
	must(t, os.MkdirAll(filepath.Join(root, "var/empty"), 0o700))
	must(t, os.Symlink("../etc/hostname", filepath.Join(root, "usr/hostname")))
	must(t, os.Symlink("missing", filepath.Join(root, "dangling")))
	must(t, os.Link(filepath.Join(root, "etc/hostname"), filepath.Join(root, "etc/hostname.hard")))
}

// buildImage builds src into a bootstrap and a blob directory with small
// chunks (many range reads), returning the bootstrap path.
func buildImage(t testing.TB, src, blobs string, extra ...string) string {
	t.Helper()
	boot := filepath.Join(t.TempDir(), "image.boot")
	nydusImage(t, append([]string{"create", "--log-level", "warn", "--type", "dir-rafs", "--chunk-size", "0x10000",
		"--bootstrap", boot, "--blob-dir", blobs}, append(extra, src)...)...)
	return boot
}

// unpackTar runs unpack with args and returns the tar it wrote.
func unpackTar(t testing.TB, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.tar")
	nydusImage(t, append([]string{"unpack", "--log-level", "warn", "--output", out}, args...)...)
	return mustRead(t, out)
}

// serveUnix serves h on a fresh unix socket until the test ends.
func serveUnix(t testing.TB, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "blobs.sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// dirBlobServer serves GET and HEAD /<blob id> from dir with Range support,
// counting range GETs; corrupt flips a byte in every response body.
func dirBlobServer(dir string, reads *atomic.Int64, corrupt bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/")
		if !isHexID(id) {
			http.NotFound(w, r)
			return
		}
		data, err := os.ReadFile(filepath.Join(dir, id))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			reads.Add(1)
		}
		if corrupt {
			for i := 0; i < len(data); i += 4096 {
				data[i] ^= 0x5a
			}
		}
		http.ServeContent(w, r, id, time.Time{}, bytes.NewReader(data))
	})
}

// snapshotterBlobServer answers like nydus-snapshotter's content-store
// proxy (pkg/converter/cs_proxy_unix.go): one blob whatever the path, HEAD
// gives its length, a range GET gets status 200 and the range's bytes.
func snapshotterBlobServer(data []byte, reads *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			return
		}
		var first, last int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || last >= len(data) || first > last {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		reads.Add(1)
		w.Write(data[first : last+1])
	})
}

// startRegistry runs go-containerregistry's registry in-process and pushes
// every blob of dir (files named by a sha256) to repo.
func startRegistry(t testing.TB, repo string, dirs ...string) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	must(t, err)
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		must(t, err)
		for _, e := range ents {
			if !isHexID(e.Name()) {
				continue
			}
			data := mustRead(t, filepath.Join(dir, e.Name()))
			must(t, remote.WriteLayer(r, static.NewLayer(data, types.OCILayer)))
		}
	}
	return host
}

func writeJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	p := filepath.Join(t.TempDir(), "config.json")
	must(t, os.WriteFile(p, b, 0o644))
	return p
}

// TestUnpackThroughBackends unpacks one image from a local blob directory,
// through an http-proxy on a unix socket (the call nydus-snapshotter's
// converter makes), through nydus-snapshotter's own proxy behaviour, and
// from an in-process registry (--backend-type, --backend-config-file, and
// -C with v2 and v1 nydusd configurations): every tar must be the same.
func TestUnpackThroughBackends(t *testing.T) {
	src, blobs := t.TempDir(), t.TempDir()
	plainTree(t, src)
	boot := buildImage(t, src, blobs)
	want := unpackTar(t, "--bootstrap", boot, "--blob-dir", blobs)
	wantTree := snapshotDir(t, src, nil)
	gotTree := snapshotTar(t, bytes.NewReader(want))
	delete(wantTree, ".")
	delete(gotTree, ".")
	compareSnapshots(t, wantTree, gotTree)

	var reads atomic.Int64
	sock := serveUnix(t, dirBlobServer(blobs, &reads, false))
	proxyCfg := fmt.Sprintf(`{"addr":%q}`, sock)
	host := startRegistry(t, "library/app", blobs)
	regCfg := map[string]any{"host": host, "repo": "library/app", "scheme": "http", "timeout": 5, "connect_timeout": 5}
	regJSON, _ := json.Marshal(regCfg)
	cases := map[string][]string{
		"http-proxy":              {"--bootstrap", boot, "--backend-type", "http-proxy", "--backend-config", proxyCfg},
		"http-proxy-config-file":  {boot, "--backend-type", "http-proxy", "--backend-config-file", writeJSON(t, json.RawMessage(proxyCfg))},
		"registry":                {"-B", boot, "--backend-type", "registry", "--backend-config", string(regJSON)},
		"config-v2-registry":      {boot, "-C", writeJSON(t, map[string]any{"version": 2, "backend": map[string]any{"type": "registry", "registry": regCfg}})},
		"config-v1-registry":      {boot, "--config", writeJSON(t, map[string]any{"device": map[string]any{"backend": map[string]any{"type": "registry", "config": regCfg}}})},
		"config-v2-http-proxy-fc": {boot, "-C", writeJSON(t, map[string]any{"version": 2, "backend": map[string]any{"type": "http-proxy", "http-proxy": json.RawMessage(proxyCfg)}, "cache": map[string]any{"type": "filecache", "filecache": map[string]any{"work_dir": t.TempDir()}}})},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			before := reads.Load()
			got := unpackTar(t, args...)
			if !bytes.Equal(got, want) {
				t.Fatalf("the tar differs from the one unpacked from the blob directory (%d vs %d bytes)", len(got), len(want))
			}
			if strings.Contains(name, "http-proxy") && reads.Load() == before {
				t.Fatal("no range read reached the http-proxy server")
			}
		})
	}

	// nydus-snapshotter's proxy serves the image's only blob at any path
	// and answers ranges with status 200.
	ents, err := os.ReadDir(blobs)
	must(t, err)
	if len(ents) != 1 {
		t.Fatalf("blob dir holds %d files, want the one data blob", len(ents))
	}
	var quirkReads atomic.Int64
	qsock := serveUnix(t, snapshotterBlobServer(mustRead(t, filepath.Join(blobs, ents[0].Name())), &quirkReads))
	got := unpackTar(t, "--bootstrap", boot, "--backend-type", "http-proxy", "--backend-config", fmt.Sprintf(`{"addr":%q}`, qsock))
	if !bytes.Equal(got, want) || quirkReads.Load() == 0 {
		t.Fatalf("through the snapshotter-style proxy: equal %v, %d reads", bytes.Equal(got, want), quirkReads.Load())
	}

	// What nydus-snapshotter's converter unpacks: a blob with an inline
	// bootstrap (built as its Pack builds it), the bootstrap extracted
	// with its placeholder blob id, the blob served by its proxy.
	tarPath := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(tarPath)
	must(t, err)
	tw := tar.NewWriter(f)
	must(t, tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)}))
	body := bytes.Repeat([]byte("packed by the snapshotter\n"), 20_000)
	must(t, tw.WriteHeader(&tar.Header{Name: "etc/packed", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)}))
	_, err = tw.Write(body)
	must(t, err)
	must(t, tw.Close())
	must(t, f.Close())
	packed := filepath.Join(t.TempDir(), "blob.rafs")
	nydusImage(t, "create", "--log-level", "warn", "--blob", packed, "--whiteout-spec", "none",
		"--fs-version", "6", "--type", "tar-rafs", "--blob-inline-meta", "--features", "blob-toc", "--chunk-size", "0x10000", tarPath)
	pb := mustRead(t, packed)
	inline, err := blob.InlineBootstrap(bytes.NewReader(pb), int64(len(pb)))
	must(t, err)
	packedBoot := filepath.Join(t.TempDir(), "image.boot")
	must(t, os.WriteFile(packedBoot, inline, 0o644))
	var packedReads atomic.Int64
	psock := serveUnix(t, snapshotterBlobServer(pb, &packedReads))
	got = unpackTar(t, "--bootstrap", packedBoot, "--backend-type", "http-proxy", "--backend-config", fmt.Sprintf(`{"addr":%q}`, psock))
	fromBlob := unpackTar(t, "--bootstrap", packedBoot, "--blob", packed)
	if !bytes.Equal(got, fromBlob) || packedReads.Load() == 0 {
		t.Fatalf("packed layer through the snapshotter-style proxy: equal %v, %d reads", bytes.Equal(got, fromBlob), packedReads.Load())
	}
	if e := snapshotTar(t, bytes.NewReader(got))["etc/packed"]; e.Size != int64(len(body)) {
		t.Fatalf("etc/packed unpacked as %v", e)
	}

	// Bad command lines are refused before any work.
	for _, args := range [][]string{
		{boot, "--backend-type", "http-proxy"},
		{boot, "--backend-config", proxyCfg},
		{boot, "--backend-type", "http-proxy", "--backend-config", proxyCfg, "--backend-config-file", "x"},
		{boot, "--backend-type", "http-proxy", "--backend-config", proxyCfg, "--blob-dir", blobs},
		{boot, "-C", "x.json", "--blob-dir", blobs},
		{boot, "--backend-type", "oss", "--backend-config", "{}"},
	} {
		if code := run(append([]string{"unpack", "--log-level", "error", "--output", filepath.Join(t.TempDir(), "x.tar")}, args...)); code == 0 {
			t.Errorf("unpack %q: exit 0", args)
		}
	}
}

// TestCheckAndExportThroughBackends: check reads and verifies every chunk
// through a backend (corrupt data fails it), and export --block through a
// registry (a blob cache entry naming the bootstrap, as upstream's export
// -C takes it) writes the same disk image as from --localfs-dir.
func TestCheckAndExportThroughBackends(t *testing.T) {
	src, blobs := t.TempDir(), t.TempDir()
	plainTree(t, src)
	boot := buildImage(t, src, blobs, "--compressor", "none")
	var reads, badReads atomic.Int64
	good := serveUnix(t, dirBlobServer(blobs, &reads, false))
	bad := serveUnix(t, dirBlobServer(blobs, &badReads, true))
	nydusImage(t, "check", "--log-level", "warn", boot, "--backend-type", "http-proxy", "--backend-config", fmt.Sprintf(`{"addr":%q}`, good))
	if reads.Load() == 0 {
		t.Fatal("check read nothing through the backend")
	}
	if code := run([]string{"check", "--log-level", "error", boot, "--backend-type", "http-proxy", "--backend-config", fmt.Sprintf(`{"addr":%q}`, bad)}); code == 0 {
		t.Fatal("check passed with corrupt blob data")
	}
	if badReads.Load() == 0 {
		t.Fatal("check read nothing through the corrupting backend")
	}
	host := startRegistry(t, "app", blobs)
	regCfg := map[string]any{"host": host, "repo": "app", "scheme": "http"}
	nydusImage(t, "check", "--log-level", "warn", "-B", boot, "-C",
		writeJSON(t, map[string]any{"version": 2, "backend": map[string]any{"type": "registry", "registry": regCfg}}))

	out := t.TempDir()
	local := filepath.Join(out, "local.img")
	nydusImage(t, "export", "--log-level", "warn", "--block", "-B", boot, "--localfs-dir", blobs, "-O", local)
	remoteImg := filepath.Join(out, "registry.img")
	entry := writeJSON(t, map[string]any{"type": "bootstrap", "id": "app", "domain_id": "block",
		"config_v2": map[string]any{"version": 2, "id": "app", "backend": map[string]any{"type": "registry", "registry": regCfg},
			"cache": map[string]any{"type": "dummycache"}, "metadata_path": boot}})
	nydusImage(t, "export", "--log-level", "warn", "--block", "-C", entry, "--output", remoteImg)
	if !bytes.Equal(mustRead(t, local), mustRead(t, remoteImg)) {
		t.Fatal("export through the registry differs from export from --localfs-dir")
	}
}

// TestUnpackZranThroughRegistry: a targz-ref image whose gzip layer and
// RAFS blob are in a registry unpacks (through blob.meta read from the
// registry) to the same tar as from a local directory.
func TestUnpackZranThroughRegistry(t *testing.T) {
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	tw := tar.NewWriter(zw)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 40 {
		data := make([]byte, rng.IntN(200_000))
		for j := range data {
			data[j] = byte('a' + rng.IntN(3)) // compressible, spans contexts
		}
		must(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("dir%d/file%d", i%5, i), Mode: 0o644, Size: int64(len(data)),
			Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}))
		_, err := tw.Write(data)
		must(t, err)
	}
	must(t, tw.Close())
	must(t, zw.Close())
	blobs := t.TempDir()
	gz := filepath.Join(t.TempDir(), "layer.tar.gz")
	must(t, os.WriteFile(gz, layer.Bytes(), 0o644))
	boot := filepath.Join(t.TempDir(), "layer.boot")
	nydusImage(t, "create", "--log-level", "warn", "--type", "targz-ref", "--features", "blob-toc", "--chunk-size", "0x10000",
		"--bootstrap", boot, "--blob-dir", blobs, gz)
	sum := sha256.Sum256(layer.Bytes())
	must(t, os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), layer.Bytes(), 0o644))
	want := unpackTar(t, "--bootstrap", boot, "--blob-dir", blobs)
	host := startRegistry(t, "zran", blobs)
	got := unpackTar(t, "--bootstrap", boot, "--backend-type", "registry",
		"--backend-config", fmt.Sprintf(`{"host":%q,"repo":"zran","scheme":"http"}`, host))
	if !bytes.Equal(got, want) {
		t.Fatalf("zran unpack through the registry differs (%d vs %d bytes)", len(got), len(want))
	}
	if n := len(snapshotTar(t, bytes.NewReader(got))); n < 45 {
		t.Fatalf("unpacked tar has %d entries", n)
	}
}
