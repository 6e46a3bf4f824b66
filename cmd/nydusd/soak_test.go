package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/internal/testutil"
)

// soakReaderEnv runs TestSoakReader as a reader process of
// TestFailoverSoak: "manifest|root|stopfile".
const soakReaderEnv = "GONYDUS_SOAK_READER"

// soakResult is what a reader process reports.
type soakResult struct {
	Reads, Passes, Errors int
	MaxWait               time.Duration
	FirstError            string
}

// TestFailoverSoak kills nydusd with SIGKILL again and again while 4
// reader processes read and verify (sha256) every file of an image served
// from a registry backend, first cold, then from the blob cache, each
// file evicted from the page cache after each read so that every read
// reaches a daemon. Each successor is started with the same command line
// and takes the session over from the test's supervisor. No read may
// fail, see a wrong byte or wait more than 2 s. It prints the takeover
// time (kill to the successor answering start) per kill: median and max.
//
// make test runs 10 kills over a 16 MiB image; GONYDUS_SOAK=1 runs 100
// kills over a 1.1 GiB image (GONYDUS_SOAK_KILLS, GONYDUS_SOAK_MB adjust
// both).
//
// The readers are processes of their own: this process forks daemons,
// and a forked child closes the files it inherited when it execs, which
// for a FUSE file waits for a FLUSH no daemon answers between a kill and
// a takeover.
func TestFailoverSoak(t *testing.T) { runSoak(t, false) }

// TestFailoverSoakWritable is TestFailoverSoak over nydusd's writable
// overlay (--writable): the readers read the image's files through it,
// and a writer process (TestSoakWriter) writes into it all along. The
// writer's files, its held-open file and its copy-ups and whiteouts must
// then all be in the upper dir, byte for byte.
func TestFailoverSoakWritable(t *testing.T) { runSoak(t, true) }

func runSoak(t *testing.T, writable bool) { //nolint:revive // function-length: one soak scenario whose steps share its state
	testutil.RequireFUSE(t)
	kills, mb := 10, 16
	if os.Getenv("GONYDUS_SOAK") == "1" {
		kills, mb = 100, 1100
	}
	if v, err := strconv.Atoi(os.Getenv("GONYDUS_SOAK_KILLS")); err == nil && v > 0 {
		kills = v
	}
	if v, err := strconv.Atoi(os.Getenv("GONYDUS_SOAK_MB")); err == nil && v > 0 {
		mb = v
	}
	imageBin, nydusd := testBinaries(t)
	reg := testregistry.Start(t)
	nfiles := max(8, mb) // about 1 MiB a file
	files := randomFiles(3, nfiles, 1<<20)
	lowerFiles := map[string][]byte{}
	for name, data := range files {
		lowerFiles[name] = data
	}
	if writable {
		for i := range soakCopyUps {
			lowerFiles[copyUpName(i)] = copyUpLower(i)
		}
		lowerFiles[heldCopyUp] = heldCopyUpLower()
	}
	var total int64
	for _, d := range files {
		total += int64(len(d))
	}
	im := buildRegistryImage(t, imageBin, reg, lowerFiles)
	t.Logf("image: %d files, %d MiB", len(files), total>>20)

	work := t.TempDir()
	mnt := filepath.Join(work, "mnt")
	os.Mkdir(mnt, 0o755)
	t.Cleanup(func() { abortConnection(mnt) })
	manifest := filepath.Join(work, "manifest")
	var mf strings.Builder
	for name, data := range files {
		sum := sha256.Sum256(data)
		fmt.Fprintf(&mf, "%s\t%s\n", name, hex.EncodeToString(sum[:]))
	}
	if err := os.WriteFile(manifest, []byte(mf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(work, "api.sock")
	sup := newTestSupervisor(t, filepath.Join(work, "supervisor.sock"))
	cfg := registryConfig(t, reg, filepath.Join(work, "cache"))
	upper := filepath.Join(work, "upper")
	if writable {
		cfg = withOverlay(t, cfg, upper, filepath.Join(work, "owork"))
	}
	args := []string{"fuse", "--id", "soak", "--bootstrap", im.boot, "--config", cfg,
		"--mountpoint", mnt, "--apisock", sock, "--log-level", "warn", "--supervisor", sup.path, "--failover-policy", "resend"}
	if writable {
		args = append(args, "--writable")
	}
	cur := startDaemon(t, nydusd, sock, args...)
	cur.waitState(t, "RUNNING", 20*time.Second)
	if err := sup.fetch(func() error { return cur.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
		t.Fatal(err)
	}

	stop := filepath.Join(work, "stop")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type reader struct {
		cmd *exec.Cmd
		out *testutil.Buffer
	}
	var readers []reader
	for i := range 4 {
		cmd := exec.Command(self, "-test.run=^TestSoakReader$", "-test.v", "-test.timeout=2h")
		cmd.Env = append(os.Environ(), soakReaderEnv+"="+manifest+"|"+mnt+"|"+stop, fmt.Sprintf("GONYDUS_SOAK_SEED=%d", i))
		out := &testutil.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		readers = append(readers, reader{cmd, out})
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	var writer reader
	writerOut := filepath.Join(work, "writer.json")
	if writable {
		var held string
		for name := range files {
			held = name
			break
		}
		sum := sha256.Sum256(files[held])
		cmd := exec.Command(self, "-test.run=^TestSoakWriter$", "-test.v", "-test.timeout=2h")
		cmd.Env = append(os.Environ(), soakWriterEnv+"="+strings.Join([]string{mnt, stop, writerOut, held, hex.EncodeToString(sum[:])}, "|"))
		out := &testutil.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		writer = reader{cmd, out}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}

	rng := rand.New(rand.NewPCG(5, 6))
	var takeovers []time.Duration
	for i := range kills {
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		cur.kill(t)
		killed := time.Now()
		next := startDaemon(t, nydusd, sock, args...)
		next.waitState(t, "INIT", 5*time.Second)
		if terr, serr := sup.send(nil, func() error { return next.put("/api/v1/daemon/fuse/takeover") }); terr != nil || serr != nil {
			t.Fatalf("kill %d: takeover: %v / supervisor: %v", i+1, terr, serr)
		}
		if err := next.put("/api/v1/daemon/start"); err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
		takeovers = append(takeovers, time.Since(killed))
		// As nydus-snapshotter does once a daemon is RUNNING; over the
		// overlay, now and then not, so that the next successor gets
		// an older daemon's state.
		if !writable || i%4 != 1 {
			if err := sup.fetch(func() error { return next.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
				t.Fatalf("kill %d: sendfd: %v", i+1, err)
			}
		}
		cur = next
	}
	// Let every reader finish a pass after the last takeover.
	time.Sleep(time.Second)
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, r := range readers {
		done := make(chan error, 1)
		go func() { done <- r.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("reader %d: %v\n%s", i, err, r.out.String())
				continue
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("reader %d still running 5 min after the stop", i)
		}
		var res soakResult
		sc := bufio.NewScanner(strings.NewReader(r.out.String()))
		found := false
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "SOAK-RESULT "); ok {
				found = json.Unmarshal([]byte(line), &res) == nil
			}
		}
		if !found {
			t.Errorf("reader %d reported nothing:\n%s", i, r.out.String())
			continue
		}
		t.Logf("reader %d: %d reads in %d full passes, longest wait %v, %d errors", i, res.Reads, res.Passes, res.MaxWait, res.Errors)
		if res.Errors > 0 {
			t.Errorf("reader %d: %d errors, first: %s", i, res.Errors, res.FirstError)
		}
		if res.MaxWait > 2*time.Second {
			t.Errorf("reader %d waited %v for one read (limit 2 s)", i, res.MaxWait)
		}
		if res.Passes < 1 {
			t.Errorf("reader %d did not read every file once", i)
		}
	}
	if writable {
		checkSoakWriter(t, writer.cmd, writer.out, writerOut, upper)
	}
	slices.Sort(takeovers)
	t.Logf("takeover (SIGKILL to the successor answering start) over %d kills: median %v, max %v",
		len(takeovers), takeovers[len(takeovers)/2], takeovers[len(takeovers)-1])
	cur.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-cur.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("nydusd did not stop on SIGTERM")
	}
}

// TestSoakReader is a reader process of TestFailoverSoak; run by itself
// it skips.
func TestSoakReader(t *testing.T) {
	spec := os.Getenv(soakReaderEnv)
	if spec == "" {
		t.Skip("a reader process that TestFailoverSoak starts; nothing to do alone")
	}
	parts := strings.Split(spec, "|")
	manifest, root, stop := parts[0], parts[1], parts[2]
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ name, sum string }
	var ents []entry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, sum, _ := strings.Cut(line, "\t")
		ents = append(ents, entry{name, sum})
	}
	seed, _ := strconv.Atoi(os.Getenv("GONYDUS_SOAK_SEED"))
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	var res soakResult
	fail := func(err error) {
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	buf := make([]byte, 256<<10)
	for {
		rng.Shuffle(len(ents), func(i, j int) { ents[i], ents[j] = ents[j], ents[i] })
		for _, e := range ents {
			if err := readVerify(filepath.Join(root, e.name), e.sum, buf, &res.MaxWait); err != nil {
				fail(err)
			}
			res.Reads++
		}
		res.Passes++
		if _, err := os.Stat(stop); err == nil {
			break
		}
	}
	out, _ := json.Marshal(res)
	fmt.Printf("SOAK-RESULT %s\n", out)
}

// readVerify reads path in chunks, timing each read(2), checks its
// sha256 and evicts it from the page cache.
func readVerify(path, want string, buf []byte, maxWait *time.Duration) error {
	t0 := time.Now()
	f, err := os.Open(path)
	*maxWait = max(*maxWait, time.Since(t0))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	for {
		t0 := time.Now()
		n, err := f.Read(buf)
		*maxWait = max(*maxWait, time.Since(t0))
		h.Write(buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 %s, want %s", path, got, want)
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return nil
}
