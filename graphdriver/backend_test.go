package graphdriver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// layerConfig writes backend.json into a fresh layer dir and returns the
// nydusd configuration the driver builds for it, as a map.
func layerConfig(t *testing.T, d *Driver, backendJSON string) (map[string]any, error) {
	t.Helper()
	dir := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(dir, nydusDir), 0o700))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, nydusDir, backendName), []byte(backendJSON), 0o600))
	b, err := d.nydusdConfig(dir)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	testutil.Must(t, json.Unmarshal(b, &m))
	return m, nil
}

func backendOf(t *testing.T, cfg map[string]any) (string, map[string]any) {
	t.Helper()
	be := cfg["device"].(map[string]any)["backend"].(map[string]any)
	conf, _ := be["config"].(map[string]any)
	return be["type"].(string), conf
}

// pluginConfig has credentials, a proxy and mirrors for one registry.
const pluginConfig = `{"device":{"backend":{"type":"registry","config":{
  "scheme":"https","host":"registry.corp.example","auth":"cGx1Z2luOnNlY3JldA==","registry_token":"tok",
  "proxy":{"url":"http://proxy.corp.example:65001"},"mirrors":[{"host":"https://mirror.corp.example","auth_through":true}],
  "timeout":7,"connect_timeout":3,"retry_limit":2}}}}`

// TestImageBackendCannotStealCredentials: an image names a registry; the
// plugin's credentials, proxy and mirrors for another registry never go
// into the nydusd configuration for it, and an image cannot pick another
// backend type, plain HTTP or unverified TLS for a remote host.
func TestImageBackendCannotStealCredentials(t *testing.T) {
	d, err := New(WithNydusdConfig([]byte(pluginConfig)))
	testutil.Must(t, err)

	// Another host: only timeouts and the retry limit carry over.
	cfg, err := layerConfig(t, d, `{"type":"registry","config":{"scheme":"https","host":"evil.example","repo":"x"}}`)
	testutil.Must(t, err)
	typ, conf := backendOf(t, cfg)
	want := map[string]any{"scheme": "https", "host": "evil.example", "repo": "x", "timeout": 7.0, "connect_timeout": 3.0, "retry_limit": 2.0}
	if typ != "registry" || !equalJSON(conf, want) {
		t.Fatalf("backend for another host: %s %v, want %v", typ, conf, want)
	}
	for _, secret := range []string{"cGx1Z2luOnNlY3JldA==", "tok", "proxy.corp", "mirror.corp"} {
		b, _ := json.Marshal(cfg)
		if strings.Contains(string(b), secret) {
			t.Fatalf("nydusd config for evil.example carries %q: %s", secret, b)
		}
	}

	// The plugin's own registry: its settings apply, the image picks the
	// repository only (and cannot turn the scheme to http).
	cfg, err = layerConfig(t, d, `{"type":"registry","config":{"scheme":"http","host":"REGISTRY.corp.example","repo":"team/app","skip_verify":true}}`)
	testutil.Must(t, err)
	_, conf = backendOf(t, cfg)
	if conf["auth"] != "cGx1Z2luOnNlY3JldA==" || conf["repo"] != "team/app" || conf["scheme"] != "https" || conf["skip_verify"] != nil || conf["proxy"] == nil {
		t.Fatalf("backend for the plugin's own registry: %v", conf)
	}

	// Refused outright.
	for in, why := range map[string]string{
		`{"type":"localfs","config":{"dir":"/etc"}}`:                                                                          "only name a registry",
		`{"type":"http-proxy","config":{"addr":"/run/containerd/containerd.sock"}}`:                                           "only name a registry",
		`{"type":"registry","config":{"scheme":"https","host":"evil.example","repo":"x","proxy":{"url":"http://evil"}}}`:      "only type and config",
		`{"type":"registry","config":{"scheme":"https","host":"evil.example","repo":"x","mirrors":[{"host":"http://evil"}]}}`: "only type and config",
		`{"type":"registry","config":{"scheme":"http","host":"evil.example","repo":"x"}}`:                                     "plain HTTP",
		`{"type":"registry","config":{"scheme":"https","host":"evil.example","repo":"x","skip_verify":true}}`:                 "skip TLS verification",
	} {
		if _, err := layerConfig(t, d, in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v, want an error about %q", in, err, why)
		}
	}

	// Loopback, and registries the plugin allows, may use plain HTTP.
	if _, err := layerConfig(t, d, `{"type":"registry","config":{"scheme":"http","host":"127.0.0.1:5000","repo":"x"}}`); err != nil {
		t.Fatalf("plain HTTP to loopback: %v", err)
	}
	d2, err := New(WithNydusdConfig([]byte(pluginConfig)), WithInsecureRegistries("registry.lan:5000"))
	testutil.Must(t, err)
	cfg, err = layerConfig(t, d2, `{"type":"registry","config":{"scheme":"http","host":"registry.lan:5000","repo":"x"}}`)
	testutil.Must(t, err)
	if _, conf := backendOf(t, cfg); conf["scheme"] != "http" || conf["auth"] != nil {
		t.Fatalf("insecure registry: %v", conf)
	}
	if _, err := New(WithInsecureRegistries("http://x/")); err == nil {
		t.Fatal("an insecure registry with a scheme and path was accepted")
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
