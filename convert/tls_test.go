package convert

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testregistry"
)

// TestInsecureTLS converts and checks through a registry with a
// self-signed certificate: refused by default, accepted with
// --source-insecure/--target-insecure (Remote.Insecure).
func TestInsecureTLS(t *testing.T) {
	plain := newTestRegistry(t)
	pushSource(t, plain, "app", true)
	srv := httptest.NewUnstartedServer(testregistry.Start(t).Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	ctx := context.Background()
	insecure := Remote{Insecure: true}
	_, err := Convert(ctx, plain.ref("app:latest"), host+"/app:nydus", WithTarget(Remote{}), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err == nil {
		t.Fatal("pushed to a self-signed registry without --target-insecure")
	}
	t.Log(err)
	if _, err := Convert(ctx, plain.ref("app:latest"), host+"/app:nydus", WithTarget(insecure), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, host+"/app:nydus", plain.ref("app:latest"), WithTarget(insecure), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if rep.DataBytes == 0 {
		t.Fatalf("report %+v", rep)
	}
}
