package backend

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/faultproxy"
	"github.com/gonydus/nydus/internal/testregistry"
)

// TestConcurrentReadsWithFaults: parallel readers of several blobs share
// one backend while tokens expire and the network misbehaves; every read
// returns the right bytes.
func TestConcurrentReadsWithFaults(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "pw", time.Hour, 3600))
	blobs := map[string][]byte{}
	for i := range 4 {
		data := randomData(300_000 + i)
		blobs[reg.Push(t, "app", data)] = data
	}
	p := faultproxy.New(t, reg.URL)
	get := func(f faultproxy.Fault, skip, count int) faultproxy.Rule {
		return faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Skip: skip, Count: count, Fault: f}
	}
	p.Add(get(faultproxy.Fault{Status: 503}, 5, 3))
	p.Add(get(faultproxy.Fault{Body: faultproxy.BodyReset, At: 100}, 20, 3))
	p.Add(get(faultproxy.Fault{Body: faultproxy.BodyTruncate, At: 4000}, 40, 3))
	p.Add(get(faultproxy.Fault{Status: 429, Header: http.Header{"Retry-After": {"0"}}}, 60, 3))
	b := newReg(t, p.Host(), map[string]any{"auth": basicAuth("alice", "pw"), "retry_limit": 4})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	first := true
	for id, data := range blobs {
		expirer := first // one reader expires every token half-way
		first = false
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				blob, _ := b.Open(context.Background(), id)
				for i := range 10 {
					off := (w*7919 + i*30_011) % (len(data) - 20_000)
					buf := make([]byte, 20_000)
					if _, err := blob.ReadAt(context.Background(), buf, int64(off)); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(buf, data[off:off+len(buf)]) {
						t.Errorf("blob %s at %d: wrong bytes", id[:8], off)
						return
					}
					if expirer && w == 0 && i == 4 {
						reg.ExpireTokens()
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	post, get2 := reg.TokenRequests()
	m := b.Metrics()
	t.Logf("%d reads, %d retries, %d token requests, %d 401s", m.ReadCount, m.Retries, post+get2, reg.Rejected())
	if m.Retries == 0 || post+get2 < 2 {
		t.Fatalf("faults or token expiry not exercised: %+v", m)
	}
	// Readers refused with the same expired token share one refresh.
	if post+get2 > 8 {
		t.Fatalf("%d token requests for %d refusals: no shared refresh", post+get2, reg.Rejected())
	}
}
