package graphdriver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzEndpoints are the protocol calls that take a JSON body and neither
// mount nor stream (Get, Diff and ApplyDiff have tests of their own; Init is
// made by the harness, as dockerd would).
var fuzzEndpoints = []string{"/GraphDriver.Create", "/GraphDriver.CreateReadWrite", "/GraphDriver.Remove",
	"/GraphDriver.Exists", "/GraphDriver.GetMetadata", "/GraphDriver.Changes", "/GraphDriver.DiffSize",
	"/GraphDriver.Put", "/GraphDriver.Status", "/GraphDriver.Capabilities"}

// FuzzProtocol posts two fuzzed JSON bodies to the plugin's endpoints over
// its real HTTP handler, each input against a fresh driver home. The
// handler must answer every request with 200 or 500 and a JSON body (with
// Err set on 500), and the driver must create nothing but layer
// directories inside its home, whatever ids and parents it is given.
func FuzzProtocol(f *testing.F) {
	top := f.TempDir()
	d, err := New(WithRuntimeDir(filepath.Join(top, "run")), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	sock := filepath.Join(top, "plugin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		f.Fatal(err)
	}
	go d.Handler().Serve(l)
	f.Cleanup(func() { l.Close() })
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	post := func(t *testing.T, path string, body []byte) {
		req, _ := http.NewRequest(http.MethodPost, "http://plugin"+path, bytes.NewReader(body))
		req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %q: %v", path, body, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %q: answer %d %q is not a JSON object: %v", path, body, resp.StatusCode, b, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusInternalServerError:
			if e, _ := m["Err"].(string); e == "" {
				t.Fatalf("%s %q: 500 without Err: %s", path, body, b)
			}
		default:
			t.Fatalf("%s %q: status %d", path, body, resp.StatusCode)
		}
	}
	f.Add(uint8(0), []byte(`{"ID":"l1","Parent":"","MountLabel":"","StorageOpt":{}}`), uint8(1), []byte(`{"ID":"c1","Parent":"l1"}`))
	f.Add(uint8(0), []byte(`{"ID":"l1"}`), uint8(2), []byte(`{"ID":"l1"}`))
	f.Add(uint8(1), []byte(`{"ID":"../escape","Parent":"../../etc"}`), uint8(4), []byte(`{"ID":".."}`))
	f.Add(uint8(0), []byte(`{"ID":"l1"}`), uint8(5), []byte(`{"ID":"l1","Parent":"l1"}`))
	f.Add(uint8(0), []byte(`{"ID":"l","StorageOpt":{"size":"10G"}}`), uint8(6), []byte(`{"ID":"l","Parent":"x"}`))
	f.Add(uint8(7), []byte(`{"ID":"l1"}`), uint8(3), []byte(`not json`))
	n := 0
	f.Fuzz(func(t *testing.T, op1 uint8, body1 []byte, op2 uint8, body2 []byte) {
		n++
		home := filepath.Join(top, fmt.Sprintf("home%d", n))
		if err := d.Init(home, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		post(t, fuzzEndpoints[int(op1)%len(fuzzEndpoints)], body1)
		post(t, fuzzEndpoints[int(op2)%len(fuzzEndpoints)], body2)
		ents, err := os.ReadDir(top)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if name := e.Name(); name != "run" && name != "plugin.sock" && name != filepath.Base(home) && !(len(name) > 4 && name[:4] == "home") {
				t.Fatalf("%q appeared beside the driver home", name)
			}
		}
		layers, err := os.ReadDir(home)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range layers {
			if e.Name() != linkDir && validID(e.Name()) != nil {
				t.Fatalf("driver home holds %q", e.Name())
			}
		}
		os.RemoveAll(home)
	})
}
