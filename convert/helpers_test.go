package convert

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// testRegistry is go-containerregistry's in-process registry; handler
// wrappers inject faults.
type testRegistry struct {
	srv  *httptest.Server
	host string
	wrap func(http.Handler) http.Handler // set before requests
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	r := &testRegistry{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := http.Handler(inner)
		if r.wrap != nil {
			h = r.wrap(inner)
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) ref(repo string) string { return r.host + "/" + repo }

// tarEntry is one entry of a generated layer.
type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	data       []byte
	xattrs     map[string]string
	major      int64
	minor      int64
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: mtime, Size: int64(len(e.data)), Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t *testing.T, b []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testLayers returns a three-layer image: files, hardlinks, symlinks,
// xattrs, devices; then whiteouts, an opaque directory, a deleted file and
// replaced content; then a metadata-only layer.
func testLayers(t *testing.T) [][]tarEntry {
	big := randBytes(1, 3<<20+123)
	text := bytes.Repeat([]byte("hello nydus\n"), 4000)
	l1 := []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/tool", mode: 0o755, data: big},
		{name: "bin/tool-hard", typ: tar.TypeLink, link: "bin/tool"},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0::/root:/bin/sh\n")},
		{name: "etc/suid", mode: 0o4755, uid: 1000, gid: 1001, data: text},
		{name: "etc/empty", mode: 0o600},
		{name: "etc/attr", mode: 0o644, data: []byte("x"), xattrs: map[string]string{"user.comment": "nydus", "security.capability": "\x01\x00\x00\x02"}},
		{name: "link", typ: tar.TypeSymlink, link: "etc/passwd"},
		{name: "data/", typ: tar.TypeDir, mode: 0o750, uid: 5, gid: 6},
		{name: "data/gone", mode: 0o644, data: randBytes(2, 200000)},
		{name: "data/kept", mode: 0o644, data: text[:10000]},
		{name: "dir/sub/a", mode: 0o644, data: []byte("lower a")}, // parents implicit
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o644},
	}
	l2 := []tarEntry{
		{name: "data/.wh.gone", mode: 0o644},
		{name: "dir/", typ: tar.TypeDir, mode: 0o711},
		{name: "dir/.wh..wh..opq", mode: 0o644},
		{name: "dir/new", mode: 0o644, data: []byte("upper new")},
		{name: "etc/passwd", mode: 0o600, data: []byte("root:x:0:0::/root:/bin/bash\n")},
		{name: "x/h1", mode: 0o640, uid: 7, gid: 8, data: randBytes(3, 70000)},
		{name: "x/h2", typ: tar.TypeLink, link: "x/h1"},
		{name: "x/dangling", typ: tar.TypeSymlink, link: "/nowhere/at/all"},
	}
	l3 := []tarEntry{
		{name: ".wh.link", mode: 0o644},
		{name: "bin/", typ: tar.TypeDir, mode: 0o700},
	}
	return [][]tarEntry{l1, l2, l3}
}

// pushSource pushes the test image to ref with OCI or Docker media types
// (layers gzip, plain tar and zstd) and returns its manifest digest.
func pushSource(t *testing.T, reg *testRegistry, repo string, oci bool) string {
	t.Helper()
	ctx := context.Background()
	ep, err := Remote{}.resolve(ctx, reg.ref(repo), "source")
	if err != nil {
		t.Fatal(err)
	}
	mt := dockerTypes
	layerTypes := []string{MediaTypeDockerLayerGzip, "application/vnd.docker.image.rootfs.diff.tar", MediaTypeDockerLayerGzip}
	if oci {
		mt = ociTypes
		layerTypes = []string{MediaTypeOCILayerGzip, "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+zstd"}
	}
	var descs []ocispec.Descriptor
	var diffIDs []string
	for i, entries := range testLayers(t) {
		raw := makeTar(t, entries)
		var data []byte
		switch {
		case i == 0, i == 2 && !oci:
			data = gzipBytes(t, raw)
		case i == 1:
			data = raw
		default:
			data = zstdBytes(t, raw)
		}
		b := bytesBlob(data, layerTypes[i])
		if err := ep.pushBlob(b); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, ocispec.Descriptor{MediaType: layerTypes[i], Digest: b.digest, Size: b.size})
		diffIDs = append(diffIDs, digest.FromBytes(raw).String())
	}
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/tool"}, "WorkingDir": "/data"},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": []map[string]any{{"created_by": "layer 1"}, {"created_by": "ENV x", "empty_layer": true},
			{"created_by": "layer 2"}, {"created_by": "layer 3"}},
	}
	cb, _ := json.Marshal(cfg)
	cblob := bytesBlob(cb, mt.config)
	if err := ep.pushBlob(cblob); err != nil {
		t.Fatal(err)
	}
	man, err := buildManifest(mt, &ocispec.Manifest{}, ocispec.Descriptor{MediaType: mt.config, Digest: cblob.digest, Size: cblob.size}, descs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.putManifest("", rawManifest{data: man, mediaType: mt.manifest}); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(man).String()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// denyWrites answers every upload and manifest PUT with 403 DENIED.
func denyWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// corruptBlob flips one byte of every GET response body for blob d, as a
// registry serving damaged storage would.
func corruptBlob(d digest.Digest) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if len(body) > 0 {
				body[len(body)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

// logBlobGets records the blob GETs that reach the registry.
func logBlobGets(into *[]string) func(http.Handler) http.Handler {
	var mu sync.Mutex
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				mu.Lock()
				*into = append(*into, r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
}

func mustRepo(t *testing.T, reg *testRegistry) name.Repository {
	t.Helper()
	r, err := name.NewRepository(reg.ref("app"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func fromTarBytes(ctx context.Context, raw []byte, w builder.FileWriter) (*tree.Tree, error) {
	return source.FromTar(ctx, bytes.NewReader(raw), w)
}

func openBoot(t *testing.T, boot []byte) *rafs.Image {
	t.Helper()
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	return img
}
