package graphdriver

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
)

// pluginClient speaks to the handler over a unix socket as dockerd does.
type pluginClient struct {
	t *testing.T
	c *http.Client
}

func (p pluginClient) post(path string, body io.Reader) (int, []byte) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://plugin"+path, body)
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// call posts a JSON request and decodes the answer into out; it fails
// the test unless the status is 200 and Err is empty.
func (p pluginClient) call(path string, req, out any) {
	p.t.Helper()
	b, _ := json.Marshal(req)
	code, body := p.post(path, bytes.NewReader(b))
	var e errResponse
	json.Unmarshal(body, &e)
	if code != 200 || e.Err != "" {
		p.t.Fatalf("%s: %d %s", path, code, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			p.t.Fatalf("%s: %v in %s", path, err, body)
		}
	}
}

// TestProtocolEveryEndpoint drives every /GraphDriver.* endpoint through
// HTTP on a unix socket, with dockerd's request shapes.
func TestProtocolEveryEndpoint(t *testing.T) {
	requireMounts(t)
	d, err := New()
	testutil.Must(t, err)
	home := t.TempDir()
	sock := filepath.Join(t.TempDir(), "nydus.sock")
	l, err := net.Listen("unix", sock)
	testutil.Must(t, err)
	go d.Handler().Serve(l)
	defer l.Close()
	defer d.Cleanup()
	p := pluginClient{t: t, c: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}}

	code, body := p.post("/Plugin.Activate", nil)
	if code != 200 || !strings.Contains(string(body), `"GraphDriver"`) {
		t.Fatalf("activate: %d %s", code, body)
	}
	p.call("/GraphDriver.Init", map[string]any{"Home": filepath.Join(home, "nydus"), "Opts": []string{}, "UIDMaps": nil, "GIDMaps": nil}, nil)
	var caps capabilitiesResponse
	p.call("/GraphDriver.Capabilities", struct{}{}, &caps)
	p.call("/GraphDriver.Create", createRequest{ID: "l1"}, nil)

	code, body = p.post("/GraphDriver.ApplyDiff?id=l1&parent=", tartest.Reader(t, tartest.File("hello", "world", tartest.ModTime(time.Time{}))))
	var size sizeResponse
	json.Unmarshal(body, &size)
	if code != 200 || size.Err != "" || size.Size != 5 {
		t.Fatalf("ApplyDiff: %d %s, want Size 5 (the content bytes)", code, body)
	}
	p.call("/GraphDriver.CreateReadWrite", createRequest{ID: "c1", Parent: "l1", MountLabel: ""}, nil)
	var ex existsResponse
	p.call("/GraphDriver.Exists", idRequest{ID: "c1"}, &ex)
	if !ex.Exists {
		t.Fatal("Exists c1 = false")
	}
	p.call("/GraphDriver.Exists", idRequest{ID: "nope"}, &ex)
	if ex.Exists {
		t.Fatal("Exists nope = true")
	}
	var get getResponse
	p.call("/GraphDriver.Get", idRequest{ID: "c1"}, &get)
	if got := treeOf(t, get.Dir); got != ". d\nhello f world" {
		t.Fatalf("Get dir tree: %s", got)
	}
	testutil.Must(t, writeFile(filepath.Join(get.Dir, "new"), "n"))
	var meta metadataResponse
	p.call("/GraphDriver.GetMetadata", idRequest{ID: "c1"}, &meta)
	if meta.Metadata["MergedDir"] != get.Dir || meta.Metadata["LowerDir"] == "" {
		t.Fatalf("metadata %v", meta.Metadata)
	}
	var st statusResponse
	p.call("/GraphDriver.Status", struct{}{}, &st)
	if len(st.Status) == 0 || st.Status[1][0] != "Layers" || st.Status[1][1] != "2" {
		t.Fatalf("status %v", st.Status)
	}
	var ch changesResponse
	p.call("/GraphDriver.Changes", diffRequest{ID: "c1", Parent: "l1"}, &ch)
	if len(ch.Changes) != 1 || ch.Changes[0] != (Change{Path: "/new", Kind: ChangeAdd}) {
		t.Fatalf("changes %+v", ch.Changes)
	}
	p.call("/GraphDriver.DiffSize", diffRequest{ID: "c1", Parent: "l1"}, &size)
	if size.Size != 1 {
		t.Fatalf("DiffSize %d", size.Size)
	}
	b, _ := json.Marshal(diffRequest{ID: "c1", Parent: "l1"})
	code, body = p.post("/GraphDriver.Diff", bytes.NewReader(b))
	tr := tar.NewReader(bytes.NewReader(body))
	h, err := tr.Next()
	if code != 200 || err != nil || h.Name != "new" {
		t.Fatalf("Diff: %d %v %v", code, h, err)
	}
	p.call("/GraphDriver.Put", idRequest{ID: "c1"}, nil)
	p.call("/GraphDriver.Remove", idRequest{ID: "c1"}, nil)
	p.call("/GraphDriver.Remove", idRequest{ID: "l1"}, nil)
	p.call("/GraphDriver.Cleanup", struct{}{}, nil)

	// Errors: a 500 with the message in Err, as dockerd decodes it.
	b, _ = json.Marshal(createRequest{ID: "x", Parent: "missing"})
	code, body = p.post("/GraphDriver.Create", bytes.NewReader(b))
	var e errResponse
	json.Unmarshal(body, &e)
	if code != 500 || !strings.Contains(e.Err, "does not exist") {
		t.Fatalf("error shape: %d %s", code, body)
	}
	code, body = p.post("/GraphDriver.Get", strings.NewReader("{not json"))
	if code == 200 {
		t.Fatalf("bad JSON answered 200: %s", body)
	}
}

func writeFile(p, s string) error {
	return osWriteFile(p, []byte(s))
}
