package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/daemon/rafsfs"
	"github.com/gonydus/nydus/overlay"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
	"github.com/gonydus/nydus/storage/prefetch"
)

// Mount is one RAFS image served by the daemon.
type Mount struct {
	Mountpoint string // "/" or "/sub" inside the FUSE mount
	Source     string // bootstrap path
	Config     *config.Config
	Mounted    time.Time
	Image      *rafs.Image
	Storage    *storage.Source
	Backend    backend.Backend
	FS         *rafsfs.FS
	// Overlay is the writable overlay over the image, when the mount's
	// configuration has an overlay section.
	Overlay *overlay.FS

	pf            mountPrefetch
	idx           uint64   // inode index: the top byte of the mount's st_ino
	prefetchFiles []string // the prefetch list it was mounted with
	closeBackend  func() error
	bootFile      *os.File
}

// openMount opens a bootstrap and its storage chain.
func openMount(mountpoint, bootstrap string, cfg *config.Config, backends BackendOpener, index uint64, log *slog.Logger, ovlOpts ...overlay.Option) (*Mount, error) {
	f, err := os.Open(bootstrap)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	// Bootstraps above inMemory are read on demand from the file: the
	// page cache holds them, not the daemon's heap (a 100k-file bootstrap
	// is about 19 MiB).
	const inMemory = 1 << 20
	img, err := rafs.Open(f, st.Size(), rafs.WithInMemoryLimit(inMemory))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bootstrap %s: %w", bootstrap, err)
	}
	var bootFile *os.File
	if st.Size() <= inMemory {
		f.Close()
	} else {
		bootFile = f // read on demand
	}
	fail := func(err error) (*Mount, error) {
		if bootFile != nil {
			bootFile.Close()
		}
		return nil, err
	}
	be, err := backends(cfg.Backend)
	if err != nil {
		return fail(err)
	}
	open, closeBackend := storage.BackendOpen(be), be.Close
	opts, err := cfg.SourceOptions()
	if err != nil {
		closeBackend()
		return fail(err)
	}
	opts = append(opts, storage.WithSourceMetrics(storage.NewMetrics(mountpoint, cfg.Cache.WorkDir())), storage.WithChunkTables(lazyChunkTables(img, log)),
		storage.WithSourceLogger(log))
	src, err := storage.NewSource(open, opts...)
	if err != nil {
		closeBackend()
		return fail(err)
	}
	fsys, err := rafsfs.New(img, src, rafsfs.WithInodeBase(index<<56), rafsfs.WithXattr(cfg.Rafs.EnableXattr))
	if err != nil {
		src.Close()
		closeBackend()
		return fail(err)
	}
	var ovl *overlay.FS
	if o := cfg.Overlay; o != nil {
		if o.UpperDir == "" || o.WorkDir == "" {
			src.Close()
			closeBackend()
			return fail(fmt.Errorf("%w: the overlay section needs upper_dir and work_dir", ErrInvalidInput))
		}
		ovl, err = overlay.New(overlay.NewRAFSLower(img, src), o.UpperDir, o.WorkDir,
			append([]overlay.Option{overlay.WithInodeIndex(uint8(index)), overlay.WithLogger(log)}, ovlOpts...)...)
		if err != nil {
			src.Close()
			closeBackend()
			return fail(fmt.Errorf("overlay: %w", err))
		}
	}
	return &Mount{Mountpoint: mountpoint, Source: bootstrap, Config: cfg, Mounted: time.Now(), Image: img,
		Storage: src, FS: fsys, Overlay: ovl, Backend: be, closeBackend: closeBackend, bootFile: bootFile}, nil
}

// mountPrefetch is the mount-time prefetch: planned on a goroutine, then
// run.
type mountPrefetch struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	planned chan struct{} // closed when planning ended; nil without prefetch
	run     *prefetch.Run // nil until planned, or when planning failed
	err     error         // why planning failed
}

func (p *mountPrefetch) state() (planned chan struct{}, run *prefetch.Run, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.planned, p.run, p.err
}

// PrefetchProgress reports the mount-time prefetch, if one runs.
func (m *Mount) PrefetchProgress() (prefetch.Progress, bool) {
	_, run, _ := m.pf.state()
	if run == nil {
		return prefetch.Progress{}, false
	}
	return run.Progress(), true
}

// WaitPrefetch waits for the mount-time prefetch to be planned and to end.
func (m *Mount) WaitPrefetch() error {
	planned, _, _ := m.pf.state()
	if planned == nil {
		return nil
	}
	<-planned
	_, run, err := m.pf.state()
	if run == nil {
		return err
	}
	return run.Wait()
}

// stopPrefetch cancels the mount-time prefetch and waits (bounded) for its
// planning to end, so nothing reads the storage chain once it is closed.
func (m *Mount) stopPrefetch() {
	m.pf.mu.Lock()
	cancel, planned, run := m.pf.cancel, m.pf.planned, m.pf.run
	m.pf.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-planned:
	case <-time.After(10 * time.Second):
	}
	if _, run2, _ := m.pf.state(); run2 != nil {
		run = run2
	}
	if run != nil {
		run.Cancel()
	}
}

// Close releases the storage chain.
func (m *Mount) Close() error {
	m.stopPrefetch()
	var err error
	if m.Overlay != nil {
		err = m.Overlay.Close()
	}
	if e := m.Storage.Close(); err == nil {
		err = e
	}
	if m.bootFile != nil {
		m.bootFile.Close()
	}
	if m.closeBackend != nil {
		if e := m.closeBackend(); err == nil {
			err = e
		}
	}
	return err
}

// lazyChunkTables returns the chunk tables of img's blobs for
// storage.WithChunkTables, read from the bootstrap when the storage first
// opens a blob (a file read or a prefetch), not at mount: a metadata-only
// workload never holds them. A bootstrap the mount validated but whose
// chunk table cannot be read leaves the blobs without a table (no
// amplification, no whole-blob prefetch) and logs why.
func lazyChunkTables(img *rafs.Image, log *slog.Logger) func(*layout.BlobEntry) []*layout.ChunkInfo {
	load := sync.OnceValue(func() map[string][]*layout.ChunkInfo {
		tables, err := img.BlobChunks()
		if err != nil {
			log.Warn("chunk tables", "err", err)
			return nil
		}
		byID := make(map[string][]*layout.ChunkInfo, len(tables))
		for i, b := range img.Blobs() {
			byID[b.ID()] = tables[i]
		}
		return byID
	})
	return func(e *layout.BlobEntry) []*layout.ChunkInfo { return load()[e.ID()] }
}
