package config

import (
	"strings"
	"testing"
)

// The v1 file nydus-snapshotter writes for a fusedev daemon.
const snapshotterV1 = `{
  "device": {
    "backend": {"type": "registry", "config": {"scheme": "https", "host": "ghcr.io", "repo": "dragonflyoss/nydus",
      "auth": "dXNlcjpzZWNyZXQ=", "timeout": 5, "connect_timeout": 5, "retry_limit": 2}},
    "cache": {"type": "blobcache", "compressed": false, "config": {"work_dir": "/var/lib/nydus/cache"}}
  },
  "mode": "direct", "digest_validate": false, "iostats_files": false, "enable_xattr": true,
  "amplify_io": 1048576,
  "fs_prefetch": {"enable": true, "threads_count": 4, "merging_size": 131072, "bandwidth_rate": 1048576}
}`

const v2 = `{
  "version": 2, "id": "x",
  "backend": {"type": "localfs", "localfs": {"dir": "/blobs"}},
  "cache": {"type": "filecache", "filecache": {"work_dir": "/cache"}, "prefetch": {"enable": true}},
  "rafs": {"mode": "direct", "validate": true, "enable_xattr": true, "batch_size": 0}
}`

func TestLegacyV1(t *testing.T) {
	c, err := Parse([]byte(snapshotterV1))
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend.Type != "registry" || !strings.Contains(string(c.Backend.Settings), `"host": "ghcr.io"`) {
		t.Fatalf("backend %+v", c.Backend)
	}
	if c.Cache.Type != "blobcache" || c.Cache.WorkDir() != "/var/lib/nydus/cache" {
		t.Fatalf("cache %+v", c.Cache)
	}
	p := c.Rafs.Prefetch
	if !p.Enable || p.Threads != 4 || p.BatchSize != 131072 || p.BandwidthLimit != 1048576 || !p.PrefetchAll {
		t.Fatalf("prefetch %+v", p)
	}
	if !c.Rafs.EnableXattr || c.Rafs.Validate || c.Rafs.BatchSize != 1<<20 || c.Rafs.Mode != "direct" {
		t.Fatalf("rafs %+v", c.Rafs)
	}
	red := string(c.Redacted())
	if strings.Contains(red, "dXNlcjpzZWNyZXQ=") || !strings.Contains(red, "<redacted>") || !strings.Contains(red, "ghcr.io") {
		t.Fatalf("redacted config leaks or lost data: %s", red)
	}
}

func TestV2(t *testing.T) {
	c, err := Parse([]byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "x" || c.Backend.Type != "localfs" || string(c.Backend.Settings) != `{"dir": "/blobs"}` {
		t.Fatalf("%+v", c)
	}
	if !c.Rafs.Validate || c.Rafs.BatchSize != 0 || c.Cache.WorkDir() != "/cache" || !c.Cache.Prefetch.PrefetchAll {
		t.Fatalf("%+v", c)
	}
}

func TestInvalid(t *testing.T) {
	for name, in := range map[string]string{
		"not json":        `{`,
		"no backend":      `{"version":2,"rafs":{}}`,
		"no section":      `{"version":2,"backend":{"type":"registry"}}`,
		"cached mode":     `{"device":{"backend":{"type":"localfs","config":{"dir":"/x"}}},"mode":"cached"}`,
		"bad cache":       `{"device":{"backend":{"type":"localfs","config":{"dir":"/x"}},"cache":{"type":"nope"}}}`,
		"amplify too big": `{"device":{"backend":{"type":"localfs","config":{"dir":"/x"}}},"amplify_io":4294967296}`,
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(snapshotterV1))
	f.Add([]byte(v2))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil {
			_ = c.Redacted()
		}
	})
}

// TestRedactedHidesHeadersAndProxyPasswords: mirror headers and the
// password in a proxy URL never leave the daemon through the API.
func TestRedactedHidesHeadersAndProxyPasswords(t *testing.T) {
	c, err := Parse([]byte(`{"device":{"backend":{"type":"registry","config":{"host":"r.example","repo":"a",
	  "proxy":{"url":"http://proxyuser:proxypass@proxy.example:3128","fallback":true},
	  "mirrors":[{"host":"https://m.example","headers":{"Authorization":"Basic bWlycm9yOnNlY3JldA==","X-Token":"t0k3n"}}]}},
	  "cache":{"type":"blobcache","config":{"work_dir":"/c"}}},"mode":"direct"}`))
	if err != nil {
		t.Fatal(err)
	}
	red := string(c.Redacted())
	for _, secret := range []string{"proxypass", "bWlycm9yOnNlY3JldA==", "t0k3n"} {
		if strings.Contains(red, secret) {
			t.Errorf("redacted config carries %q: %s", secret, red)
		}
	}
	for _, kept := range []string{"proxyuser", "proxy.example:3128", "Authorization", "X-Token", "m.example"} {
		if !strings.Contains(red, kept) {
			t.Errorf("redacted config lost %q: %s", kept, red)
		}
	}
}

// TestTOML: a v2 configuration in TOML, as upstream nydusd accepts it
// (JSON first, then TOML), reads as its JSON twin does.
func TestTOML(t *testing.T) {
	doc := `
version = 2
id = "toml-daemon"

[backend]
type = "registry"

[backend.registry]
scheme = "https"
host = "registry.example.com"
repo = "library/app"
timeout = 7
retry_limit = 2

[cache]
type = "filecache"
compressed = false
validate = true

[cache.filecache]
work_dir = "/var/lib/nydus/cache"

[rafs]
mode = "direct"
validate = true
enable_xattr = true

[rafs.prefetch]
enable = true
threads = 4
prefetch_all = true
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "toml-daemon" || c.Backend.Type != "registry" || !strings.Contains(string(c.Backend.Settings), `"host":"registry.example.com"`) ||
		!strings.Contains(string(c.Backend.Settings), `"timeout":7`) {
		t.Fatalf("backend %+v %s", c, c.Backend.Settings)
	}
	if c.Cache.WorkDir() != "/var/lib/nydus/cache" || !c.Cache.Validate || !c.Rafs.Validate || !c.Rafs.EnableXattr ||
		!c.Rafs.Prefetch.Enable || !c.Rafs.Prefetch.PrefetchAll || c.Rafs.Prefetch.Threads != 4 {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{
		"[backend]\ntype = \"localfs\"\n[backend.localfs]\ndir = \"/x\"\n", // no version = 2
		"version = 2\n[backend\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
