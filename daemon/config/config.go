// Package config reads nydusd configuration files: the v2 JSON format
// ("version": 2) and the legacy v1 JSON that nydus-snapshotter and the
// Docker graphdriver write, converted to v2 as upstream does. Backend
// sections are kept as raw JSON for the backend package to decode.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/gonydus/nydus/storage"
)

// MaxSize bounds a configuration file (upstream: 1 MiB).
const MaxSize = 1 << 20

// Config is a nydusd configuration in v2 form.
type Config struct {
	Version int      `json:"version"`
	ID      string   `json:"id,omitempty"`
	Backend Backend  `json:"backend"`
	Cache   Cache    `json:"cache"`
	Rafs    Rafs     `json:"rafs"`
	Overlay *Overlay `json:"overlay,omitempty"`
}

// Backend is the backend section: a type and that type's settings.
type Backend struct {
	Type string
	// Settings is the raw JSON of the type's section (v2 backend.<type>,
	// v1 device.backend.config).
	Settings json.RawMessage
}

// MarshalJSON writes the v2 shape {"type": T, "<T>": {...}}.
func (b Backend) MarshalJSON() ([]byte, error) {
	m := map[string]any{"type": b.Type}
	if len(b.Settings) > 0 {
		m[b.Type] = b.Settings
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the v2 shape.
func (b *Backend) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if err := json.Unmarshal(m["type"], &b.Type); err != nil {
		return fmt.Errorf("backend.type: %w", err)
	}
	b.Settings = m[b.Type]
	return nil
}

// Rafs is the v2 "rafs" section.
type Rafs struct {
	Mode            string   `json:"mode"`
	BatchSize       uint64   `json:"batch_size"`
	Validate        bool     `json:"validate"`
	EnableXattr     bool     `json:"enable_xattr"`
	IostatsFiles    bool     `json:"iostats_files"`
	AccessPattern   bool     `json:"access_pattern"`
	LatestReadFiles bool     `json:"latest_read_files"`
	Prefetch        Prefetch `json:"prefetch"`
}

// Overlay is the v2 "overlay" section (userspace writable overlay).
type Overlay struct {
	UpperDir string `json:"upper_dir"`
	WorkDir  string `json:"work_dir"`
}

// legacy is the v1 format.
type legacy struct {
	Device struct {
		ID      string `json:"id"`
		Backend struct {
			Type   string          `json:"type"`
			Config json.RawMessage `json:"config"`
		} `json:"backend"`
		Cache LegacyCache `json:"cache"`
	} `json:"device"`
	Mode            string         `json:"mode"`
	DigestValidate  bool           `json:"digest_validate"`
	IostatsFiles    bool           `json:"iostats_files"`
	EnableXattr     bool           `json:"enable_xattr"`
	AccessPattern   bool           `json:"access_pattern"`
	LatestReadFiles bool           `json:"latest_read_files"`
	AmplifyIO       *uint64        `json:"amplify_io"`
	FSPrefetch      LegacyPrefetch `json:"fs_prefetch"`
	Overlay         *Overlay       `json:"overlay"`
}

// Load reads and parses a configuration file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("config: %s is %d bytes, more than the 1 MiB limit", path, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a configuration as upstream nydusd does: JSON (v2, or the
// legacy v1 layout), else TOML (v2: upstream's nydusd-config-v2.toml),
// and validates the result.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, errors.New("configuration larger than 1 MiB")
	}
	var probe struct {
		Version int `json:"version"`
	}
	if jerr := json.Unmarshal(data, &probe); jerr != nil {
		converted, terr := tomlToJSON(data)
		if terr != nil {
			return nil, fmt.Errorf("neither JSON (%w) nor TOML (%w)", jerr, terr)
		}
		data = converted
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, err
		}
		if probe.Version != 2 {
			return nil, fmt.Errorf("a TOML configuration must say version = 2 (it says %d): the v1 layout is JSON only", probe.Version)
		}
	}
	var c *Config
	if probe.Version == 2 {
		c = &Config{Rafs: Rafs{BatchSize: storage.DefaultAmplify, Prefetch: DefaultPrefetch()}}
		c.Cache.Prefetch = DefaultPrefetch()
		if err := json.Unmarshal(data, c); err != nil {
			return nil, err
		}
	} else {
		l := legacy{FSPrefetch: DefaultLegacyPrefetch()}
		if err := json.Unmarshal(data, &l); err != nil {
			return nil, err
		}
		c = fromLegacy(&l)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func fromLegacy(l *legacy) *Config {
	pf := l.FSPrefetch.V2()
	c := &Config{
		Version: 2,
		ID:      l.Device.ID,
		Backend: Backend{Type: l.Device.Backend.Type, Settings: l.Device.Backend.Config},
		Cache:   l.Device.Cache.V2(pf),
		Rafs: Rafs{Mode: l.Mode, Validate: l.DigestValidate, EnableXattr: l.EnableXattr, IostatsFiles: l.IostatsFiles,
			AccessPattern: l.AccessPattern, LatestReadFiles: l.LatestReadFiles, BatchSize: storage.DefaultAmplify, Prefetch: pf},
		Overlay: l.Overlay,
	}
	if l.AmplifyIO != nil {
		c.Rafs.BatchSize = *l.AmplifyIO
	}
	return c
}

// Validate checks the settings nydusd checks.
func (c *Config) Validate() error {
	switch c.Rafs.Mode {
	case "", "direct":
		c.Rafs.Mode = "direct"
	case "cached":
		return errors.New("rafs mode \"cached\" applies to RAFS v5 only; use \"direct\"")
	default:
		return fmt.Errorf("invalid rafs mode %q (want direct)", c.Rafs.Mode)
	}
	if c.Backend.Type == "" {
		return errors.New("backend type is missing")
	}
	if len(c.Backend.Settings) == 0 || string(c.Backend.Settings) == "null" {
		return fmt.Errorf("backend type %q has no %q section", c.Backend.Type, c.Backend.Type)
	}
	if c.Rafs.BatchSize > storage.MaxAmplify {
		return fmt.Errorf("rafs batch_size (amplify_io) %d above %d", c.Rafs.BatchSize, storage.MaxAmplify)
	}
	if _, err := c.Cache.Kind(); err != nil {
		return err
	}
	return nil
}

// secretKeys are setting names whose values never leave the daemon.
var secretKeys = []string{"auth", "registry_token", "access_key_secret", "access_key_id", "encryption_key", "password", "token"}

// Redacted returns the configuration as JSON with secrets replaced, for
// the API and logs.
func (c *Config) Redacted() json.RawMessage {
	b, err := json.Marshal(c)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return json.RawMessage(`{}`)
	}
	redact(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return json.RawMessage(`{}`)
	}
	return bytes.TrimSpace(buf.Bytes())
}

func redact(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			switch {
			case isSecretKey(k):
				if str, ok := val.(string); ok && str != "" {
					t[k] = "<redacted>"
				}
			case strings.EqualFold(k, "headers"):
				// Mirror and proxy headers carry Authorization and the like:
				// keep the names, never the values.
				if h, ok := val.(map[string]any); ok {
					for name := range h {
						h[name] = "<redacted>"
					}
				}
			}
			if str, ok := t[k].(string); ok {
				t[k] = redactURL(str)
			}
			redact(t[k])
		}
	case []any:
		for i, e := range t {
			if str, ok := e.(string); ok {
				t[i] = redactURL(str)
			}
			redact(e)
		}
	}
}

func isSecretKey(k string) bool {
	for _, s := range secretKeys {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// redactURL hides the password of a URL with userinfo (a proxy URL such as
// http://user:pass@proxy:3128); other strings are returned as they are.
func redactURL(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}

// tomlToJSON re-encodes a TOML document as JSON, so that one decoder (and
// its field names, which TOML shares with JSON) reads both.
func tomlToJSON(data []byte) ([]byte, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}
