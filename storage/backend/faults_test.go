package backend

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/faultproxy"
	"github.com/gonydus/nydus/internal/testregistry"
)

// TestRegistryFaults injects one fault at a time through faultproxy in
// front of each registry: a read either succeeds after retries or fails
// with a clear error, always within timeout·(retries+1) plus backoff.
func TestRegistryFaults(t *testing.T) {
	const (
		timeout = time.Second
		retries = 3
		off     = 1234
	)
	blobGet := func(f faultproxy.Fault, skip, count int) faultproxy.Rule {
		return faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Skip: skip, Count: count, Fault: f}
	}
	cases := []struct {
		name    string
		rules   []faultproxy.Rule
		recover bool
		minTime time.Duration // the fault must really have been waited out
	}{
		{"429 with Retry-After", []faultproxy.Rule{blobGet(faultproxy.Fault{Status: 429, Header: http.Header{"Retry-After": {"1"}}}, 0, 1)}, true, 900 * time.Millisecond},
		{"500 then 503", []faultproxy.Rule{blobGet(faultproxy.Fault{Status: 500}, 0, 1), blobGet(faultproxy.Fault{Status: 503}, 0, 1)}, true, 0},
		{"reset mid-body", []faultproxy.Rule{blobGet(faultproxy.Fault{Body: faultproxy.BodyReset, At: 1000}, 0, 2)}, true, 0},
		{"truncated body", []faultproxy.Rule{blobGet(faultproxy.Fault{Body: faultproxy.BodyTruncate, At: 5000}, 0, 1)}, true, 0},
		{"stalled body", []faultproxy.Rule{blobGet(faultproxy.Fault{Body: faultproxy.BodyStall, At: 1000}, 0, 1)}, true, timeout},
		{"slow first byte", []faultproxy.Rule{blobGet(faultproxy.Fault{Delay: 3 * timeout / 2}, 0, 1)}, true, timeout},
		{"wrong Content-Range", []faultproxy.Rule{blobGet(faultproxy.Fault{ContentRange: "bytes 7-100006/400000"}, 0, 0)}, false, 0},
		{"always 503", []faultproxy.Rule{blobGet(faultproxy.Fault{Status: 503}, 0, 0)}, false, 0},
		{"always stalled", []faultproxy.Rule{blobGet(faultproxy.Fault{Body: faultproxy.BodyStall, At: 0}, 0, 0)}, false, (retries + 1) * timeout},
		{"403", []faultproxy.Rule{blobGet(faultproxy.Fault{Status: 403}, 0, 0)}, false, 0},
	}
	forEachRegistry(t, func(t *testing.T, reg *testregistry.Registry) {
		data := randomData(400_000)
		id := reg.Push(t, "app", data)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel() // mostly waiting out timeouts
				p := faultproxy.New(t, reg.URL)
				var injected []faultproxy.Injected
				for _, r := range c.rules {
					injected = append(injected, p.Add(r))
				}
				b := newReg(t, p.Host(), map[string]any{"timeout": int(timeout / time.Second), "retry_limit": retries})
				blob, _ := b.Open(context.Background(), id)
				buf := make([]byte, 100_000)
				start := time.Now()
				k, err := blob.ReadAt(context.Background(), buf, off)
				elapsed := time.Since(start)
				// Backoff between attempts is at most 100+200+400 ms.
				if bound := timeout*(retries+1) + 700*time.Millisecond + 2*time.Second; elapsed > bound {
					t.Fatalf("took %v (bound %v)", elapsed, bound)
				}
				if elapsed < c.minTime {
					t.Fatalf("took only %v: the fault was not waited out (%v)", elapsed, c.minTime)
				}
				for i, in := range injected {
					if in.Count() == 0 {
						t.Fatalf("rule %d never applied", i)
					}
				}
				if c.recover {
					if err != nil || k != len(buf) || !bytes.Equal(buf, data[off:off+len(buf)]) {
						t.Fatalf("did not recover: %d %v", k, err)
					}
				} else if err == nil {
					t.Fatal("fault not reported")
				}
				if m := b.Metrics(); (m.ReadErrors == 0) == (err != nil) {
					t.Fatalf("metrics %+v do not match the outcome %v", m, err)
				}
				t.Logf("%v after %v, %d requests", err, elapsed.Round(time.Millisecond), p.BlobStats(id).Requests)
			})
		}
	})
}

// TestDripFedBody: timeout bounds a whole exchange, as upstream's total
// request timeout does. A body that keeps flowing slowly within it
// completes; one drip-fed past it fails soon after the timeout instead of
// holding the read (and the FUSE request behind it) for as long as the
// server likes.
func TestDripFedBody(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(300_000)
	id := reg.Push(t, "app", data)
	p := faultproxy.New(t, reg.URL)
	p.SetBandwidth(200_000) // 1.5 s for the whole blob
	b := newReg(t, p.Host(), map[string]any{"timeout": 3, "retry_limit": 0})
	blob, _ := b.Open(context.Background(), id)
	buf := make([]byte, len(data))
	start := time.Now()
	if k, err := blob.ReadAt(context.Background(), buf, 0); err != nil || k != len(data) || !bytes.Equal(buf, data) {
		t.Fatalf("slow read within the timeout: %d %v", k, err)
	}
	if d := time.Since(start); d < 1200*time.Millisecond {
		t.Fatalf("read took %v: the bandwidth cap did not apply", d)
	}

	p.SetBandwidth(20_000) // 15 s for the whole blob, never silent for long
	b = newReg(t, p.Host(), map[string]any{"timeout": 1, "retry_limit": 1})
	blob, _ = b.Open(context.Background(), id)
	start = time.Now()
	k, err := blob.ReadAt(context.Background(), buf, 0)
	if err == nil {
		t.Fatalf("a drip-fed read past the timeout returned %d bytes", k)
	}
	// Two attempts of 1 s and a backoff between them.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a drip-fed read took %v to fail with timeout 1 s and one retry: %v", d, err)
	}
	t.Logf("drip-fed read failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// TestFlippedByteReturnedAsIs: the backend cannot tell a corrupted byte
// (the storage chain's digest check does); it returns exactly what the
// network delivered.
func TestFlippedByteReturnedAsIs(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(200_000)
	id := reg.Push(t, "app", data)
	p := faultproxy.New(t, reg.URL)
	const at = 123_457
	flips := p.Add(faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Fault: faultproxy.Fault{Body: faultproxy.BodyFlip, At: at}})
	b := newReg(t, p.Host(), nil)
	blob, _ := b.Open(context.Background(), id)
	for _, off := range []int64{0, 100_000, at} {
		buf := make([]byte, 50_000)
		if _, err := blob.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(data[off : off+int64(len(buf))])
		if at >= off && at < off+int64(len(buf)) {
			want[at-off] ^= 0xff
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("read at %d differs from the data with byte %d flipped", off, at)
		}
	}
	if flips.Count() != 3 {
		t.Fatalf("flip rule applied %d times", flips.Count())
	}
}

// TestRangeIgnored: a server answering 200 with the whole blob is usable
// for a read from offset 0 and rejected clearly elsewhere, never misread.
func TestRangeIgnored(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(100_000)
	id := reg.Push(t, "app", data)
	p := faultproxy.New(t, reg.URL)
	p.Add(faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Fault: faultproxy.Fault{DropRange: true}})
	b := newReg(t, p.Host(), nil)
	blob, _ := b.Open(context.Background(), id)
	buf := make([]byte, 5000)
	if k, err := blob.ReadAt(context.Background(), buf, 0); err != nil || k != len(buf) || !bytes.Equal(buf, data[:len(buf)]) {
		t.Fatalf("read at 0: %d %v", k, err)
	}
	if _, err := blob.ReadAt(context.Background(), buf, 10); err == nil || !strings.Contains(err.Error(), "ignored Range") {
		t.Fatalf("read at 10 through a range-ignoring server: %v", err)
	}
}

// TestContextCancel: a read stuck on a stalled body returns as soon as
// its context ends, well before the backend's own timeout.
func TestContextCancel(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(100_000)
	id := reg.Push(t, "app", data)
	p := faultproxy.New(t, reg.URL)
	p.Add(faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Fault: faultproxy.Fault{Body: faultproxy.BodyStall, At: 10}})
	b := newReg(t, p.Host(), map[string]any{"timeout": 30})
	blob, _ := b.Open(context.Background(), id)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := blob.ReadAt(ctx, make([]byte, 1000), 0)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled read: %v after %v", err, time.Since(start))
	}
}
