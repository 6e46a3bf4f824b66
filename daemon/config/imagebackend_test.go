package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseImageBackend(t *testing.T) {
	good := map[string]ImageRegistry{
		`{"type":"registry","config":{"scheme":"https","host":"r.example.com","repo":"a/b"}}`:                    {Scheme: "https", Host: "r.example.com", Repo: "a/b"},
		`{"type":"registry","config":{"scheme":"http","host":"127.0.0.1:5000","repo":"app","skip_verify":true}}`: {Scheme: "http", Host: "127.0.0.1:5000", Repo: "app", SkipVerify: true},
		`{"type":"registry","config":{"scheme":"https","host":"[::1]:5000","repo":"x/y_z.w-v"}}`:                 {Scheme: "https", Host: "[::1]:5000", Repo: "x/y_z.w-v"},
	}
	for in, want := range good {
		f, err := ParseImageBackend([]byte(in))
		if err != nil || f.Type != "registry" || f.Config != want {
			t.Errorf("%s: %+v, %v", in, f, err)
		}
	}
	bad := map[string]string{
		`{"type":"localfs","config":{"dir":"/etc"}}`:                                                               "only name a registry",
		`{"type":"http-proxy","config":{"addr":"/run/x.sock"}}`:                                                    "only name a registry",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a","auth":"dXNlcjpwYXNz"}}`:              "credentials",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a","registry_token":"t"}}`:               "credentials",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a","proxy":{"url":"http://evil"}}}`:      "only type and config",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a","mirrors":[{"host":"http://evil"}]}}`: "only type and config",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a"},"extra":1}`:                          "only type and config",
		`{"type":"registry","config":{"scheme":"ftp","host":"r","repo":"a"}}`:                                      "scheme",
		`{"type":"registry","config":{"scheme":"https","host":"user:pw@evil.example","repo":"a"}}`:                 "registry host",
		`{"type":"registry","config":{"scheme":"https","host":"evil.example/path","repo":"a"}}`:                    "registry host",
		`{"type":"registry","config":{"scheme":"https","host":"evil.example:80a","repo":"a"}}`:                     "registry host",
		`{"type":"registry","config":{"scheme":"https","host":"","repo":"a"}}`:                                     "registry host",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"../../v2"}}`:                             "repository",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a//b"}}`:                                 "repository",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a?b"}}`:                                  "repository",
		`{"type":"registry","config":{"scheme":"https","host":"r"}}`:                                               "repository",
		`{"type":"registry","config":{"scheme":"https","host":"fe80::1:5000","repo":"a"}}`:                         "brackets",
		`not json`: "image backend file",
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"` + strings.Repeat("a", MaxImageBackendSize) + `"}}`: "bytes",
	}
	for in, want := range bad {
		if f, err := ParseImageBackend([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.100s: got %+v, %v; want an error about %q", in, f, err, want)
		}
	}
}

// FuzzParseImageBackend: no input panics, and whatever is accepted is a
// registry location that survives a round trip and names nothing else.
func FuzzParseImageBackend(f *testing.F) {
	f.Add([]byte(`{"type":"registry","config":{"scheme":"https","host":"r.example.com:5000","repo":"a/b","skip_verify":true}}`))
	f.Add([]byte(`{"type":"localfs","config":{"dir":"/etc"}}`))
	f.Add([]byte(`{"type":"registry","config":{"scheme":"http","host":"[::1]","repo":"a"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := ParseImageBackend(b)
		if err != nil {
			return
		}
		if spec.Type != "registry" || spec.Config.validate() != nil {
			t.Fatalf("accepted %q as %+v", b, spec)
		}
		if strings.ContainsAny(spec.Config.Host, "/@?#") || strings.Contains(spec.Config.Repo, "..") {
			t.Fatalf("accepted a location that escapes: %+v", spec.Config)
		}
		again, _ := json.Marshal(spec)
		spec2, err := ParseImageBackend(again)
		if err != nil || *spec2 != *spec {
			t.Fatalf("round trip of %s: %+v, %v", again, spec2, err)
		}
	})
}
