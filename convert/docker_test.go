package convert

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestDockerPullRunnable pulls a docker-runnable image with a real dockerd
// (NYDUSIFY_DOCKER_HOST=unix:///path/docker.sock): only the bootstrap
// layer is downloaded, diff ids verify, and the image's filesystem is
// image/image.boot plus image/backend.json. Without the variable, a private
// dockerd is started for the test.
func TestDockerPullRunnable(t *testing.T) {
	host := os.Getenv("NYDUSIFY_DOCKER_HOST")
	if host == "" {
		host = startDockerd(t)
	}
	testutil.RequireBinary(t, "docker", "docker.io")
	docker := func(args ...string) (string, error) {
		out, err := exec.Command("docker", append([]string{"-H", host}, args...)...).CombinedOutput()
		return string(out), err
	}
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", false)
	ctx := context.Background()
	res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:docker"), WithLayout(LayoutDockerRunnable),
		WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	var blobGets []string
	reg.wrap = logBlobGets(&blobGets)
	ref := reg.ref("app:docker")
	t.Cleanup(func() { docker("rm", "-f", "nydusify-test"); docker("rmi", "-f", ref) })
	if out, err := docker("pull", ref); err != nil {
		t.Fatalf("docker pull: %v\n%s", err, out)
	}
	if len(blobGets) != 2 || !strings.Contains(blobGets[0]+blobGets[1], res.Bootstrap.Digest.String()) {
		t.Fatalf("docker fetched %q, want the config and the bootstrap layer only", blobGets)
	}
	t.Logf("docker pull fetched %q: the config and the bootstrap layer", blobGets)
	out, err := docker("image", "inspect", "-f", "{{len .RootFS.Layers}} {{.Config.WorkingDir}}", ref)
	if err != nil || strings.TrimSpace(out) != "1 /data" {
		t.Fatalf("inspect: %q %v", out, err)
	}
	if out, err := docker("create", "--name", "nydusify-test", ref, "/bin/tool"); err != nil {
		t.Fatalf("docker create: %v\n%s", err, out)
	}
	got, err := exec.Command("docker", "-H", host, "cp", "nydusify-test:/"+BootstrapPath, "-").Output()
	if err != nil {
		t.Fatalf("docker cp: %v", err)
	}
	l, err := remote.Layer(mustRepo(t, reg).Digest(res.Bootstrap.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := l.Compressed()
	files, err := readBootstrapLayer(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, files.boot) {
		t.Fatal("the container's image/image.boot differs from the pushed bootstrap")
	}
	t.Logf("the container holds the %d-byte bootstrap", len(files.boot))

	// For contrast: the default layout makes docker download every blob.
	if _, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	blobGets = nil
	out, err = docker("pull", reg.ref("app:nydus"))
	docker("rmi", "-f", reg.ref("app:nydus"))
	t.Logf("default layout: docker pull fetched %d blobs, err %v: %s", len(blobGets), err, strings.TrimSpace(out))
}
