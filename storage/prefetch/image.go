package prefetch

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// ForImage plans the mount-time prefetch of an image, as nydusd does for
// RAFS v6: files (absolute paths, e.g. --prefetch-files) override the
// image's prefetch table. A list that is just the root prefetches every
// blob whole; otherwise the listed files (directories recursively) are
// prefetched as chunk lists in list order; when nothing matched and
// prefetchAll is set, every blob is prefetched whole. Paths that do not
// exist are skipped.
func ForImage(ctx context.Context, img *rafs.Image, src *storage.Source, files []string, prefetchAll bool) ([]Job, error) {
	var nids []uint64
	if files != nil {
		for _, p := range files {
			nid, err := img.LookupPath(p)
			if err != nil {
				continue
			}
			nids = append(nids, nid)
		}
	} else {
		nids = img.PrefetchTable()
	}
	if len(nids) == 1 && nids[0] == img.Root() {
		return wholeBlobs(ctx, img, src)
	}
	var order []string
	lists := map[string][]*layout.ChunkInfo{}
	entries := map[string]*layout.BlobEntry{}
	seen := map[uint64]bool{}
	// visit walks the trees under nids without recursion (an image's depth
	// is the image's choice).
	stack := slices.Clone(nids)
	slices.Reverse(stack)
	for len(stack) > 0 {
		nid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[nid] {
			continue
		}
		seen[nid] = true
		ino, err := img.Inode(nid)
		if err != nil {
			return nil, fmt.Errorf("prefetch: %w", err)
		}
		switch {
		case ino.IsDir():
			ents, err := img.ReadDir(nid)
			if err != nil {
				return nil, fmt.Errorf("prefetch: %w", err)
			}
			for k := len(ents) - 1; k >= 0; k-- {
				stack = append(stack, ents[k].Nid)
			}
		case ino.IsReg():
			chunks, err := img.Chunks(nid)
			if err != nil {
				return nil, fmt.Errorf("prefetch: %w", err)
			}
			for _, c := range chunks {
				id := c.Blob.ID()
				if _, ok := lists[id]; !ok {
					order = append(order, id)
					entries[id] = c.Blob
				}
				info := c.Info
				lists[id] = append(lists[id], &info)
			}
		}
	}
	if len(order) == 0 {
		if prefetchAll {
			return wholeBlobs(ctx, img, src)
		}
		return nil, nil
	}
	var jobs []Job
	for _, id := range order {
		b, err := src.Blob(ctx, entries[id])
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, Job{Blob: b, Chunks: lists[id]})
	}
	return jobs, nil
}

func wholeBlobs(ctx context.Context, img *rafs.Image, src *storage.Source) ([]Job, error) {
	var jobs []Job
	var errs []error
	for _, e := range img.Blobs() {
		if e.ChunkCount == 0 {
			continue
		}
		b, err := src.Blob(ctx, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		jobs = append(jobs, Job{Blob: b})
	}
	return jobs, errors.Join(errs...)
}
