package convert

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/gonydus/nydus/storage/backend"
	"github.com/google/go-containerregistry/pkg/authn"
)

// blobBackend returns our registry backend (range reads, retries, token
// refresh) for the endpoint's repository, authenticated with the
// endpoint's keychain, so check reads chunks the way nydusd does.
func (e *endpoint) blobBackend(ctx context.Context) (backend.Backend, error) {
	repo := e.repo()
	cfg := backend.DefaultRegistryConfig()
	cfg.Scheme = repo.Registry.Scheme()
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
