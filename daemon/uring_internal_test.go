package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// TestOffload pins which requests the io_uring queues hand to goroutines:
// never lookups, attributes or directories; always a blocking lock; data
// reads only while some image's data may come over the network.
func TestOffload(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(dir, "image.boot")
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		data := []byte("offload")
		chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, err
		}
		root.SetChild("f", &tree.Inode{Mode: layout.ModeReg | 0o644, Size: uint64(len(data)), Chunks: chunks})
		return &tree.Tree{Root: root}, nil
	}, &blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(boot, res.Bootstrap, 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		lookup  = 1
		getattr = 3
		read    = 15
		write   = 16
		setlkw  = 33
		readdir = 44
	)
	for _, tc := range []struct {
		backend string
		local   bool
	}{
		{fmt.Sprintf(`{"type":"localfs","config":{"dir":%q}}`, dir), true},
		{`{"type":"registry","config":{"scheme":"http","host":"127.0.0.1:1","repo":"x"}}`, false},
	} {
		doc := fmt.Sprintf(`{"device":{"backend":%s,"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct"}`,
			tc.backend, filepath.Join(dir, "cache"))
		cfg, err := config.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		d := New(Options{})
		if err := d.AddMount("/", boot, cfg); err != nil {
			t.Fatal(err)
		}
		for op, want := range map[uint32]bool{lookup: false, getattr: false, readdir: false, setlkw: true, read: !tc.local, write: !tc.local} {
			if got := d.offload(op); got != want {
				t.Errorf("%s backend: offload(%d) = %v, want %v", cfg.Backend.Type, op, got, want)
			}
		}
		d.Stop()
	}
}
