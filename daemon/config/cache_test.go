package config

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/prefetch"
)

func TestCacheJSONNames(t *testing.T) {
	v1 := `{"device":{"cache":{"type":"blobcache","compressed":true,"validate":true,
		"config":{"work_dir":"/var/cache/nydus","disable_indexed_map":true}}},
		"digest_validate":true,"amplify_io":262144,
		"fs_prefetch":{"enable":true,"threads_count":4,"merging_size":131072,"bandwidth_rate":1048576}}`
	var doc struct {
		Device struct {
			Cache LegacyCache `json:"cache"`
		} `json:"device"`
		DigestValidate bool           `json:"digest_validate"`
		AmplifyIO      uint64         `json:"amplify_io"`
		FsPrefetch     LegacyPrefetch `json:"fs_prefetch"`
	}
	doc.FsPrefetch = DefaultLegacyPrefetch()
	if err := json.Unmarshal([]byte(v1), &doc); err != nil {
		t.Fatal(err)
	}
	pf := doc.FsPrefetch.V2()
	c := doc.Device.Cache.V2(pf)
	want := Cache{Type: "blobcache", Compressed: true, Validate: true,
		Prefetch:  Prefetch{Enable: true, Threads: 4, BatchSize: 131072, BandwidthLimit: 1048576, PrefetchAll: true},
		FileCache: FileCache{WorkDir: "/var/cache/nydus", DisableIndexedMap: true}}
	if c != want || doc.AmplifyIO != 262144 || !doc.DigestValidate {
		t.Fatalf("v1 decoded as %+v", c)
	}
	if k, err := c.Kind(); err != nil || k != CacheFile {
		t.Fatalf("kind %q %v", k, err)
	}

	v2 := `{"type":"filecache","compressed":false,"validate":false,
		"prefetch":{"enable":true,"threads":2,"batch_size":524288,"bandwidth_limit":0,"prefetch_all":false},
		"filecache":{"work_dir":"/cache"}}`
	var c2 Cache
	c2.Prefetch = DefaultPrefetch()
	if err := json.Unmarshal([]byte(v2), &c2); err != nil {
		t.Fatal(err)
	}
	if c2.Prefetch != (Prefetch{Enable: true, Threads: 2, BatchSize: 524288}) || c2.WorkDir() != "/cache" {
		t.Fatalf("v2 decoded as %+v", c2)
	}
	out, _ := json.Marshal(c2)
	var back map[string]any
	json.Unmarshal(out, &back)
	for _, k := range []string{"type", "compressed", "validate", "prefetch", "filecache"} {
		if _, ok := back[k]; !ok {
			t.Fatalf("marshalled config lacks %q: %s", k, out)
		}
	}
}

// TestLegacyAmplifyIO: v1's amplify_io becomes rafs.batch_size; 0
// disables amplification, an absent key keeps the 1 MiB default.
func TestLegacyAmplifyIO(t *testing.T) {
	const backend = `"device":{"backend":{"type":"localfs","config":{"dir":"/x"}}}`
	for doc, want := range map[string]uint64{
		`{` + backend + `,"amplify_io":262144}`: 262144,
		`{` + backend + `,"amplify_io":0}`:      0,
		`{` + backend + `}`:                     storage.DefaultAmplify,
	} {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if c.Rafs.BatchSize != want {
			t.Errorf("%s: batch_size %d, want %d", doc, c.Rafs.BatchSize, want)
		}
	}
}

func TestSourceOptions(t *testing.T) {
	for typ, n := range map[string]int{"": 1, "dummycache": 1, "blobcache": 2, "filecache": 2, "FileCache": 2} {
		c := &Config{Cache: Cache{Type: typ, FileCache: FileCache{WorkDir: t.TempDir()}}}
		opts, err := c.SourceOptions()
		if err != nil || len(opts) != n {
			t.Fatalf("%q: %d options, %v; want %d", typ, len(opts), err, n)
		}
		if _, err := storage.NewSource(func(context.Context, string) (storage.BlobReader, error) {
			return nil, errors.New("no blobs")
		}, opts...); err != nil {
			t.Fatalf("%q: NewSource: %v", typ, err)
		}
	}
	for _, c := range []*Config{
		{Cache: Cache{Type: "fscache"}},
		{Cache: Cache{Type: "memcache"}},
		{Cache: Cache{Type: "blobcache", FileCache: FileCache{EnableEncryption: true}}},
	} {
		if _, err := c.SourceOptions(); err == nil {
			t.Errorf("%+v accepted", c.Cache)
		}
	}
}

func TestPrefetcherOptions(t *testing.T) {
	if _, err := prefetch.New(DefaultPrefetch().PrefetcherOptions()...); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if _, err := prefetch.New(Prefetch{}.PrefetcherOptions()...); err != nil {
		t.Fatalf("zero threads and batch size must keep the defaults: %v", err)
	}
	for _, p := range []Prefetch{{Threads: prefetch.MaxThreads + 1}, {BatchSize: storage.MaxAmplify + 1}} {
		if _, err := prefetch.New(p.PrefetcherOptions()...); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}
