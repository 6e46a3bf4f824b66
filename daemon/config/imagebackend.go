package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
)

// MaxImageBackendSize bounds an image's backend file: it names a host and
// a repository, nothing more.
const MaxImageBackendSize = 4 << 10

// ImageBackend is the backend file a Docker-runnable nydus image carries
// (image/backend.json in its bootstrap layer): where the converter pushed
// the data blobs, in the shape of a v1 device.backend section. An image is
// untrusted input, so the file may only name a registry location: no
// other backend type, no credentials, proxies, mirrors or other settings.
// Whoever runs the image supplies those from its own configuration.
type ImageBackend struct {
	// Type is always "registry".
	Type   string        `json:"type"`
	Config ImageRegistry `json:"config"`
}

// ImageRegistry is the registry location an image's backend file names.
type ImageRegistry struct {
	// Scheme is "https" or "http", as the converter reached the registry.
	Scheme string `json:"scheme"`
	// Host is the registry host (and port) as in the image reference:
	// "registry.example.com:5000", "index.docker.io".
	Host string `json:"host"`
	// Repo is the repository path in that registry.
	Repo string `json:"repo"`
	// SkipVerify is set when the image was pushed with --target-insecure.
	SkipVerify bool `json:"skip_verify,omitempty"`
}

// imageCredentialKeys get their own error message: the most likely
// mistake is a converter that leaked credentials into an image.
var imageCredentialKeys = []string{"auth", "registry_token", "password", "username"}

// ParseImageBackend decodes an image's backend file strictly: a registry
// backend with a scheme, a well-formed host and repository, and no other
// key. Anything else is an error naming what was refused.
func ParseImageBackend(b []byte) (*ImageBackend, error) {
	if len(b) > MaxImageBackendSize {
		return nil, fmt.Errorf("image backend file is %d bytes, more than the %d a registry location needs", len(b), MaxImageBackendSize)
	}
	var raw struct {
		Type   string                     `json:"type"`
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("image backend file: %w", err)
	}
	if raw.Type != "registry" {
		return nil, fmt.Errorf("image backend file: backend type %q refused: an image may only name a registry", raw.Type)
	}
	for _, k := range imageCredentialKeys {
		if _, ok := raw.Config[k]; ok {
			return nil, fmt.Errorf("image backend file carries %q: credentials do not belong in an image", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f ImageBackend
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("image backend file: only type and config.{scheme,host,repo,skip_verify} are accepted: %w", err)
	}
	if err := f.Config.validate(); err != nil {
		return nil, fmt.Errorf("image backend file: %w", err)
	}
	return &f, nil
}

func (r ImageRegistry) validate() error {
	if r.Scheme != "http" && r.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", r.Scheme)
	}
	if err := validRegistryHost(r.Host); err != nil {
		return err
	}
	return validRepo(r.Repo)
}

// validRegistryHost accepts host[:port] with a DNS name, an IPv4 address
// or a bracketed IPv6 address: nothing that could smuggle userinfo, a
// path or a second URL into the requests built from it.
func validRegistryHost(h string) error {
	if h == "" {
		return errors.New("empty registry host")
	}
	if strings.Count(h, ":") > 1 && !strings.HasPrefix(h, "[") {
		return fmt.Errorf("registry host %q: an IPv6 address must be in brackets", h)
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if name, port, err = net.SplitHostPort(h); err != nil {
			if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
				name, port = h[1:len(h)-1], ""
			} else {
				return fmt.Errorf("registry host %q: %w", h, err)
			}
		}
	}
	if port != "" {
		if len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("registry host %q: bad port", h)
		}
	}
	if net.ParseIP(name) != nil {
		return nil
	}
	if len(name) > 253 {
		return fmt.Errorf("registry host %q: name too long", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("registry host %q: bad name", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("registry host %q: bad character %q", h, c)
			}
		}
	}
	return nil
}

// validRepo accepts a repository path as the distribution spec spells it:
// lower-case components of [a-z0-9._-] separated by single slashes.
func validRepo(r string) error {
	if r == "" || len(r) > 255 {
		return fmt.Errorf("repository %q: want 1 to 255 characters", r)
	}
	for _, comp := range strings.Split(r, "/") {
		if comp == "" || comp == "." || comp == ".." {
			return fmt.Errorf("repository %q: empty or dot path component", r)
		}
		for _, c := range comp {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("repository %q: bad character %q", r, c)
			}
		}
	}
	return nil
}
