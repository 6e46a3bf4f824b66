package testregistry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CredentialHelper is a docker credential helper program
// (docker-credential-<Name>) written into a test's temporary directory.
type CredentialHelper struct {
	Name string // the helper's name in credsStore / credHelpers
	Dir  string // the directory holding the program: put it on PATH

	log, answer string
}

// WriteCredentialHelper writes a docker-credential-gonydustest shell
// program that answers "get" for any server with user and secret (user
// "<token>" makes secret an identity token, as docker's protocol says),
// logs each server it was asked about, and fails other actions. The
// caller puts h.Dir on PATH; SetAnswer changes the answer.
func WriteCredentialHelper(t testing.TB, user, secret string) *CredentialHelper {
	t.Helper()
	dir := t.TempDir()
	h := &CredentialHelper{Name: "gonydustest", Dir: dir, log: filepath.Join(dir, "asked"), answer: filepath.Join(dir, "answer")}
	h.SetAnswer(t, user, secret)
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || { echo 'unsupported action' >&2; exit 1; }\nread -r server\necho \"$server\" >> %s\ncat %s\n",
		shellQuote(h.log), shellQuote(h.answer))
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+h.Name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// SetAnswer makes the helper answer user and secret from now on.
func (h *CredentialHelper) SetAnswer(t testing.TB, user, secret string) {
	t.Helper()
	answer, err := json.Marshal(map[string]string{"Username": user, "Secret": secret})
	if err != nil {
		t.Fatal(err)
	}
	tmp := h.answer + ".tmp"
	if err := os.WriteFile(tmp, append(answer, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.answer); err != nil {
		t.Fatal(err)
	}
}

// Asked returns the servers the helper was asked about, in order.
func (h *CredentialHelper) Asked() []string {
	b, err := os.ReadFile(h.log)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// DockerConfig writes a docker config.json with the given content into a
// new temporary directory and returns the directory (for DOCKER_CONFIG).
func DockerConfig(t testing.TB, content any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
