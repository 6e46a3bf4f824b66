// Package digest computes RAFS chunk digests (blake3 or sha256 of the
// uncompressed chunk) and the CRC-32C chunk checksum.
package digest

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/zeebo/blake3"

	"github.com/gonydus/nydus/rafs/layout"
)

// Digest is a 32-byte chunk digest.
type Digest = [32]byte

// Sum returns the digest of data with the given algorithm.
func Sum(alg layout.Digester, data []byte) Digest {
	if alg == layout.DigestSHA256 {
		return sha256.Sum256(data)
	}
	return blake3.Sum256(data)
}

// New returns a streaming hash for the algorithm.
func New(alg layout.Digester) (hash.Hash, error) {
	switch alg {
	case layout.DigestBlake3:
		return blake3.New(), nil
	case layout.DigestSHA256:
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("digest: unsupported algorithm %d", alg)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the CRC-32C (iSCSI) checksum of data.
func CRC32C(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }
