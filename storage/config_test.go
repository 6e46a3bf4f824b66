package storage_test

import (
	"encoding/json"
	"testing"

	"github.com/gonydus/nydus/storage"
)

func TestConfigJSONNames(t *testing.T) {
	v1 := `{"device":{"cache":{"type":"blobcache","compressed":true,"validate":true,
		"config":{"work_dir":"/var/cache/nydus","disable_indexed_map":true}}},
		"digest_validate":true,"amplify_io":262144,
		"fs_prefetch":{"enable":true,"threads_count":4,"merging_size":131072,"bandwidth_rate":1048576}}`
	var doc struct {
		Device struct {
			Cache storage.LegacyCacheConfig `json:"cache"`
		} `json:"device"`
		DigestValidate bool                         `json:"digest_validate"`
		AmplifyIO      uint64                       `json:"amplify_io"`
		FsPrefetch     storage.LegacyPrefetchConfig `json:"fs_prefetch"`
	}
	doc.FsPrefetch = storage.DefaultLegacyPrefetchConfig()
	if err := json.Unmarshal([]byte(v1), &doc); err != nil {
		t.Fatal(err)
	}
	pf := doc.FsPrefetch.V2()
	c := doc.Device.Cache.V2(pf)
	want := storage.CacheConfig{Type: "blobcache", Compressed: true, Validate: true,
		Prefetch:  storage.PrefetchConfig{Enable: true, Threads: 4, BatchSize: 131072, BandwidthLimit: 1048576, PrefetchAll: true},
		FileCache: storage.FileCacheConfig{WorkDir: "/var/cache/nydus", DisableIndexedMap: true}}
	if c != want || doc.AmplifyIO != 262144 || !doc.DigestValidate {
		t.Fatalf("v1 decoded as %+v", c)
	}
	read := storage.DefaultLegacyReadConfig()
	if err := json.Unmarshal([]byte(v1), &read); err != nil {
		t.Fatal(err)
	}
	if read.V2() != (storage.ReadConfig{BatchSize: 262144, Validate: true}) {
		t.Fatalf("v1 read settings %+v", read)
	}
	read = storage.DefaultLegacyReadConfig()
	json.Unmarshal([]byte(`{"amplify_io":0}`), &read)
	if read.V2().BatchSize != 0 {
		t.Fatal("amplify_io 0 must disable amplification")
	}
	read = storage.DefaultLegacyReadConfig()
	json.Unmarshal([]byte(`{}`), &read)
	if read.V2().BatchSize != storage.DefaultAmplify {
		t.Fatal("absent amplify_io must keep the 1 MiB default")
	}
	if k, err := c.Kind(); err != nil || k != storage.CacheFile {
		t.Fatalf("kind %q %v", k, err)
	}

	v2 := `{"type":"filecache","compressed":false,"validate":false,
		"prefetch":{"enable":true,"threads":2,"batch_size":524288,"bandwidth_limit":0,"prefetch_all":false},
		"filecache":{"work_dir":"/cache"}}`
	var c2 storage.CacheConfig
	c2.Prefetch = storage.DefaultPrefetchConfig()
	if err := json.Unmarshal([]byte(v2), &c2); err != nil {
		t.Fatal(err)
	}
	if c2.Prefetch != (storage.PrefetchConfig{Enable: true, Threads: 2, BatchSize: 524288}) || c2.WorkDir() != "/cache" {
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
