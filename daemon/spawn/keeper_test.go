package spawn

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/supervisor"
	"github.com/gonydus/nydus/internal/testutil"
)

// The test binary plays two parts when GONYDUS_SPAWN_TEST is set: the
// keeper (first argument "supervise") and, for everything else, a
// stand-in nydusd that speaks the API and the supervisor protocol over a
// real FUSE mount whose requests it never serves (nothing here reads the
// mount; the keeper's logic is what is under test: the real nydusd's
// takeover runs in the e2e suites).
func TestMain(m *testing.M) {
	if os.Getenv("GONYDUS_SPAWN_TEST") == "1" {
		if len(os.Args) > 1 && os.Args[1] == "supervise" {
			os.Exit(KeeperMain(os.Args[2:]))
		}
		if err := standIn(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "stand-in nydusd:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// standIn is the stand-in nydusd: a fresh start mounts /dev/fuse and
// runs; a start with --upgrade, or over a mount whose API socket refuses
// connections (its predecessor died), waits in INIT for takeover.
func standIn(args []string) error {
	mp, sock, sup := argValue(args, "--mountpoint"), argValue(args, "--apisock"), argValue(args, "--supervisor")
	state, fd, blob := "INIT", -1, []byte(nil)
	crashed := false
	if fuseDev(mp) != "" {
		if c, err := net.Dial("unix", sock); err != nil {
			crashed = true
		} else {
			c.Close()
		}
	}
	if !crashed && !hasFlag(args, "--upgrade") {
		var err error
		if fd, err = unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Mount("standin", mp, "fuse.standin", 0, fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)); err != nil {
			return err
		}
		state, blob = "RUNNING", []byte(fmt.Sprintf("mounted by %d;", os.Getpid()))
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	exit := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/daemon", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"state": state, "version": map[string]string{"git_commit": os.Getenv("STANDIN_VERSION")}})
	})
	mux.HandleFunc("PUT /api/v1/daemon/fuse/sendfd", func(w http.ResponseWriter, r *http.Request) {
		if err := supervisor.HandOver(r.Context(), sup, blob, fd); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/daemon/fuse/takeover", func(w http.ResponseWriter, r *http.Request) {
		data, got, err := supervisor.Fetch(r.Context(), sup)
		var st unix.Stat_t
		if err == nil {
			if err = unix.Fstat(got, &st); err == nil && st.Rdev != unix.Mkdev(10, 229) {
				err = fmt.Errorf("the descriptor is not /dev/fuse (rdev %x)", st.Rdev)
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fd, blob, state = got, append(data, fmt.Sprintf("taken over by %d;", os.Getpid())...), "READY"
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/daemon/start", func(w http.ResponseWriter, r *http.Request) {
		state = "RUNNING"
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v1/daemon/exit", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		close(exit)
	})
	go http.Serve(l, mux)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGTERM)
	select {
	case <-sig: // a stop: unmount, as nydusd does
		unix.Unmount(mp, unix.MNT_DETACH)
	case <-exit: // an upgrade: leave the mount to the successor
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func hasFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

// abortFUSE ends the kernel connection of the FUSE mount at dir (the
// stand-in never answers its requests) and detaches it.
func abortFUSE(t *testing.T, dir string) {
	if d := fuseDev(dir); d != "" {
		if !FUSEMountedAt("/sys/fs/fuse/connections") {
			unix.Mount("none", "/sys/fs/fuse/connections", "fusectl", 0, "")
		}
		minor := d[strings.IndexByte(d, ':')+1:]
		os.WriteFile("/sys/fs/fuse/connections/"+minor+"/abort", []byte("1"), 0)
	}
	unix.Unmount(dir, unix.MNT_DETACH)
}

// TestKeeper runs the keeper over the stand-in: it takes the state once
// nydusd runs, replaces a nydusd killed with SIGKILL (twice; the mount
// stays the same connection), upgrades to another binary (the old one
// exits without unmounting, the API socket keeps its path), refuses an
// upgrade that cannot take over while the running daemon goes on, and
// ends with the mount on SIGTERM.
func TestKeeper(t *testing.T) {
	testutil.RequireFUSE(t) // root too: mounting FUSE with mount(2)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GONYDUS_SPAWN_TEST", "1")
	dir, err := os.MkdirTemp("", "kp") // short: socket paths
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	defer abortFUSE(t, mp)
	sock := filepath.Join(dir, "api.sock")
	ctl := filepath.Join(dir, "k1"+ControlSuffix)
	kpid, err := Start(Nydusd{Binary: self, Args: []string{"--mountpoint", mp, "--apisock", sock}, Mountpoint: mp,
		LogFile: filepath.Join(dir, "log"), Timeout: 20 * time.Second,
		Supervise: &Supervision{Command: []string{self, "supervise"}, Dir: dir, ID: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Kill(kpid, unix.SIGKILL)
	logs := func() string { return LogTail(filepath.Join(dir, "log")) }
	status := func() Status {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		st, err := Control(ctx, ctl, "status", "")
		if err != nil {
			t.Fatalf("%v: %s", err, logs())
		}
		return st
	}
	st := status()
	if st.StateBytes == 0 || st.PID <= 0 || st.Nydusd != self {
		t.Fatalf("after start: %+v", st)
	}
	dev := fuseDev(mp)

	killed := func(n int) Status {
		t.Helper()
		old := status().PID
		unix.Kill(old, unix.SIGKILL)
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := status()
			if st.Failovers == n {
				if st.PID == old || !processAlive(st.PID) {
					t.Fatalf("failover %d: %+v (old pid %d)", n, st, old)
				}
				if fuseDev(mp) != dev {
					t.Fatalf("failover %d: the mount changed (%s -> %s)", n, dev, fuseDev(mp))
				}
				t.Logf("failover %d: pid %d -> %d, state %d bytes", n, old, st.PID, st.StateBytes)
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("no failover %d within 30 s: %+v: %s", n, st, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st = killed(1)
	st = killed(2)
	if st.StateBytes <= len("mounted by 1;") {
		t.Fatalf("the state did not grow with the takeovers: %d bytes", st.StateBytes)
	}

	// An upgrade to a binary that cannot take over: refused, the running
	// daemon goes on.
	before := status().PID
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Control(ctx, ctl, "upgrade", "/bin/false"); err == nil || !strings.Contains(err.Error(), "goes on") {
		t.Fatalf("an upgrade to /bin/false: %v", err)
	}
	if st := status(); st.PID != before || !processAlive(before) || st.Upgrades != 0 {
		t.Fatalf("after a refused upgrade: %+v (was pid %d)", st, before)
	}

	// An upgrade to another binary.
	v2 := filepath.Join(dir, "nydusd-v2")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, b, 0o755); err != nil {
		t.Fatal(err)
	}
	err = UpgradeAll(ctx, dir, v2, nil)
	if err != nil {
		t.Fatalf("%v: %s", err, logs())
	}
	st = status()
	if st.Upgrades != 1 || st.Nydusd != v2 || st.PID == before {
		t.Fatalf("after the upgrade: %+v", st)
	}
	t.Logf("upgrade: pid %d -> %d running %s", before, st.PID, st.Nydusd)
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID)); exe != v2 {
		t.Fatalf("pid %d runs %s, not %s", st.PID, exe, v2)
	}
	for i := 0; i < 100 && processAlive(before); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(before) {
		t.Fatalf("the old nydusd %d still runs", before)
	}
	if fuseDev(mp) != dev {
		t.Fatal("the upgrade changed the mount")
	}
	if _, err := os.Stat(sock + upgradeSuffix); !os.IsNotExist(err) {
		t.Fatalf("the upgrade's API socket kept its temporary name: %v", err)
	}
	info, err := newDaemonAPI(sock).info(ctx)
	if err != nil || info.State != "RUNNING" {
		t.Fatalf("the API socket after the upgrade: %+v %v", info, err)
	}
	// A failover after the upgrade runs the new binary.
	st = killed(3)
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID)); exe != v2 {
		t.Fatalf("failover after the upgrade runs %s", exe)
	}

	// SIGTERM: a stop; nydusd unmounts, the keeper ends.
	p, _ := os.FindProcess(kpid)
	p.Signal(unix.SIGTERM)
	for i := 0; i < 250 && processAlive(kpid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(kpid) || FUSEMountedAt(mp) {
		t.Fatalf("after SIGTERM: keeper alive %v, mounted %v: %s", processAlive(kpid), FUSEMountedAt(mp), logs())
	}
	if _, err := os.Stat(ctl); !os.IsNotExist(err) {
		t.Fatalf("control socket left: %v", err)
	}
}

// processAlive: a zombie counts as gone.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}
