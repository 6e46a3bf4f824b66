package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
)

// credentials are what a registry accepts for its token realm or basic
// auth: a user and password, or an identity (refresh) token. Never printed.
type credentials struct {
	user, pass    string
	identityToken string // OAuth2 refresh token (docker config "identitytoken")
}

func (c *credentials) String() string { return "credentials(redacted)" }

// decodeAuth decodes base64 "user:pass".
func decodeAuth(s string) (*credentials, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("auth is not base64 of user:password")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("auth is not base64 of user:password")
	}
	return &credentials{user: user, pass: pass}, nil
}

// WithKeychain replaces the docker config ($DOCKER_CONFIG or
// $HOME/.docker, with its credential helpers) as the last source of
// registry credentials, after the configured auth and IMAGE_PULL_AUTH
// (nydusify: the keychain it pulls and pushes with).
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error {
		if kc == nil {
			return errors.New("backend: nil keychain")
		}
		o.keychain = kc
		return nil
	}
}

// defaultCredentialTimeout bounds a keychain's answer unless
// withCredentialTimeout says otherwise.
const defaultCredentialTimeout = 30 * time.Second

// withCredentialTimeout bounds how long a keychain (a credential helper)
// may take to answer; 30 s by default.
func withCredentialTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("backend: credential timeout must be positive")
		}
		o.credentialTimeout = d
		return nil
	}
}

// dockerConfig is docker's config.json in $DOCKER_CONFIG, else
// $HOME/.docker, read by docker's own loader: "auths" entries (auth,
// username/password, identitytoken, registrytoken), "credsStore" and
// "credHelpers" (docker-credential-* programs on PATH).
type dockerConfig struct {
	env func(string) string
}

// Resolve implements authn.Keychain.
func (d dockerConfig) Resolve(r authn.Resource) (authn.Authenticator, error) {
	dir := d.env("DOCKER_CONFIG")
	if dir == "" {
		home := d.env("HOME")
		if home == "" {
			return authn.Anonymous, nil
		}
		dir = filepath.Join(home, ".docker")
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, errors.New("docker config.json is not valid")
	}
	host := r.RegistryStr()
	keys := []string{host}
	switch host {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		keys = append(keys, authn.DefaultAuthKey)
	}
	for _, key := range keys {
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("docker config credentials for %s: %w", host, err)
		}
		if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
		}
	}
	return authn.Anonymous, nil
}

// registryResource names a registry host for a keychain.
type registryResource string

func (r registryResource) String() string      { return string(r) }
func (r registryResource) RegistryStr() string { return string(r) }

// keychainAuth asks kc for host's credentials: user and password,
// identity token, or a registry token (returned apart: a bearer token used
// as is, like registry_token).
func keychainAuth(ctx context.Context, kc authn.Keychain, host string) (*credentials, string, error) {
	type answer struct {
		creds *credentials
		token string
		err   error
	}
	done := make(chan answer, 1)
	go func() { // a credential helper may hang: wait only as long as ctx
		c, tok, err := keychainAsk(ctx, kc, host)
		done <- answer{c, tok, err}
	}()
	select {
	case a := <-done:
		return a.creds, a.token, a.err
	case <-ctx.Done():
		return nil, "", fmt.Errorf("credentials for %s: %w", host, ctx.Err())
	}
}

func keychainAsk(ctx context.Context, kc authn.Keychain, host string) (*credentials, string, error) {
	a, err := authn.Resolve(ctx, kc, registryResource(host))
	if err != nil {
		return nil, "", err
	}
	ac, err := authn.Authorization(ctx, a)
	if err != nil {
		return nil, "", err
	}
	switch {
	case ac.RegistryToken != "":
		return nil, ac.RegistryToken, nil
	case ac.IdentityToken != "":
		return &credentials{user: ac.Username, identityToken: ac.IdentityToken}, "", nil
	case ac.Username != "" || ac.Password != "":
		return &credentials{user: ac.Username, pass: ac.Password}, "", nil
	case ac.Auth != "":
		c, err := decodeAuth(ac.Auth)
		return c, "", err
	}
	return nil, "", nil
}

// dockerConfigAuth finds host's credentials in docker's config.json.
func dockerConfigAuth(env func(string) string, host string) (*credentials, error) {
	c, _, err := keychainAuth(context.Background(), dockerConfig{env: env}, host)
	return c, err
}

// registryCredentials resolves a registry's credentials as nydusd does:
// the configured auth, overridden by IMAGE_PULL_AUTH, else the keychain
// (docker config by default). A registry token from the keychain is
// returned apart; the configured registry_token is handled by the caller.
// Credentials from the keychain come with a lookup that asks it again (a
// credential helper's answer may have changed since: rotated passwords,
// short-lived tokens).
func registryCredentials(ctx context.Context, c RegistryConfig, o *options) (*credentials, string, func(context.Context) (*credentials, error), error) {
	auth := c.Auth
	if env := o.env("IMAGE_PULL_AUTH"); env != "" {
		auth = env
	}
	if auth != "" {
		creds, err := decodeAuth(auth)
		return creds, "", nil, err
	}
	kc := o.keychain
	if kc == nil {
		kc = dockerConfig{env: o.env}
	}
	timeout := o.credentialTimeout
	if timeout <= 0 {
		timeout = defaultCredentialTimeout
	}
	ask, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	creds, token, err := keychainAuth(ask, kc, c.Host)
	if err != nil || creds == nil {
		return creds, token, nil, err
	}
	lookup := func(ctx context.Context) (*credentials, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c, _, err := keychainAuth(ctx, kc, c.Host)
		return c, err
	}
	return creds, token, lookup, nil
}
