package testregistry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// WriteImage pushes img to ref (host:port/repo:tag of a test registry).
func WriteImage(tb testing.TB, ref string, img v1.Image) {
	tb.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		tb.Fatal(err)
	}
}

// PushRandom pushes a random image of layers layers of size bytes each
// to ref.
func PushRandom(tb testing.TB, ref string, size, layers int64) {
	tb.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		tb.Fatal(err)
	}
	WriteImage(tb, ref, img)
}
