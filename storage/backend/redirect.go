package backend

import (
	"errors"
	"net/http"
	"net/url"
)

// checkRedirect follows a registry's redirect to blob storage: without
// the registry's credentials, and by the configured blob_url_scheme and
// blob_redirected_host.
func (r *Registry) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("too many redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
		rewritten, err := url.Parse(r.rewriteRedirect(req.URL))
		if err != nil {
			return err
		}
		req.URL = rewritten
	}
	return nil
}

// redirected reports whether resp came from somewhere other than the
// registry or its proxy, i.e. a redirect to blob storage worth caching.
func (r *Registry) redirected(resp *http.Response) bool {
	if resp.Request == nil {
		return false
	}
	host := resp.Request.URL.Host
	if host == r.cfg.Host {
		return false
	}
	if r.cfg.Proxy.URL != "" {
		if p, err := url.Parse(r.cfg.Proxy.URL); err == nil && p.Host == host {
			return false
		}
	}
	return true
}

func (r *Registry) rewriteRedirect(u *url.URL) string {
	v := *u
	if r.cfg.BlobURLScheme != "" {
		v.Scheme = r.cfg.BlobURLScheme
	}
	if r.cfg.BlobRedirectedHost != "" {
		v.Host = r.cfg.BlobRedirectedHost
	}
	return v.String()
}

// cachedRedirect returns the blob's cached storage URL, if any.
func (r *Registry) cachedRedirect(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.redirects[id]
}

func (r *Registry) setRedirect(id, u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u == "" {
		delete(r.redirects, id)
		return
	}
	r.redirects[id] = u
}
