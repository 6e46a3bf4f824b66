package graphdriver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestRegistryLayerWithCredentialHelper: an image's backend.json names a
// registry with token auth for which the plugin's configuration holds no
// credentials; the nydusd the plugin starts finds them as docker would,
// through the credential helper docker's config.json names (on the
// plugin's PATH), and serves the layer.
func TestRegistryLayerWithCredentialHelper(t *testing.T) {
	requireMounts(t)
	testutil.RequireFUSE(t)
	nydusd, image := buildBinaries(t)
	src := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(src, "greeting"), []byte("hello from a registry"), 0o644))
	work := t.TempDir()
	blobs, boot := filepath.Join(work, "blobs"), filepath.Join(work, "image.boot")
	if out, err := exec.Command(image, "create", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("nydus-image create: %v\n%s", err, out)
	}
	ents, err := os.ReadDir(blobs)
	testutil.Must(t, err)
	if len(ents) != 1 {
		t.Fatalf("%d blobs", len(ents))
	}
	blob, err := os.ReadFile(filepath.Join(blobs, ents[0].Name()))
	testutil.Must(t, err)
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != ents[0].Name() {
		t.Fatalf("blob %s is not named by its digest", ents[0].Name())
	}

	// A registry whose reads need a token the realm grants for
	// alice:helper-pw only.
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "helper-pw", time.Hour, 300))
	if id := reg.Push(t, "app", blob); id != ents[0].Name() {
		t.Fatalf("pushed blob %s, built %s", id, ents[0].Name())
	}
	host := reg.Host

	// The helper and docker's config, in the plugin's environment.
	helper := testregistry.WriteCredentialHelper(t, "alice", "helper-pw")
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_CONFIG", testregistry.DockerConfig(t, map[string]any{"credHelpers": map[string]string{host: helper.Name}}))
	t.Setenv("IMAGE_PULL_AUTH", "")

	b, err := os.ReadFile(boot)
	testutil.Must(t, err)
	backendJSON := fmt.Sprintf(`{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app"}}`, host)
	layer := tartest.Reader(t, tartest.Dir("image/"), tartest.File("image/image.boot", string(b)), tartest.File("image/backend.json", backendJSON))
	d, _ := newDriver(t, WithNydusd(nydusd), WithNydusdConfig([]byte(`{"device":{"backend":{"type":"registry","config":{"host":"other.example","auth":"b3RoZXI6c2VjcmV0","timeout":5}}}}`)))
	testutil.Must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "img", "", layer); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.CreateReadWrite("rw", "img", nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	got, err := os.ReadFile(filepath.Join(root, "greeting"))
	testutil.Must(t, d.Put("rw"))
	if err != nil || string(got) != "hello from a registry" {
		t.Fatalf("greeting: %q, %v", got, err)
	}
	// The OAuth2 form (POST) is what the realm is asked, with the
	// helper's password.
	asked := helper.Asked()
	posts, gets := reg.TokenRequests()
	if !slices.Contains(asked, host) || reg.Rejected() == 0 || posts == 0 || gets != 0 {
		t.Fatalf("helper asked about %q; %d reads refused, %d tokens asked by POST, %d by GET", asked, reg.Rejected(), posts, gets)
	}
	for _, id := range []string{"rw", "img"} {
		testutil.Must(t, d.Remove(id))
	}
	t.Logf("helper asked about %s; %d unauthenticated reads refused, %d tokens granted", asked, reg.Rejected(), posts)
}
