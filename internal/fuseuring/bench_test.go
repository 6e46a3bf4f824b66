package fuseuring

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The benchmark clients run in a child process (this test binary again),
// as a container's processes would: the FUSE daemon's scheduling is then
// not mixed with the client's goroutines.
const clientEnv = "FUSEURING_BENCH_CLIENT"

func TestMain(m *testing.M) {
	if spec := os.Getenv(clientEnv); spec != "" {
		os.Exit(clientMain(spec))
	}
	if role := os.Getenv(stressRoleEnv); role != "" {
		flag.Parse()
		os.Exit(stressMain(role, flag.Args()))
	}
	os.Exit(m.Run())
}

// clientMain runs "lookup DIR N" (lstat of N distinct missing names) or
// "read DIR N" (read files f0..fN-1) and prints the elapsed nanoseconds.
func clientMain(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "bad client spec", spec)
		return 2
	}
	n, _ := strconv.Atoi(f[2])
	dir := f[1]
	var st unix.Stat_t
	start := time.Now()
	switch f[0] {
	case "lookup":
		for i := range n {
			if err := unix.Lstat(dir+"/miss-"+strconv.Itoa(i), &st); err != unix.ENOENT {
				fmt.Fprintln(os.Stderr, "lstat:", err)
				return 1
			}
		}
	case "read":
		buf := make([]byte, 64<<10)
		for i := range n {
			fd, err := unix.Open(dir+"/f"+strconv.Itoa(i), unix.O_RDONLY, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, "open:", err)
				return 1
			}
			total := 0
			for {
				k, err := unix.Read(fd, buf)
				if err != nil {
					fmt.Fprintln(os.Stderr, "read:", err)
					return 1
				}
				if k == 0 {
					break
				}
				total += k
			}
			unix.Close(fd)
			if total != benchFileSize {
				fmt.Fprintln(os.Stderr, "short file", total)
				return 1
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "bad client spec", spec)
		return 2
	}
	fmt.Println(time.Since(start).Nanoseconds())
	return 0
}

func runClient(b *testing.B, spec string) time.Duration {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+spec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("client %q: %v: %s", spec, err, stderr.String())
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("client output %q: %v", out, err)
	}
	return time.Duration(ns)
}

const (
	benchLookups  = 20000
	benchFiles    = 3000
	benchFileSize = 24 << 10
	benchRounds   = 3
)

type variant struct {
	name string
	m    *mounted
}

// compare runs the client workload on each mount (plain go-fuse first),
// alternating, benchRounds times each, and reports the best time per
// operation of each and the speed-up over plain go-fuse.
func compare(b *testing.B, vs []variant, work string, n int, before func()) {
	best := map[string]time.Duration{}
	for range b.N {
		for range benchRounds {
			for _, v := range vs {
				if before != nil {
					before()
				}
				d := runClient(b, fmt.Sprintf("%s %s %d", work, v.m.dir, n))
				if cur, ok := best[v.name]; !ok || d < cur {
					best[v.name] = d
				}
			}
		}
	}
	perOp := func(name string) float64 { return float64(best[name].Nanoseconds()) / float64(n) }
	base := perOp(vs[0].name)
	line := fmt.Sprintf("%s: %s x%d: %s %.1f µs/op", b.Name(), work, n, vs[0].name, base/1000)
	b.ReportMetric(base, vs[0].name+"-ns/op")
	for _, v := range vs[1:] {
		u := perOp(v.name)
		b.ReportMetric(u, v.name+"-ns/op")
		b.ReportMetric(base/u, v.name+"-speedup")
		st := v.m.tr.Stats()
		var per []string
		for _, q := range st.Queues {
			per = append(per, fmt.Sprintf("q%d=%d", q.QID, q.Requests))
		}
		line += fmt.Sprintf(", %s %.1f µs/op (%.2fx; ring served %d requests: %s)", v.name, u/1000, base/u, st.Requests, strings.Join(per, " "))
	}
	b.ReportMetric(0, "ns/op")
	fmt.Println(line)
}

// BenchmarkLookupRoundTrip: lstat of distinct missing names, each a
// negative LOOKUP round trip to the daemon (no negative caching).
func BenchmarkLookupRoundTrip(b *testing.B) {
	needURing(b)
	compare(b, []variant{
		{"gofuse", mount(b, &testTree{}, false)},
		{"uring", mount(b, &testTree{}, true)},
		{"uring-async", mount(b, &testTree{}, true, WithAsync(true), WithEntries(4))},
	}, "lookup", benchLookups, nil)
}

// BenchmarkReadSmallFiles: open and read 24 KiB files of a loopback mount
// (passthrough off) after dropping the page cache.
func BenchmarkReadSmallFiles(b *testing.B) {
	needURing(b)
	back := b.TempDir()
	data := bytes.Repeat([]byte("nydus-rafs-chunk"), benchFileSize/16)
	for i := range benchFiles {
		if err := os.WriteFile(filepath.Join(back, "f"+strconv.Itoa(i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	noPassthrough := func(o *fs.Options) {
		o.MountOptions.DisabledCapabilities |= fuse.CAP_PASSTHROUGH
		one := time.Second
		o.EntryTimeout, o.AttrTimeout = &one, &one
	}
	root1, err := fs.NewLoopbackRoot(back)
	if err != nil {
		b.Fatal(err)
	}
	root2, err := fs.NewLoopbackRoot(back)
	if err != nil {
		b.Fatal(err)
	}
	root3, err := fs.NewLoopbackRoot(back)
	if err != nil {
		b.Fatal(err)
	}
	vs := []variant{
		{"gofuse", mountWith(b, root1, false, noPassthrough)},
		{"uring", mountWith(b, root2, true, noPassthrough)},
		{"uring-async", mountWith(b, root3, true, noPassthrough, WithAsync(true), WithEntries(4))},
	}
	dropCaches := func() {
		unix.Sync()
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
			b.Fatalf("drop_caches: %v", err)
		}
	}
	compare(b, vs, "read", benchFiles, dropCaches)
}
