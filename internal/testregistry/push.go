package testregistry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// Registry is a running registry.
type Registry struct {
	// URL is the base URL, http://127.0.0.1:port.
	URL string
	// Host is host:port, as a backend's host setting.
	Host string
}

// Push uploads data as a blob of repo and returns its sha256 hex id.
func (r *Registry) Push(t testing.TB, repo string, data []byte) string {
	t.Helper()
	id, err := Push(context.Background(), r.URL, repo, data)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Push uploads data to the registry at base (a URL) as a blob of repo with
// a monolithic upload (POST /v2/<repo>/blobs/uploads/, then PUT with the
// digest) and returns the blob's sha256 hex id.
func Push(ctx context.Context, base, repo string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("testregistry: start upload: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("testregistry: start upload: HTTP %d", resp.StatusCode)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	loc, err := b.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("testregistry: upload location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", "sha256:"+id)
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("testregistry: upload: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("testregistry: upload: HTTP %d", resp.StatusCode)
	}
	return id, nil
}
