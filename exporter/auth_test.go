package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// TestSessionKeychain: the client's session answers first (a password, or
// an identity token when it gives no user, as BuildKit's auth provider
// does); without an answer the daemon's docker config is used, credential
// helpers included.
func TestSessionKeychain(t *testing.T) {
	// The daemon's docker config: a helper for reg.example:5000.
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\n" +
		`printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pw"}\n' "$server"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-gonydustest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{"reg.example:5000": "gonydustest"}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)

	var askedHosts []string
	session := func(host string) (string, string, error) {
		askedHosts = append(askedHosts, host)
		switch host {
		case "pw.example":
			return "alice", "pw", nil
		case "token.example":
			return "", "refresh-1", nil
		}
		return "", "", errors.New("no credentials")
	}
	for _, tc := range []struct {
		repo, want string
		kc         sessionKeychain
	}{
		{"pw.example/app", "user=alice pass=pw", sessionKeychain{creds: session}},
		{"token.example/app", "identitytoken=refresh-1", sessionKeychain{creds: session}},
		{"reg.example:5000/app", "user=helper-user pass=helper-pw", sessionKeychain{creds: session}},
		{"reg.example:5000/app", "user=helper-user pass=helper-pw", sessionKeychain{}}, // no session
		{"other.example/app", "anonymous", sessionKeychain{creds: session}},
	} {
		repo, err := name.NewRepository(tc.repo)
		if err != nil {
			t.Fatal(err)
		}
		a, err := tc.kc.Resolve(repo)
		if err != nil {
			t.Fatalf("%s: %v", tc.repo, err)
		}
		ac, err := authn.Authorization(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		got := "anonymous"
		switch {
		case ac.IdentityToken != "":
			got = "identitytoken=" + ac.IdentityToken
		case ac.Username != "":
			got = fmt.Sprintf("user=%s pass=%s", ac.Username, ac.Password)
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.repo, got, tc.want)
		}
	}
	if strings.Join(askedHosts, " ") != "pw.example token.example reg.example:5000 other.example" {
		t.Errorf("session asked about %q", askedHosts)
	}
}
