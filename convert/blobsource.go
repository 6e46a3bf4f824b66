package convert

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gonydus/nydus/storage/backend"
	"github.com/google/go-containerregistry/pkg/authn"
)

// blobBackend returns our registry backend (range reads, retries, token
// refresh) for the endpoint's repository, authenticated with the
// endpoint's keychain, so check reads chunks the way nydusd does.
func (e *endpoint) blobBackend(ctx context.Context) (backend.Backend, error) {
	repo := e.repo()
	cfg := backend.DefaultRegistryConfig()
	cfg.Scheme = e.blobScheme(ctx)
	cfg.Host = repo.RegistryStr()
	cfg.Repo = repo.RepositoryStr()
	cfg.SkipVerify = e.insecure
	if e.keychain != nil {
		a, err := e.keychain.Resolve(repo)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", repo, err)
		}
		ac, err := authn.Authorization(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", repo, err)
		}
		switch {
		case ac.Auth != "":
			cfg.Auth = ac.Auth
		case ac.Username != "" || ac.Password != "":
			cfg.Auth = base64.StdEncoding.EncodeToString([]byte(ac.Username + ":" + ac.Password))
		}
		cfg.RegistryToken = ac.RegistryToken
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	b, err := backend.New("registry", raw)
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
