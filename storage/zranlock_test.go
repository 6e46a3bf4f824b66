package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/targzref"
	"github.com/gonydus/nydus/rafs/zran"
	"github.com/gonydus/nydus/storage"
)

// zranReadFile reads one file of z through src and compares it.
func zranReadFile(z *zranImage, src rafs.ChunkSource, name string, want []byte) error {
	nid, err := z.img.LookupPath(name)
	if err != nil {
		return err
	}
	fr, err := z.img.FileReader(context.Background(), src, nid)
	if err != nil {
		return err
	}
	got := make([]byte, len(want))
	if n, err := fr.ReadAt(got, 0); n != len(want) || (err != nil && !errors.Is(err, io.EOF)) {
		return fmt.Errorf("%s: %d of %d bytes: %w", name, n, len(want), err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s differs through storage", name)
	}
	return nil
}

// TestZranWholeReadFetchesEachContextOnce reads every file of a layer in
// random order from 8 goroutines: with the chunk table and a cache, each
// inflate context is fetched once (whole, by whichever reader gets there
// first; the others wait for it and read the cache), so the backend bytes
// stay close to the layer's size, whatever the order and concurrency.
func TestZranWholeReadFetchesEachContextOnce(t *testing.T) {
	for _, limits := range []struct {
		name string
		opts []targzref.Option
	}{
		{"default-spacing", []targzref.Option{targzref.WithChunkSize(0x10000), targzref.WithTOC(true)}},
		{"upstream-spacing", []targzref.Option{targzref.WithChunkSize(0x10000), targzref.WithTOC(true), targzref.WithContexts(zran.UpstreamLimits())}},
	} {
		t.Run(limits.name, func(t *testing.T) {
			gz := tartest.RandomGz(t, 11, 24<<20)
			z := buildZran(t, gz, limits.opts...)
			tables, err := storage.ChunkTables(z.img)
			if err != nil {
				t.Fatal(err)
			}
			src, err := storage.NewSource(z.open, storage.WithCacheDir(t.TempDir()), storage.WithChunkTables(tables))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			files := tartest.Files(t, z.gz)
			names := make([]string, 0, len(files))
			for n := range files {
				names = append(names, n)
			}
			rand.New(rand.NewPCG(3, 4)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < len(names); i += 8 {
						if err := zranReadFile(z, src, names[i], files[names[i]]); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			b, err := src.Blob(context.Background(), z.img.Blobs()[0])
			if err != nil {
				t.Fatal(err)
			}
			st := b.Stats()
			t.Logf("%d files, %d-byte layer, %d contexts: %d backend reads, %d bytes (%.2fx)", len(names), len(gz), z.res.Contexts,
				st.BackendReads, st.BackendBytes, float64(st.BackendBytes)/float64(len(gz)))
			// Neighbouring contexts overlap by a block and up to 64 bytes.
			if limit := uint64(len(gz)) + uint64(len(gz))/20 + uint64(z.res.Contexts)*(64<<10); st.BackendBytes > limit {
				t.Fatalf("fetched %d bytes for a %d-byte layer (limit %d): contexts fetched more than once", st.BackendBytes, len(gz), limit)
			}
		})
	}
}
