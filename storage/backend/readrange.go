package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ReadAt implements Blob with one Range request per call, checking the
// response's range and length. Ranges are clamped to the blob size
// (learnt once, by HEAD): registries may answer 416 instead of truncating
// a range past the end.
func (b *registryBlob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("backend: negative offset %d", off)
	}
	total, err := b.Size(ctx)
	if err != nil {
		return 0, err
	}
	if off >= total {
		return 0, io.EOF
	}
	full := len(p)
	p = p[:min(int64(len(p)), total-off)]
	start := time.Now()
	var n int
	rng := fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)
	err = b.do(ctx, "range read", http.MethodGet, rng, func(resp *http.Response) error {
		var err error
		n, err = b.readBody(resp, p, off, rng)
		return err
	})
	b.r.m.record(n, time.Since(start), err)
	if err != nil {
		return 0, err
	}
	if n < full {
		return n, io.EOF
	}
	return n, nil
}

// readBody reads the response to the range request rng (for p at off)
// into p.
func (b *registryBlob) readBody(resp *http.Response, p []byte, off int64, rng string) (int, error) {
	switch resp.StatusCode {
	case http.StatusPartialContent:
		first, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return 0, fmt.Errorf("backend: blob %s: %w", b.id, err)
		}
		if first != off || last != off+int64(len(p))-1 {
			return 0, fmt.Errorf("backend: blob %s: asked for %s, got Content-Range %q", b.id, rng, resp.Header.Get("Content-Range"))
		}
		if total >= 0 {
			b.setSize(total)
		}
	case http.StatusOK:
		// nydus-snapshotter's content-store proxy answers a range with
		// 200 and just the range's bytes: usable when the body is exactly
		// the length asked for (which says nothing of the blob's size).
		if b.r.kind == "http-proxy" && resp.ContentLength == int64(len(p)) {
			break
		}
		if b.r.kind == "http-proxy" && resp.ContentLength < 0 && off != 0 {
			return b.readExact(resp, p, rng)
		}
		// The server ignored Range: only usable from the start.
		if off != 0 {
			return 0, fmt.Errorf("backend: blob %s: server ignored Range %s (HTTP 200)", b.id, rng)
		}
		if resp.ContentLength >= 0 {
			b.setSize(resp.ContentLength)
			p = p[:min(resp.ContentLength, int64(len(p)))]
		}
	}
	n, err := io.ReadFull(resp.Body, p)
	if err != nil {
		return n, &errRetry{err: fmt.Errorf("backend: blob %s: body ended after %d of %d bytes: %w", b.id, n, len(p), err)}
	}
	return n, nil
}

// readExact reads a 200 response that must hold exactly len(p) bytes.
func (b *registryBlob) readExact(resp *http.Response, p []byte, rng string) (int, error) {
	n, err := io.ReadFull(resp.Body, p)
	if err != nil {
		return n, &errRetry{err: fmt.Errorf("backend: blob %s: body ended after %d of %d bytes: %w", b.id, n, len(p), err)}
	}
	var one [1]byte
	if m, _ := io.ReadFull(resp.Body, one[:]); m != 0 {
		return 0, fmt.Errorf("backend: blob %s: HTTP 200 to Range %s holds more than the range: the server ignored Range", b.id, rng)
	}
	return n, nil
}

func (b *registryBlob) setSize(n int64) {
	b.mu.Lock()
	b.size = n
	b.mu.Unlock()
}

// Size implements Blob with a HEAD request (cached). When HEAD is refused
// or answers without a length (signed storage URLs often allow GET only),
// a one-byte range GET gives the size in its Content-Range.
func (b *registryBlob) Size(ctx context.Context) (int64, error) {
	b.mu.Lock()
	s := b.size
	b.mu.Unlock()
	if s >= 0 {
		return s, nil
	}
	var size int64 = -1
	err := b.do(ctx, "size", http.MethodHead, "", func(resp *http.Response) error {
		size = resp.ContentLength
		return nil
	})
	var he *HTTPError
	if size < 0 && (err == nil || (errors.As(err, &he) && (he.Status == http.StatusForbidden || he.Status == http.StatusMethodNotAllowed))) {
		err = b.do(ctx, "size", http.MethodGet, "bytes=0-0", func(resp *http.Response) error {
			size = resp.ContentLength // a 200 ignoring Range
			if resp.StatusCode == http.StatusPartialContent {
				_, _, total, err := parseContentRange(resp.Header.Get("Content-Range"))
				if err != nil {
					return fmt.Errorf("backend: %s blob %s: %w", b.r.kind, b.id, err)
				}
				size = total
			}
			return nil
		})
	}
	if err != nil {
		return 0, err
	}
	if size < 0 {
		return 0, fmt.Errorf("backend: %s blob %s: size unknown (no Content-Length or Content-Range total)", b.r.kind, b.id)
	}
	b.setSize(size)
	return size, nil
}
