package convert

import (
	"context"
	"os"
	"testing"
)

// TestExternalRegistry converts and checks both layouts in a real
// registry (NYDUSIFY_REGISTRY=host:port, plain HTTP on loopback), e.g.
// Debian's docker-registry (distribution 2.8), started for the test when
// the variable is not set.
func TestExternalRegistry(t *testing.T) {
	host := os.Getenv("NYDUSIFY_REGISTRY")
	if host == "" {
		host = startDockerRegistry(t)
	}
	reg := &testRegistry{host: host}
	for _, oci := range []bool{true, false} {
		repo := "nydusify-docker"
		if oci {
			repo = "nydusify-oci"
		}
		pushSource(t, reg, repo, oci)
		ctx := context.Background()
		for _, l := range []Layout{LayoutNydus, LayoutDockerRunnable} {
			target := reg.ref(repo + ":" + l.String())
			if _, err := Convert(ctx, reg.ref(repo+":latest"), target, WithLayout(l), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
				t.Fatalf("%s %s: %v", repo, l, err)
			}
			rep, err := Check(ctx, target, reg.ref(repo+":latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatalf("%s %s: %v", repo, l, err)
			}
			t.Logf("%s: %+v", target, rep)
		}
	}
}
