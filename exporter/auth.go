package exporter

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/buildkit/session"
	sessionauth "github.com/moby/buildkit/session/auth"
)

// authCredentials asks the client (buildx, buildctl) for registry
// credentials over the build's session, as BuildKit's own push does.
func authCredentials(ctx context.Context, sm *session.Manager, g session.Group) func(host string) (user, secret string, err error) {
	if sm == nil {
		return nil
	}
	f := sessionauth.CredentialsFunc(ctx, sm, g)
	return func(host string) (string, string, error) {
		_, u, s, err := f(host)
		return u, s, err
	}
}

// sessionKeychain resolves registry credentials through the client's
// session, falling back to the daemon's docker config.
type sessionKeychain struct {
	creds func(host string) (user, secret string, err error)
}

func (k sessionKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.creds != nil {
		host := r.RegistryStr()
		if host == "index.docker.io" {
			host = "registry-1.docker.io"
		}
		if u, s, err := k.creds(host); err == nil && (u != "" || s != "") {
			if u == "" {
				return authn.FromConfig(authn.AuthConfig{IdentityToken: s}), nil
			}
			return authn.FromConfig(authn.AuthConfig{Username: u, Password: s}), nil
		}
	}
	return authn.DefaultKeychain.Resolve(r)
}
