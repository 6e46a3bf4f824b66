package graphdriver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DeprecatedPluginsEnv is the variable Docker 27 wants in dockerd's
// environment (any non-empty value) before it loads a graphdriver plugin;
// Docker 28 removed graphdriver plugins.
const DeprecatedPluginsEnv = "DOCKERD_DEPRECATED_GRAPHDRIVER_PLUGINS"

var dockerVersionRE = regexp.MustCompile(`(?:version\s+v?)(\d+)\.(\d+)`)

// DockerdHint says why the dockerd described by its --version output,
// environment and arguments will not load this plugin, or "" when
// nothing is known to be wrong. dockerd reads --experimental from
// daemon.json too, so a missing flag alone is not reported.
func DockerdHint(versionOut string, environ, args []string) string {
	m := dockerVersionRE.FindStringSubmatch(versionOut)
	if m == nil {
		return ""
	}
	major, _ := strconv.Atoi(m[1])
	env := ""
	for _, e := range environ {
		if v, ok := strings.CutPrefix(e, DeprecatedPluginsEnv+"="); ok {
			env = v
		}
	}
	switch {
	case major >= 28:
		return fmt.Sprintf("dockerd %s.%s has no graphdriver plugins (removed in Docker 28); use Docker 27 with %s=1 or older, or the containerd image store with a nydus snapshotter", m[1], m[2], DeprecatedPluginsEnv)
	case major == 27 && env == "":
		return fmt.Sprintf("dockerd %s.%s loads graphdriver plugins only with %s=1 in its environment (and --experimental); e.g. a systemd drop-in with Environment=%s=1, see examples/docker-graphdriver", m[1], m[2], DeprecatedPluginsEnv, DeprecatedPluginsEnv)
	}
	return ""
}

// CheckDockerd looks at the dockerd processes running under procRoot
// (normally /proc) and returns DockerdHint's findings for each.
func CheckDockerd(ctx context.Context, procRoot string) []string {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var hints []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join(dir, "environ"))
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(cctx, filepath.Join(dir, "exe"), "--version").Output()
		cancel()
		if err != nil {
			continue
		}
		if h := DockerdHint(string(out), splitNUL(environ), splitNUL(cmdline)); h != "" {
			hints = append(hints, fmt.Sprintf("pid %s: %s", e.Name(), h))
		}
	}
	return hints
}

func splitNUL(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(b, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}
