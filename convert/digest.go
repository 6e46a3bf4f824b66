package convert

import (
	"fmt"

	"github.com/opencontainers/go-digest"
)

// parseDigest parses a sha256 digest string.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w", s, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %q: only sha256 is supported", s)
	}
	return d, nil
}

// blobDigest returns the OCI digest of a RAFS blob id (its sha256 in hex).
func blobDigest(id string) digest.Digest { return digest.NewDigestFromEncoded(digest.SHA256, id) }

// digestOf returns the sha256 digest of b.
func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
