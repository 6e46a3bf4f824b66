package digest

import (
	"encoding/hex"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
)

func TestKnownAnswers(t *testing.T) {
	// Published test vectors for the empty input.
	if got := hex.EncodeToString(func() []byte { d := Sum(layout.DigestBlake3, nil); return d[:] }()); got != "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" {
		t.Fatalf("blake3(\"\") = %s", got)
	}
	if got := hex.EncodeToString(func() []byte { d := Sum(layout.DigestSHA256, nil); return d[:] }()); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("sha256(\"\") = %s", got)
	}
	if got := CRC32C([]byte("123456789")); got != 0xe3069283 {
		t.Fatalf("crc32c = %#x", got)
	}
}
