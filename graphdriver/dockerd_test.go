package graphdriver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

func TestDockerdHint(t *testing.T) {
	for _, c := range []struct {
		version string
		env     []string
		want    string // substring; "" = no hint
	}{
		{"Docker version 20.10.24+dfsg1, build 297e128", nil, ""},
		{"Docker version 27.5.1, build 4c9b3b0", nil, DeprecatedPluginsEnv + "=1"},
		{"Docker version 27.0.3, build 662f78c", []string{"PATH=/bin", DeprecatedPluginsEnv + "="}, DeprecatedPluginsEnv + "=1"},
		{"Docker version 27.5.1, build 4c9b3b0", []string{DeprecatedPluginsEnv + "=1"}, ""},
		{"Docker version 28.5.2, build ecc6942", []string{DeprecatedPluginsEnv + "=1"}, "removed in Docker 28"},
		{"garbage", nil, ""},
	} {
		got := DockerdHint(c.version, c.env, nil)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("DockerdHint(%q, %q) = %q, want %q", c.version, c.env, got, c.want)
		}
	}
}

// TestCheckDockerd runs the /proc scan over a fake process whose exe
// prints Docker 27's version and whose environment lacks the variable.
func TestCheckDockerd(t *testing.T) {
	proc := t.TempDir()
	pd := filepath.Join(proc, "4242")
	testutil.Must(t, os.Mkdir(pd, 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(pd, "comm"), []byte("dockerd\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(pd, "environ"), []byte("PATH=/usr/bin\x00HOME=/root\x00"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(pd, "cmdline"), []byte("dockerd\x00--experimental\x00"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(pd, "exe"), []byte("#!/bin/sh\necho 'Docker version 27.5.1, build 4c9b3b0'\n"), 0o755))
	other := filepath.Join(proc, "4243")
	testutil.Must(t, os.Mkdir(other, 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(other, "comm"), []byte("bash\n"), 0o644))
	hints := CheckDockerd(context.Background(), proc)
	if len(hints) != 1 || !strings.HasPrefix(hints[0], "pid 4242: ") || !strings.Contains(hints[0], DeprecatedPluginsEnv+"=1") {
		t.Fatalf("hints: %q", hints)
	}
}
