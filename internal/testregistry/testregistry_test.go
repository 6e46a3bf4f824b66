package testregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func fetch(t *testing.T, r *Registry, id, authz string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.URL+"/v2/app/blobs/sha256:"+id, nil)
	req.Header.Set("Range", "bytes=2-5")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestPushAndRangeRead(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *Registry{
		"inprocess": func(t testing.TB) *Registry { return &Start(t).Registry },
		"debian":    StartDebian,
	} {
		t.Run(name, func(t *testing.T) {
			r := start(t)
			id := r.Push(t, "app", []byte("0123456789"))
			if id != "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882" {
				t.Fatalf("id %s", id)
			}
			if code, b := fetch(t, r, id, ""); code != http.StatusPartialContent || string(b) != "2345" {
				t.Fatalf("range read: %d %q", code, b)
			}
		})
	}
}

func TestBlobCounters(t *testing.T) {
	r := Start(t)
	id := r.Push(t, "app", []byte("0123456789"))
	for range 2 {
		if code, b := fetch(t, &r.Registry, id, ""); code != http.StatusPartialContent || string(b) != "2345" {
			t.Fatalf("range read: %d %q", code, b)
		}
	}
	if r.BlobReads() != 2 || r.BlobBytes() != 8 {
		t.Fatalf("%d blob reads, %d bytes; want 2 and 8", r.BlobReads(), r.BlobBytes())
	}
}

func TestBearer(t *testing.T) {
	r := Start(t, WithBearer("u", "p", 200*time.Millisecond, 7))
	id := r.Push(t, "app", []byte("0123456789")) // uploads need no auth
	code, _ := fetch(t, &r.Registry, id, "")
	if code != http.StatusUnauthorized {
		t.Fatalf("anonymous read: %d", code)
	}
	// POST form.
	form := url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}, "client_id": {"c"}, "service": {"testregistry"}}
	resp, err := http.Post(r.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if body.AccessToken == "" || body.ExpiresIn != 7 {
		t.Fatalf("token response %+v", body)
	}
	if code, b := fetch(t, &r.Registry, id, "Bearer "+body.AccessToken); code != http.StatusPartialContent || !bytes.Equal(b, []byte("2345")) {
		t.Fatalf("read with token: %d", code)
	}
	time.Sleep(250 * time.Millisecond)
	if code, _ := fetch(t, &r.Registry, id, "Bearer "+body.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("expired token accepted: %d", code)
	}
	// GET with wrong Basic credentials.
	req, _ := http.NewRequest(http.MethodGet, r.URL+"/token?service=testregistry", nil)
	req.SetBasicAuth("u", "wrong")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password got a token: %d", resp.StatusCode)
	}
	if post, get := r.TokenRequests(); post != 1 || get != 1 {
		t.Fatalf("token requests %d POST %d GET", post, get)
	}
}

func TestPushRandom(t *testing.T) {
	r := Start(t)
	PushRandom(t, r.Host+"/app:latest", 1000, 2)
	resp, err := http.Get(r.URL + "/v2/app/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: HTTP %d", resp.StatusCode)
	}
}

func TestUploadAuthAndGrants(t *testing.T) {
	r := Start(t, WithBearer("u", "p", time.Hour, 0), WithUploadAuth(), WithRefreshToken("rt"))
	if _, err := Push(context.Background(), r.URL, "app", []byte("x")); err == nil {
		t.Fatal("an upload without a token was accepted")
	}
	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/token?service=testregistry", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	post := func(form url.Values) int {
		resp, err := http.Post(r.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	codes := []int{get("u", "p"), get("", ""), get("u", "wrong"),
		post(url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}, "client_id": {"c"}}),
		post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}, "client_id": {"c"}})}
	if want := []int{200, 401, 401, 200, 200}; !slices.Equal(codes, want) {
		t.Fatalf("token answers %v, want %v", codes, want)
	}
	want := map[string]int{"GET basic": 1, "denied": 2, "POST password": 1, "POST refresh_token": 1}
	if got := r.Grants(); !maps.Equal(got, want) {
		t.Fatalf("grants %v, want %v", got, want)
	}
}

func TestRequestRealm(t *testing.T) {
	for _, opts := range [][]Option{{WithBearer("u", "p", time.Hour, 0)}, {WithBearer("u", "p", time.Hour, 0), WithRequestRealm()}} {
		r := Start(t, opts...)
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/v2/app/blobs/sha256:"+strings.Repeat("0", 64), nil)
		req.Host = "front.example:5000"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := `realm="` + r.URL + `/token"`
		if len(opts) == 2 {
			want = `realm="http://front.example:5000/token"`
		}
		if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(c, want) {
			t.Fatalf("%d %q, want %s", resp.StatusCode, c, want)
		}
	}
}

func TestHold(t *testing.T) {
	r := Start(t)
	id := r.Push(t, "app", []byte("0123456789"))
	r.Hold()
	done := make(chan int, 1)
	go func() { // not fetch: no t.Fatal off the test's goroutine
		resp, err := http.Get(r.URL + "/v2/app/blobs/sha256:" + id)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for r.Held() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d blob GETs held, want 1", r.Held())
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("a held GET was answered: %d", code)
	case <-time.After(100 * time.Millisecond):
	}
	r.Release()
	select {
	case code := <-done:
		if code != http.StatusOK || r.Held() != 0 {
			t.Fatalf("released GET: %d, %d still held", code, r.Held())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a released GET was not answered in 10s")
	}
}
