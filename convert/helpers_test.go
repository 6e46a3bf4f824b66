package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testregistry"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// testRegistry is the in-process test registry (with the referrers API)
// behind a server whose handler wrappers inject faults.
type testRegistry struct {
	srv  *httptest.Server
	host string
	wrap func(http.Handler) http.Handler // set before requests
	reg  *testregistry.InProcess
}

// newTestRegistry starts one; opts (auth) go to testregistry.Start.
func newTestRegistry(t testing.TB, opts ...testregistry.Option) *testRegistry {
	t.Helper()
	inner := testregistry.Start(t, append(opts, testregistry.WithReferrers())...)
	r := &testRegistry{reg: inner}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var h http.Handler = inner
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
func testLayers(t *testing.T) [][]tartest.Entry {
	big := randBytes(1, 3<<20+123)
	text := bytes.Repeat([]byte("hello nydus\n"), 4000)
	l1 := []tartest.Entry{
		tartest.Dir("bin/", tartest.Mode(0o755)),
		tartest.File("bin/tool", "", tartest.Bytes(big), tartest.Mode(0o755)),
		tartest.Hardlink("bin/tool-hard", "bin/tool"),
		tartest.Dir("etc/", tartest.Mode(0o755)),
		tartest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n", tartest.Mode(0o644)),
		tartest.File("etc/suid", "", tartest.Bytes(text), tartest.Mode(0o4755), tartest.Owner(1000, 1001)),
		tartest.File("etc/empty", "", tartest.Mode(0o600)),
		tartest.File("etc/attr", "x", tartest.Mode(0o644), tartest.Xattr("user.comment", "nydus"), tartest.Xattr("security.capability", "\x01\x00\x00\x02")),
		tartest.Symlink("link", "etc/passwd"),
		tartest.Dir("data/", tartest.Mode(0o750), tartest.Owner(5, 6)),
		tartest.File("data/gone", "", tartest.Bytes(randBytes(2, 200000)), tartest.Mode(0o644)),
		tartest.File("data/kept", "", tartest.Bytes(text[:10000]), tartest.Mode(0o644)),
		tartest.File("dir/sub/a", "lower a", tartest.Mode(0o644)), // parents implicit
		tartest.Char("dev/null", 1, 3, tartest.Mode(0o666)),
		tartest.Fifo("dev/fifo", tartest.Mode(0o644)),
	}
	l2 := []tartest.Entry{
		tartest.File("data/.wh.gone", "", tartest.Mode(0o644)),
		tartest.Dir("dir/", tartest.Mode(0o711)),
		tartest.File("dir/.wh..wh..opq", "", tartest.Mode(0o644)),
		tartest.File("dir/new", "upper new", tartest.Mode(0o644)),
		tartest.File("etc/passwd", "root:x:0:0::/root:/bin/bash\n", tartest.Mode(0o600)),
		tartest.File("x/h1", "", tartest.Bytes(randBytes(3, 70000)), tartest.Mode(0o640), tartest.Owner(7, 8)),
		tartest.Hardlink("x/h2", "x/h1"),
		tartest.Symlink("x/dangling", "/nowhere/at/all"),
	}
	l3 := []tartest.Entry{
		tartest.File(".wh.link", "", tartest.Mode(0o644)),
		tartest.Dir("bin/", tartest.Mode(0o700)),
	}
	return [][]tartest.Entry{l1, l2, l3}
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
		raw := tartest.Tar(t, entries...)
		var data []byte
		switch {
		case i == 0, i == 2 && !oci:
			data = tartest.Gzip(t, raw)
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
