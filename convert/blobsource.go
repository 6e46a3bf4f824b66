package convert

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gonydus/nydus/storage/backend"
)

// blobBackend returns our registry backend (range reads, retries, token
// refresh) for the endpoint's repository, with the endpoint's keychain as
// its credential source (user and password, identity token or registry
// token, as the keychain answers), so check reads chunks the way nydusd
// does.
func (e *endpoint) blobBackend(ctx context.Context) (backend.Backend, error) {
	repo := e.repo()
	cfg := backend.DefaultRegistryConfig()
	cfg.Scheme = e.blobScheme(ctx)
	cfg.Host = repo.RegistryStr()
	cfg.Repo = repo.RepositoryStr()
	cfg.SkipVerify = e.insecure
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var opts []backend.Option
	if e.keychain != nil {
		opts = append(opts, backend.WithKeychain(e.keychain))
	}
	b, err := backend.New("registry", raw, opts...)
	if err != nil {
		return nil, fmt.Errorf("registry backend for %s: %w", repo, err)
	}
	return b, nil
}

// blobScheme picks the scheme for the blob backend the way the registry
// client's ping does: https unless the registry is insecure or local, and
// then https (unverified) when it answers, else plain http.
func (e *endpoint) blobScheme(ctx context.Context) string {
	repo := e.repo()
	if repo.Registry.Scheme() == "https" {
		return "https"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+repo.RegistryStr()+"/v2/", nil)
	if err != nil {
		return "http"
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // an insecure or local registry
	}}
	resp, err := client.Do(req)
	if err != nil {
		return "http"
	}
	resp.Body.Close()
	return "https"
}
