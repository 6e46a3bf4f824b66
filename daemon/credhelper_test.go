package daemon_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestRegistryMountWithCredentialHelper: nydusd mounts an image whose blob
// lives in a registry with token auth, its configuration holding no
// credentials: docker's config.json names a credential helper on PATH,
// whose password the token realm takes in an OAuth2 form.
func TestRegistryMountWithCredentialHelper(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "c", 4)
	blob, err := os.ReadFile(im.blobPath)
	testutil.Must(t, err)

	// Reads need a token the realm grants alice:helper-pw only.
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "helper-pw", time.Hour, 300))
	reg.Push(t, "app", blob)
	testutil.Must(t, os.Remove(im.blobPath))
	host := reg.Host

	// The helper and docker's config.
	helper := testregistry.WriteCredentialHelper(t, "alice", "helper-pw")
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_CONFIG", testregistry.DockerConfig(t, map[string]any{"credHelpers": map[string]string{host: helper.Name}}))
	t.Setenv("IMAGE_PULL_AUTH", "")

	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app","timeout":5,"retry_limit":1}},
		"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":true}`, host, filepath.Join(work, "cache"))))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	defer d.Stop()
	for name, data := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The OAuth2 form (POST) is what the realm is asked, with the
	// helper's password.
	asked := helper.Asked()
	posts, gets := reg.TokenRequests()
	if len(asked) != 1 || asked[0] != host || reg.Rejected() == 0 || posts == 0 || gets != 0 {
		t.Fatalf("helper asked about %q; %d requests refused, %d tokens asked by POST, %d by GET", asked, reg.Rejected(), posts, gets)
	}
	t.Logf("helper asked once; %d unauthenticated requests refused; %d tokens granted", reg.Rejected(), posts)
}
