package convert

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// endpoint is one side of a conversion or check: a reference and how to
// reach its registry.
type endpoint struct {
	ref      name.Reference
	insecure bool
	keychain authn.Keychain
	opts     []remote.Option
}

// Remote says how to reach a registry. The zero value uses the default
// docker keychain (~/.docker/config.json, credential helpers), verifies
// TLS and uses plain HTTP only for loopback and private addresses.
type Remote struct {
	// Insecure skips TLS verification and allows plain HTTP
	// (nydusify's --source-insecure and --target-insecure).
	Insecure bool
	// Transport replaces the HTTP transport (tests, proxies).
	Transport http.RoundTripper
	// Keychain replaces the default docker keychain.
	Keychain authn.Keychain
}

// resolve parses ref and prepares the remote options to reach it.
func (r Remote) resolve(ctx context.Context, ref, what string) (*endpoint, error) {
	var nopts []name.Option
	if r.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	parsed, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%s reference %q: %w", what, ref, err)
	}
	tr := r.Transport
	if tr == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		if r.Insecure {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --*-insecure asks for it
		}
		tr = t
	}
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return &endpoint{ref: parsed, insecure: r.Insecure, keychain: kc, opts: []remote.Option{
		remote.WithContext(ctx), remote.WithTransport(tr), remote.WithAuthFromKeychain(kc),
		remote.WithUserAgent("gonydus-nydusify"),
	}}, nil
}

// repo returns the repository of the endpoint's reference.
func (e *endpoint) repo() name.Repository { return e.ref.Context() }

// parseRefIn returns "repo@digest" or "repo:tag" in e's repository.
func parseRefIn(e *endpoint, suffix string) (name.Reference, error) {
	var nopts []name.Option
	if e.insecure {
		nopts = append(nopts, name.Insecure)
	}
	sep := ":"
	if len(suffix) > 7 && suffix[:7] == "sha256:" {
		sep = "@"
	}
	r, err := name.ParseReference(e.repo().Name()+sep+suffix, nopts...)
	if err != nil {
		return nil, fmt.Errorf("reference %s%s%s: %w", e.repo().Name(), sep, suffix, err)
	}
	return r, nil
}

// withContext returns a copy of e whose requests use ctx.
func (e *endpoint) withContext(ctx context.Context) *endpoint {
	out := *e
	out.opts = append(e.opts[:len(e.opts):len(e.opts)], remote.WithContext(ctx))
	return &out
}
