package backend

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testregistry"
)

// dockerConfigEnv returns an env with DOCKER_CONFIG=dir only.
func dockerConfigEnv(dir string) func(string) string {
	return func(k string) string {
		if k == "DOCKER_CONFIG" {
			return dir
		}
		return ""
	}
}

// TestCredentialHelpers: docker config's credHelpers and credsStore run
// a docker-credential-* program found on PATH, whose answer logs in to a
// registry with token auth.
func TestCredentialHelpers(t *testing.T) {
	helper := testregistry.WriteCredentialHelper(t, "alice", "pw")
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "pw", time.Hour, 3600))
	data := randomData(50_000)
	id := reg.Push(t, "app", data)
	for name, cfg := range map[string]any{
		"credHelpers": map[string]any{"credHelpers": map[string]string{reg.Host: helper.Name}},
		"credsStore":  map[string]any{"credsStore": helper.Name, "auths": map[string]any{reg.Host: map[string]string{}}},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(helper.Asked())
			readBack(t, newReg(t, reg.Host, nil, WithEnv(dockerConfigEnv(testregistry.DockerConfig(t, cfg)))), id, data)
			if asked := helper.Asked()[before:]; !slices.Contains(asked, reg.Host) {
				t.Fatalf("helper asked about %q, not %s", asked, reg.Host)
			}
		})
	}
	if post, _ := reg.TokenRequests(); post < 2 {
		t.Fatalf("%d token POSTs; want the helper's password in an OAuth2 form", post)
	}
	// A helper answering for another user: the realm refuses, a clear 401.
	wrong := testregistry.WriteCredentialHelper(t, "mallory", "nope")
	t.Setenv("PATH", wrong.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	err := readErr(t, newReg(t, reg.Host, map[string]any{"retry_limit": 0}, WithEnv(dockerConfigEnv(testregistry.DockerConfig(t,
		map[string]any{"credHelpers": map[string]string{reg.Host: wrong.Name}})))), id)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong helper credentials: %v", err)
	}
}

// TestIdentityToken: an "identitytoken" in docker config, or a helper
// answering user "<token>", is an OAuth2 refresh token: tokens come from
// the refresh_token grant, also after the server drops them.
func TestIdentityToken(t *testing.T) {
	helper := testregistry.WriteCredentialHelper(t, "<token>", "refresh-123")
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "pw", time.Hour, 3600), testregistry.WithRefreshToken("refresh-123"))
	data := randomData(40_000)
	id := reg.Push(t, "app", data)
	for name, cfg := range map[string]any{
		"auths":      map[string]any{"auths": map[string]any{reg.Host: map[string]string{"identitytoken": "refresh-123"}}},
		"credHelper": map[string]any{"credHelpers": map[string]string{reg.Host: helper.Name}},
	} {
		t.Run(name, func(t *testing.T) {
			before := reg.RefreshGrants()
			b := newReg(t, reg.Host, nil, WithEnv(dockerConfigEnv(testregistry.DockerConfig(t, cfg))))
			readBack(t, b, id, data)
			reg.ExpireTokens()
			readBack(t, b, id, data)
			if got := reg.RefreshGrants() - before; got != 2 {
				t.Fatalf("%d refresh-token grants; want 2 (first token, then after expiry)", got)
			}
		})
	}
	// A wrong refresh token is refused by the realm.
	err := readErr(t, newReg(t, reg.Host, map[string]any{"retry_limit": 0}, WithEnv(dockerConfigEnv(testregistry.DockerConfig(t,
		map[string]any{"auths": map[string]any{reg.Host: map[string]string{"identitytoken": "stale"}}})))), id)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong identity token: %v", err)
	}
}

// TestCredentialPrecedence: the configured auth, overridden by
// IMAGE_PULL_AUTH (as upstream nydusd's main does), comes before docker
// config, whose helper is then not run.
func TestCredentialPrecedence(t *testing.T) {
	helper := testregistry.WriteCredentialHelper(t, "bob", "wrong")
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	reg := testregistry.Start(t, testregistry.WithBasic("bob", "pw"))
	data := randomData(10_000)
	id := reg.Push(t, "app", data)
	dir := testregistry.DockerConfig(t, map[string]any{"credsStore": helper.Name})
	env := func(pull string) func(string) string {
		return func(k string) string {
			switch k {
			case "DOCKER_CONFIG":
				return dir
			case "IMAGE_PULL_AUTH":
				return pull
			}
			return ""
		}
	}
	readBack(t, newReg(t, reg.Host, map[string]any{"auth": basicAuth("bob", "pw")}, WithEnv(env(""))), id, data)
	readBack(t, newReg(t, reg.Host, map[string]any{"auth": basicAuth("bob", "bad")}, WithEnv(env(basicAuth("bob", "pw")))), id, data)
	if asked := helper.Asked(); len(asked) != 0 {
		t.Fatalf("helper asked about %q although auth was configured", asked)
	}
	if err := readErr(t, newReg(t, reg.Host, map[string]any{"retry_limit": 0}, WithEnv(env(""))), id); err == nil {
		t.Fatal("read with the helper's wrong password succeeded")
	}
	if asked := helper.Asked(); !slices.Contains(asked, reg.Host) {
		t.Fatalf("helper asked about %q", asked)
	}
}

// TestCredentialHelperRotation: a credential helper whose answer changed
// (a rotated password, a new short-lived token) is asked again when the
// realm refuses what it said before; configured credentials are not.
func TestCredentialHelperRotation(t *testing.T) {
	helper := testregistry.WriteCredentialHelper(t, "alice", "old-pw")
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "pw", time.Hour, 3600))
	data := randomData(20_000)
	id := reg.Push(t, "app", data)
	b := newReg(t, reg.Host, map[string]any{"retry_limit": 0}, WithEnv(dockerConfigEnv(testregistry.DockerConfig(t,
		map[string]any{"credHelpers": map[string]string{reg.Host: helper.Name}}))))
	if err := readErr(t, b, id); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("read with the helper's old password: %v", err)
	}
	asked := len(helper.Asked())
	helper.SetAnswer(t, "alice", "pw")
	readBack(t, b, id, data)
	if n := len(helper.Asked()); n != asked+1 {
		t.Fatalf("helper asked %d times after the refusal; want once", n-asked)
	}
}

// TestCredentialHelperHangs: a credential helper that does not answer
// fails the backend's construction after the credential timeout instead
// of hanging it.
func TestCredentialHelperHangs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/docker-credential-gonydusslow", []byte("#!/bin/sh\nexec sleep 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg := testregistry.DockerConfig(t, map[string]any{"credsStore": "gonydusslow"})
	start := time.Now()
	_, err := New("registry", []byte(`{"host":"slow.example","repo":"app"}`), WithEnv(dockerConfigEnv(cfg)), withCredentialTimeout(300*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("hanging helper: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}
