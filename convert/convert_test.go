package convert

import (
	"context"
	"testing"
)

func TestConvertNydusLayout(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"),
		WithChunkSize(0x10000), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)), WithPlatform("linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, reg.ref("app:nydus"), reg.ref("app:latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)), WithPlatform("linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v %+v", res, rep)
}
