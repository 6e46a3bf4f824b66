package mountopt

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func parse(t *testing.T, opts string) *Mount {
	t.Helper()
	m, err := ParseArgs([]string{"overlay", "/t", "-o", opts})
	if err != nil {
		t.Fatalf("%s: %v", opts, err)
	}
	return m
}

// TestFlagTable pins what every flag word does, alone and after its
// opposite (mount.fuse3 appends dev,suid; mount(8) injects rw).
func TestFlagTable(t *testing.T) {
	sets := map[string]uintptr{
		"ro": unix.MS_RDONLY, "nodev": unix.MS_NODEV, "nosuid": unix.MS_NOSUID, "noexec": unix.MS_NOEXEC,
		"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME,
		"relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME, "mand": unix.MS_MANDLOCK, "bind": unix.MS_BIND,
		"rbind": unix.MS_BIND | unix.MS_REC, "remount": unix.MS_REMOUNT, "defaults": 0,
	}
	clears := map[string]string{"rw": "ro", "dev": "nodev", "suid": "nosuid", "exec": "noexec", "async": "sync",
		"atime": "noatime", "diratime": "nodiratime", "norelatime": "relatime", "nostrictatime": "strictatime", "nomand": "mand"}
	for word, flag := range sets {
		if m := parse(t, "lowerdir=/l,"+word); m.Flags != flag || len(m.Data) != 1 {
			t.Errorf("%s: flags %#x data %v, want %#x", word, m.Flags, m.Data, flag)
		}
	}
	for word, opposite := range clears {
		if m := parse(t, "lowerdir=/l,"+opposite+","+word); m.Flags != 0 {
			t.Errorf("%s after %s: flags %#x, want cleared", word, opposite, m.Flags)
		}
		if m := parse(t, "lowerdir=/l,"+word+","+opposite); m.Flags != sets[opposite] {
			t.Errorf("%s after %s: flags %#x, want %#x", opposite, word, m.Flags, sets[opposite])
		}
	}
	if len(sets)+len(clears) != len(flagWords) {
		t.Fatalf("table has %d words, tested %d", len(flagWords), len(sets)+len(clears))
	}
	// What mount(8) -> mount.fuse3 actually passes: a writable, dev, suid overlay.
	m := parse(t, "rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w,volatile,dev,suid")
	if m.Flags != 0 || m.DataString() != "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,volatile" {
		t.Fatalf("flags %#x data %q", m.Flags, m.DataString())
	}
}

func TestDropsNydusAndKataOptions(t *testing.T) {
	extra := base64.StdEncoding.EncodeToString([]byte(`{"source":"/s/image.boot","config":"{}","snapshotdir":"/s","fs_version":"v6"}`))
	m := parse(t, "lowerdir=/l,upperdir=/u,workdir=/w,extraoption="+extra+",io.katacontainers.volume=abc")
	if m.DataString() != "lowerdir=/l,upperdir=/u,workdir=/w" || m.Extra == nil || m.Extra.Source != "/s/image.boot" || m.Extra.Version != "v6" {
		t.Fatalf("data %q extra %+v", m.DataString(), m.Extra)
	}
	if strings.Join(m.Dropped, ",") != "extraoption,io.katacontainers.volume" {
		t.Fatalf("dropped %v", m.Dropped)
	}
}

func TestBadInvocations(t *testing.T) {
	for name, args := range map[string][]string{
		"too few":            {"overlay", "/t", "-o"},
		"not overlay":        {"ext4", "/t", "-o", "lowerdir=/l"},
		"no -o":              {"overlay", "/t", "-x", "lowerdir=/l"},
		"empty target":       {"overlay", "", "-o", "lowerdir=/l"},
		"no lowerdir":        {"overlay", "/t", "-o", "upperdir=/u,workdir=/w"},
		"only dropped":       {"overlay", "/t", "-o", "io.katacontainers.volume=x"},
		"upper without work": {"overlay", "/t", "-o", "lowerdir=/l,upperdir=/u"},
		"empty value":        {"overlay", "/t", "-o", "lowerdir="},
		"bad extraoption":    {"overlay", "/t", "-o", "lowerdir=/l,extraoption=%%%"},
	} {
		if _, err := ParseArgs(args); !errors.Is(err, ErrUsage) {
			t.Errorf("%s: %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestCanonicalizedSource(t *testing.T) {
	// mount(8) turns "overlay" into $PWD/overlay when such a path exists.
	if _, err := ParseArgs([]string{"/work/overlay", "/t", "-o", "lowerdir=/l"}); err != nil {
		t.Fatal(err)
	}
}

func TestCompact(t *testing.T) {
	m := parse(t, "lowerdir=/var/lib/snap/1/fs:/var/lib/snap/2/fs,upperdir=/var/lib/snap/3/fs,workdir=/var/lib/snap/3/work,volatile")
	dir := m.Compact()
	if dir != "/var/lib/snap" || m.DataString() != "lowerdir=1/fs:2/fs,upperdir=3/fs,workdir=3/work,volatile" {
		t.Fatalf("dir %q data %q", dir, m.DataString())
	}
	if dir := parse(t, "lowerdir=/a,upperdir=/b/u,workdir=/b/w").Compact(); dir != "" {
		t.Fatalf("no common parent: %q", dir)
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("lowerdir=/l,upperdir=/u,workdir=/w,rw,dev,suid")
	f.Add("lowerdir=/a:/b,extraoption=e30=,io.katacontainers.volume=x")
	f.Fuzz(func(t *testing.T, opts string) {
		m, err := ParseArgs([]string{"overlay", "/t", "-o", opts})
		if err == nil && !m.has("lowerdir") {
			t.Fatal("accepted without lowerdir")
		}
	})
}

func TestOverlayModeOption(t *testing.T) {
	m, err := ParseArgs([]string{"overlay", "/t", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,nydus.overlay=userspace"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Overlay != "userspace" || m.DataString() != "lowerdir=/l,upperdir=/u,workdir=/w" || m.Value("upperdir") != "/u" {
		t.Fatalf("mode %q data %q", m.Overlay, m.DataString())
	}
	if _, err := ParseArgs([]string{"overlay", "/t", "-o", "lowerdir=/l,nydus.overlay=fast"}); err == nil || !strings.Contains(err.Error(), "nydus.overlay") {
		t.Fatalf("bad nydus.overlay value: %v", err)
	}
}
