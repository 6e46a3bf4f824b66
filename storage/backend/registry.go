package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// RegistryConfig is the registry backend section.
type RegistryConfig struct {
	Scheme             string         `json:"scheme"`
	Host               string         `json:"host"`
	Repo               string         `json:"repo"`
	Auth               string         `json:"auth"`
	RegistryToken      string         `json:"registry_token"`
	BlobURLScheme      string         `json:"blob_url_scheme"`
	BlobRedirectedHost string         `json:"blob_redirected_host"`
	SkipVerify         bool           `json:"skip_verify"`
	CACertFiles        []string       `json:"ca_cert_files"`
	Timeout            int            `json:"timeout"`
	ConnectTimeout     int            `json:"connect_timeout"`
	RetryLimit         int            `json:"retry_limit"`
	Proxy              ProxyConfig    `json:"proxy"`
	Mirrors            []MirrorConfig `json:"mirrors"`
}

// DefaultRegistryConfig returns upstream's defaults.
func DefaultRegistryConfig() RegistryConfig {
	return RegistryConfig{Timeout: 5, ConnectTimeout: 5, Proxy: ProxyConfig{Fallback: true, CheckInterval: 5}}
}

// Registry reads blobs from an OCI distribution registry.
type Registry struct {
	cfg     RegistryConfig
	kind    string // "registry", or "http-proxy" when it serves HTTPProxy
	log     *slog.Logger
	client  *http.Client
	timeout time.Duration
	tokens  *tokenSource
	creds   *credentials
	proxy   *proxyRoute // nil without a proxy
	mirrors []*mirror
	m       metrics

	mu        sync.Mutex
	scheme    string            // resolved scheme when cfg.Scheme is ""
	redirects map[string]string // blob id -> redirected blob URL
	challenge *challenge
}

// NewRegistry returns a registry backend.
func NewRegistry(c RegistryConfig, o *options) (*Registry, error) {
	if c.Host == "" || c.Repo == "" {
		return nil, errors.New("backend: registry needs host and repo")
	}
	switch c.Scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("backend: registry scheme %q (want http, https or empty for auto)", c.Scheme)
	}
	if c.Timeout <= 0 {
		c.Timeout = 5
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5
	}
	c.RetryLimit = max(c.RetryLimit, 0)
	creds, keychainToken, lookup, err := registryCredentials(context.Background(), c, o)
	if err != nil {
		return nil, fmt.Errorf("backend: registry %s: %w", c.Host, err)
	}
	proxy, err := newProxyRoute(c.Proxy)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := tlsConfig(c.SkipVerify, c.CACertFiles)
	if err != nil {
		return nil, fmt.Errorf("backend: registry %s: %w", c.Host, err)
	}
	timeout := time.Duration(c.Timeout) * time.Second
	connect := time.Duration(c.ConnectTimeout) * time.Second
	dial := (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	if o.dial != nil {
		dial = o.dial
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSClientConfig:       tlsConfig,
	}
	r := &Registry{cfg: c, kind: "registry", log: o.log, timeout: timeout, creds: creds, proxy: proxy,
		scheme: c.Scheme, redirects: map[string]string{}}
	r.client = &http.Client{Transport: transport, CheckRedirect: r.checkRedirect}
	r.tokens = &tokenSource{creds: creds, lookup: lookup, allowPlain: c.Scheme == "http"}
	r.tokens.client = &http.Client{Transport: transport, Timeout: 2 * timeout, CheckRedirect: r.tokens.checkRedirect}
	if c.RegistryToken == "" && creds == nil {
		c.RegistryToken = keychainToken // a registry token from docker config
	}
	if c.RegistryToken != "" {
		r.tokens.token, r.tokens.static = c.RegistryToken, true
	}
	r.mirrors = newMirrors(c.Mirrors, c.Scheme)
	return r, nil
}

// Type implements Backend.
func (r *Registry) Type() string { return r.kind }

// Metrics implements Backend.
func (r *Registry) Metrics() MetricsSnapshot { return r.m.snapshot(r.kind) }

// Close implements Backend.
func (r *Registry) Close() error {
	r.client.CloseIdleConnections()
	return nil
}

// Open implements Backend. The blob is not contacted until it is read.
func (r *Registry) Open(ctx context.Context, id string) (Blob, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return &registryBlob{r: r, id: strings.TrimPrefix(id, "sha256:"), size: -1}, nil
}

func (r *Registry) blobURL(scheme, id string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/sha256:%s", scheme, r.cfg.Host, r.cfg.Repo, id)
}

// schemes returns the schemes to try, the resolved one first.
func (r *Registry) schemes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scheme != "" {
		return []string{r.scheme}
	}
	return []string{"https", "http"}
}

// tlsConfig trusts the system roots plus the PEM certificates in caFiles,
// or nothing at all with skipVerify.
func tlsConfig(skipVerify bool, caFiles []string) (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: skipVerify} //nolint:gosec // user's choice: skip_verify
	if len(caFiles) == 0 {
		return c, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ca_cert_files: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert_files: %s holds no PEM certificate", f)
		}
	}
	c.RootCAs = pool
	return c, nil
}
