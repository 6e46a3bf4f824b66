package backend

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfter: any Retry-After value gives a wait that is not negative,
// and a number of seconds is that many seconds.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "5", " 120 ", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT", "99999999999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := retryAfter(v)
		if d < 0 {
			t.Fatalf("Retry-After %q gave %v", v, d)
		}
		if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 && s <= 1<<20 && d != time.Duration(s)*time.Second {
			t.Fatalf("Retry-After %q gave %v", v, d)
		}
	})
}

// FuzzDockerConfigAuth reads fuzzed docker config.json files for a fuzzed
// host: no panic; credentials found are those of an "auths" entry of the
// file as docker's loader reads it (fileEntryGives).
func FuzzDockerConfigAuth(f *testing.F) {
	auth := base64.StdEncoding.EncodeToString([]byte("user:pa:ss"))
	f.Add([]byte(`{"auths":{"r.example.com":{"auth":"`+auth+`"}}}`), "r.example.com")
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"`+auth+`"}}}`), "docker.io")
	f.Add([]byte(`{"auths":{"http://r:5000":{"auth":"bm9jb2xvbg=="}}}`), "r:5000")
	f.Add([]byte(`{"auths":null}`), "x")
	f.Add([]byte(`{"auths":{"h":{"auth":"!!"}},"credsStore":"desktop"}`), "h")
	f.Add([]byte(`{"auths":{"h":{"auth":"0zoA"}}}`), "h")   // "\xd3:\x00": the loader trims NULs off the password
	f.Add([]byte(`{"auths":{"h":{"auth":"0zp="}}} x`), "h") // "\xd3:" written with a low bit set; the loader decodes one JSON value and ignores what follows
	f.Add([]byte(`{"auths":{"h":{"username":"a\"b","password":"\u00e9"}}}`), "h")
	f.Add([]byte(`{"auths":{"h":{"username":"u","identitytoken":"t\/k"}}}`), "h")
	f.Fuzz(func(t *testing.T, config []byte, host string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o600); err != nil {
			t.Fatal(err)
		}
		env := func(k string) string {
			if k == "DOCKER_CONFIG" {
				return dir
			}
			return ""
		}
		c, err := dockerConfigAuth(env, host)
		if err != nil || c == nil {
			return
		}
		if !fileEntryGives(config, c) {
			t.Fatalf("credentials (user %q, password %q, identity token %q) are not those of an entry of the file", c.user, c.pass, c.identityToken)
		}
		if strings.Contains(c.String(), c.pass) && c.pass != "" && !strings.Contains("credentials(redacted)", c.pass) {
			t.Fatal("String shows the password")
		}
	})
}

// fileEntryGives reports whether an "auths" entry of the docker config file
// gives c, by the rules of docker/cli's loader, restated here rather than
// called as our code calls it:
//   - the file is one JSON value; what follows it is ignored;
//   - an entry's "auth" is base64 of user, ':' and password, decoded
//     leniently (unused low bits set, line breaks inside); the loader splits
//     its whole decode buffer, whose unused tail is zeros, at the first ':'
//     and trims NUL bytes off both ends of the password;
//   - without "auth", "username" and "password" are used as they are;
//   - an "identitytoken" stands in for the password.
func fileEntryGives(config []byte, c *credentials) bool {
	var file struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	// Credentials were found, so docker's loader read the file's first JSON
	// value without error; the same decoder reads the same fields of it.
	if err := json.NewDecoder(bytes.NewReader(config)).Decode(&file); err != nil {
		return false
	}
	for _, e := range file.Auths {
		user, pass := e.Username, e.Password
		if e.Auth != "" {
			buf := make([]byte, base64.StdEncoding.DecodedLen(len(e.Auth)))
			if _, err := base64.StdEncoding.Decode(buf, []byte(e.Auth)); err != nil {
				continue
			}
			var ok bool
			if user, pass, ok = strings.Cut(string(buf), ":"); !ok {
				continue
			}
			pass = strings.Trim(pass, "\x00")
		}
		if user != c.user {
			continue
		}
		if c.identityToken != "" && e.IdentityToken == c.identityToken || c.identityToken == "" && pass == c.pass {
			return true
		}
	}
	return false
}

// bodyTransport answers every request with status and body.
type bodyTransport struct {
	status int
	body   []byte
}

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: b.status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b.body)), Request: r}, nil
}

// FuzzTokenResponse feeds fuzzed token-server answers to the bearer token
// source: no panic; a token is accepted only when the answer is JSON with
// a non-empty "token" or "access_token", and it is cached until expiry.
func FuzzTokenResponse(f *testing.F) {
	f.Add([]byte(`{"token":"t","expires_in":300}`), false)
	f.Add([]byte(`{"access_token":"a","expires_in":-1}`), true)
	f.Add([]byte(`{"token":"","access_token":""}`), false)
	f.Add([]byte(`{"token":"t","expires_in":1}`), true)
	f.Add([]byte(`[`), false)
	f.Fuzz(func(t *testing.T, body []byte, creds bool) {
		ts := &tokenSource{client: &http.Client{Transport: bodyTransport{http.StatusOK, body}}}
		ts.client.CheckRedirect = ts.checkRedirect
		if creds {
			ts.creds = &credentials{user: "u", pass: "p"}
		}
		ch := challenge{Scheme: "bearer", Params: map[string]string{"realm": "https://auth.example.com/token", "service": "s", "scope": "repository:a:pull"}}
		tok, err := ts.get(context.Background(), ch, "")
		if err != nil {
			return
		}
		if tok == "" {
			t.Fatal("empty token accepted")
		}
		// encoding/json matches field names without regard to case.
		if !bytes.Contains(bytes.ToLower(body), []byte("token")) {
			t.Fatalf("token %q from an answer without a token field", tok)
		}
		// A token is kept for at least half its announced lifetime (the
		// refresh margin is at most half of it).
		var announced struct {
			ExpiresIn int `json:"expires_in"`
		}
		if json.Unmarshal(body, &announced) == nil && announced.ExpiresIn > 0 {
			want := time.Duration(min(announced.ExpiresIn, 1<<20)) * time.Second / 2
			if left := time.Until(ts.expires); left < want-time.Second {
				t.Fatalf("expires_in %d: token kept for %v only", announced.ExpiresIn, left)
			}
		}
		// The next get answers from the cache while the token is fresh.
		if time.Now().Before(ts.expires) {
			ts.client = &http.Client{Transport: bodyTransport{http.StatusInternalServerError, nil}}
			if again, err := ts.get(context.Background(), ch, ""); err != nil || again != tok {
				t.Fatalf("cached token: %q, %v", again, err)
			}
		}
	})
}

// TestHugeRetryAfterAndExpiresIn: a Retry-After or expires_in of billions of
// seconds overflowed time.Duration (found by FuzzRetryAfter and
// FuzzTokenResponse): "9227000000" gave a negative wait, and expires_in
// 18446744074 kept a token for 0.15 s, so every read asked the realm
// again. Both saturate now.
func TestHugeRetryAfterAndExpiresIn(t *testing.T) {
	for _, v := range []string{"9227000000", "9223372036854775807", "18446744074"} {
		if d := retryAfter(v); d < maxRetryAfter {
			t.Errorf("Retry-After %s: %v", v, d)
		}
	}
	for _, n := range []string{"18446744074", "9223372036854775807", "9227000000"} {
		ts := &tokenSource{client: &http.Client{Transport: bodyTransport{http.StatusOK, []byte(`{"token":"t","expires_in":` + n + `}`)}}}
		ch := challenge{Scheme: "bearer", Params: map[string]string{"realm": "https://auth.example.com/token"}}
		if _, err := ts.get(context.Background(), ch, ""); err != nil {
			t.Fatal(err)
		}
		if left := time.Until(ts.expires); left < time.Hour {
			t.Errorf("expires_in %s: token kept for %v", n, left)
		}
	}
}
