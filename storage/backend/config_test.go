package backend

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestConfigDecodesUpstreamSections: a nydusd v1 device.backend.config
// (or v2 backend.registry) section decodes straight into RegistryConfig,
// with upstream's defaults for what it leaves out.
func TestConfigDecodesUpstreamSections(t *testing.T) {
	v1 := []byte(`{"device":{"backend":{"type":"registry","config":{
		"scheme":"https","host":"ghcr.io","repo":"org/app","auth":"dXNlcjpwYXNz","registry_token":"tok",
		"blob_url_scheme":"http","blob_redirected_host":"cdn.example","skip_verify":true,
		"ca_cert_files":["/etc/ca.pem"],"timeout":9,"connect_timeout":3,"retry_limit":2,
		"proxy":{"url":"http://127.0.0.1:65001","ping_url":"http://127.0.0.1:65001/server/ping","fallback":false,"check_interval":7,"use_http":true,"check_pause_elapsed":300},
		"mirrors":[{"host":"http://mirror:5000","ping_url":"http://mirror:5000/v2/","headers":{"X-Dragonfly-Registry":"https://ghcr.io"},"health_check_interval":4,"failure_limit":6}]}}}}`)
	var cfg struct {
		Device struct {
			Backend struct {
				Type   string          `json:"type"`
				Config json.RawMessage `json:"config"`
			} `json:"backend"`
		} `json:"device"`
	}
	if err := json.Unmarshal(v1, &cfg); err != nil {
		t.Fatal(err)
	}
	got := DefaultRegistryConfig()
	if err := json.Unmarshal(cfg.Device.Backend.Config, &got); err != nil {
		t.Fatal(err)
	}
	want := RegistryConfig{Scheme: "https", Host: "ghcr.io", Repo: "org/app", Auth: "dXNlcjpwYXNz", RegistryToken: "tok",
		BlobURLScheme: "http", BlobRedirectedHost: "cdn.example", SkipVerify: true, CACertFiles: []string{"/etc/ca.pem"},
		Timeout: 9, ConnectTimeout: 3, RetryLimit: 2,
		Proxy: ProxyConfig{URL: "http://127.0.0.1:65001", PingURL: "http://127.0.0.1:65001/server/ping", CheckInterval: 7, UseHTTP: true},
		Mirrors: []MirrorConfig{{Host: "http://mirror:5000", PingURL: "http://mirror:5000/v2/", Headers: map[string]string{"X-Dragonfly-Registry": "https://ghcr.io"},
			HealthCheckInterval: 4, FailureLimit: 6}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	got.CACertFiles = nil // not on this machine
	o, _ := newOptions([]Option{WithEnv(noEnv)})
	if _, err := NewRegistry(got, o); err != nil {
		t.Fatal(err)
	}

	// Defaults for a minimal v2 section.
	b, err := New("registry", json.RawMessage(`{"host":"h","repo":"r"}`), WithEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	r := b.(*Registry)
	if r.cfg.Timeout != 5 || r.cfg.ConnectTimeout != 5 || r.cfg.RetryLimit != 0 || r.cfg.Scheme != "" {
		t.Fatalf("defaults %+v", r.cfg)
	}
	for _, bad := range []string{`{"repo":"r"}`, `{"host":"h"}`, `{"host":"h","repo":"r","scheme":"ftp"}`, `{"host":"h","repo":"r","auth":"not base64!"}`,
		`{"host":"h","repo":"r","proxy":{"url":"::"}}`, `[]`} {
		if _, err := New("registry", json.RawMessage(bad), WithEnv(noEnv)); err == nil {
			t.Fatalf("config %s accepted", bad)
		}
	}
}
