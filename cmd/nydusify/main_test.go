package main

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestUsage(t *testing.T) {
	for args, want := range map[string]int{
		"":                                2,
		"--help":                          0,
		"--version":                       0,
		"frobnicate":                      2,
		"convert --help":                  0,
		"convert --source a":              2,
		"convert --source a --target b x": 2,
		"convert --source a --target b --fs-chunk-size 0x3000":                          1,
		"convert --source a --target b --fs-version 5":                                  1,
		"convert --source a --target b --prefetch-dir etc":                              1,
		"convert --source a --target b --target-suffix -nydus":                          2,
		"convert --target-suffix -nydus":                                                2,
		"check":                                                                         2,
		"check --target 127.0.0.1:1/a:b --nydusd /x --nydus-image /y --log-level error": 1,
		"check --target a --log-level loud":                                             2,
	} {
		if got := run(strings.Fields(args)); got != want {
			t.Errorf("nydusify %s: exit %d, want %d", args, got, want)
		}
	}
}

// TestConvertCheck runs both subcommands against an in-process registry.
func TestConvertCheck(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(100000, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/random:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, layout := range []string{"", "--docker-runnable"} {
		suffix := "-nydus" + strings.TrimPrefix(layout, "--")
		tag := host + "/random:latest" + suffix
		args := []string{"convert", "--source", host + "/random:latest", "--target-suffix", suffix, "--work-dir", work,
			"--fs-chunk-size", "0x10000", "--log-level", "warn", "--platform", "linux/amd64"}
		if layout != "" {
			args = append(args, layout)
		}
		if code := run(args); code != 0 {
			t.Fatalf("convert %s: exit %d", layout, code)
		}
		if code := run([]string{"check", "--target", tag, "--source", host + "/random:latest", "--work-dir", work,
			"--log-level", "warn", "--platform", "linux/amd64"}); code != 0 {
			t.Fatalf("check %s: exit %d", layout, code)
		}
	}
	if code := run([]string{"check", "--target", host + "/random:latest", "--log-level", "error", "--platform", "linux/amd64"}); code != 1 {
		t.Fatalf("check of an OCI image: exit %d, want 1", code)
	}
}
