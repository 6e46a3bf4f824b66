package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func upstream(t *testing.T, data []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, rng, authz string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func testData() []byte {
	b := make([]byte, 100_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func TestForwardAndCount(t *testing.T) {
	data := testData()
	p := New(t, upstream(t, data).URL)
	resp, body, err := get(t, p.URL+"/v2/app/blobs/sha256:abc", "bytes=10-19", "")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("forwarded range: %v %v", resp, err)
	}
	if _, body, err = get(t, p.URL+"/v2/app/blobs/sha256:abc", "", ""); err != nil || !bytes.Equal(body, data) {
		t.Fatalf("forwarded body: %v", err)
	}
	if s := p.BlobStats("abc"); s.Requests != 2 || s.Bytes != int64(10+len(data)) {
		t.Fatalf("stats %+v", s)
	}
}

func TestStatusFaults(t *testing.T) {
	data := testData()
	p := New(t, upstream(t, data).URL)
	_, _, _ = get(t, p.URL+"/auth", "", "") // the proxy learns the challenge
	in := p.Add(Rule{Path: "/blob", Skip: 1, Count: 2, Fault: Fault{Status: 429, Header: http.Header{"Retry-After": {"3"}}}})
	p.Add(Rule{Path: "/old", AuthUses: 1, Fault: Fault{Status: http.StatusUnauthorized}})
	var got []int
	for range 4 {
		resp, _, err := get(t, p.URL+"/blob", "", "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "3" {
			t.Fatal("Retry-After missing")
		}
	}
	if want := []int{200, 429, 429, 200}; !equal(got, want) || in.Count() != 2 {
		t.Fatalf("statuses %v, want %v (injected %d)", got, want, in.Count())
	}
	for i, want := range []int{200, 200, 401} {
		resp, _, err := get(t, p.URL+"/old", "", "Bearer t1")
		if err != nil || resp.StatusCode != want {
			t.Fatalf("use %d of a token: %v %v, want %d", i+1, resp.StatusCode, err, want)
		}
		if want == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer realm="x"` {
			t.Fatalf("401 without the upstream challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBodyFaults(t *testing.T) {
	data := testData()
	p := New(t, upstream(t, data).URL)
	p.Add(Rule{Path: "/reset", Fault: Fault{Body: BodyReset, At: 1000}})
	p.Add(Rule{Path: "/trunc", Fault: Fault{Body: BodyTruncate, At: 2000}})
	p.Add(Rule{Path: "/stall", Fault: Fault{Body: BodyStall, At: 3000}})
	p.Add(Rule{Path: "/flip", Fault: Fault{Body: BodyFlip, At: 50_000}})
	p.Add(Rule{Path: "/mid", Fault: Fault{Body: BodyFlipMiddle}})
	p.Add(Rule{Path: "/cr", Fault: Fault{ContentRange: "bytes 1-2/3"}})
	p.Add(Rule{Path: "/norange", Fault: Fault{DropRange: true}})
	for _, path := range []string{"/reset", "/trunc"} {
		_, body, err := get(t, p.URL+path, "", "")
		if err == nil || len(body) >= len(data) {
			t.Fatalf("%s: %d bytes, %v", path, len(body), err)
		}
	}
	start := time.Now()
	_, body, err := get(t, p.URL+"/stall", "", "")
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() || len(body) != 3000 || time.Since(start) < 2*time.Second {
		t.Fatalf("stall: %d bytes, %v after %v", len(body), err, time.Since(start))
	}
	_, body, err = get(t, p.URL+"/flip", "bytes=40000-59999", "")
	if err != nil || len(body) != 20_000 {
		t.Fatal(err)
	}
	for i := range body {
		if (body[i] != data[40_000+i]) != (i == 10_000) {
			t.Fatalf("byte %d: flipped wrongly", 40_000+i)
		}
	}
	for _, rng := range []string{"bytes=1000-1999", "bytes=5000-5099"} {
		_, body, err = get(t, p.URL+"/mid", rng, "")
		var from int
		fmt.Sscanf(rng, "bytes=%d-", &from)
		if err != nil || len(body) == 0 {
			t.Fatal(err)
		}
		for i := range body {
			if (body[i] != data[from+i]) != (i == len(body)/2) {
				t.Fatalf("%s: byte %d flipped wrongly", rng, i)
			}
		}
	}
	if resp, _, _ := get(t, p.URL+"/cr", "bytes=0-9", ""); resp.Header.Get("Content-Range") != "bytes 1-2/3" {
		t.Fatalf("Content-Range %q", resp.Header.Get("Content-Range"))
	}
	if resp, body, _ := get(t, p.URL+"/norange", "bytes=0-9", ""); resp.StatusCode != 200 || len(body) != len(data) {
		t.Fatalf("dropped Range: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestDelayAndBandwidth(t *testing.T) {
	data := testData()
	p := New(t, upstream(t, data).URL)
	p.Add(Rule{Path: "/slow", Fault: Fault{Delay: 300 * time.Millisecond}})
	start := time.Now()
	if _, _, err := get(t, p.URL+"/slow", "", ""); err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("delay: %v after %v", err, time.Since(start))
	}
	p.SetBandwidth(200_000)
	start = time.Now()
	if _, body, err := get(t, p.URL+"/capped", "", ""); err != nil || len(body) != len(data) {
		t.Fatal(err)
	}
	// 100 kB at 200 kB/s with a 20 kB burst: at least 0.4 s.
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("100 kB at 200 kB/s took %v", d)
	}
}
