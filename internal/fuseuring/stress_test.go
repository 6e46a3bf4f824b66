package fuseuring

// The stranded-request stress test. Each round mounts a loopback file
// system served over the rings by a helper child process, runs reader and
// writer child processes against it, and ends the serving at a random
// moment in one of several ways. Every client must return (data or an
// error) within a bound, none may be left in state D, no client may see
// wrong data, and the connection must end with nothing waiting.
//
// The same rounds run over DevLoop, the one-reader /dev/fuse loop the
// userspace overlay process serves with (TestStressDevLoopNoStrandedRequest,
// without the ring-only ways to end).
//
// FUSEURING_STRESS_ROUNDS sets the number of rounds (default 60, the
// `make test` count; `make soak` runs many more), FUSEURING_STRESS_SEED
// the random seed (default: the time).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

const (
	stressRoleEnv = "FUSEURING_STRESS_ROLE"
	// stressBound is how long a round's clients and server may take to
	// return once the serving ended.
	stressBound = 15 * time.Second
)

// stressActions are the ways a round ends the serving.
var stressActions = []string{
	"unmount", // the daemon's Stop: unmount (lazily when busy), then Close
	"lazy",    // lazy unmount; serve until the last open file is closed
	"sigkill", // SIGKILL of the serving process
	"exit",    // the serving process exits without unmounting
	"close",   // Close while still mounted
	"killq",   // a queue thread dies
}

// stressDevActions are the ways a DevLoop round ends the serving (it has
// no Close and no queue threads).
var stressDevActions = []string{"unmount", "lazy", "sigkill", "exit"}

// stressModes are how the server serves: over the rings with every
// request inline or with READ, WRITE and GETXATTR on goroutines, or over
// DevLoop the same two ways.
var (
	stressRingModes = []string{"inline", "async"}
	stressDevModes  = []string{"dev-inline", "dev-async"}
)

// stressTransport is what a round's server needs of the serving loop.
type stressTransport struct {
	conn     func() (int, error)
	requests func() uint64
	done     <-chan struct{}
	ring     *Transport // nil: DevLoop
}

// startStressTransport serves srv (raw its file system) as mode says.
func startStressTransport(srv *fuse.Server, raw fuse.RawFileSystem, dir, mode string) (*stressTransport, error) {
	var opts []Option
	if strings.HasSuffix(mode, "async") {
		opts = append(opts, WithAsyncOps("READ", "WRITE", "GETXATTR"))
	}
	if strings.HasPrefix(mode, "dev") {
		l, err := ServeDevice(srv, raw, opts...)
		if err != nil {
			return nil, err
		}
		return &stressTransport{conn: func() (int, error) { return ConnOf(dir) }, requests: l.Requests, done: l.Done()}, nil
	}
	if mode == "async" {
		opts = append(opts, WithEntries(3))
	}
	tr, err := Start(srv, raw, opts...)
	if err != nil {
		return nil, err
	}
	go srv.Serve()
	return &stressTransport{conn: func() (int, error) { return tr.ConnID(), nil },
		requests: func() uint64 { return tr.Stats().Requests }, done: tr.Done(), ring: tr}, nil
}

// stressMain runs a helper role of the stress test in a child process.
func stressMain(role string, args []string) int {
	switch role {
	case "server":
		return stressServer(args)
	case "reader":
		return stressReader(args)
	case "writer":
		return stressWriter(args)
	}
	fmt.Fprintln(os.Stderr, "unknown stress role", role)
	return 2
}

// stressPattern is the content of the backing file "big".
func stressPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i>>12)
	}
	return b
}

const stressBigSize = 1<<20 + 4321

// panicNode is a loopback node whose getxattr of user.panic panics: a
// panic in a handler, which must come back as an error.
type panicNode struct{ fs.LoopbackNode }

func (n *panicNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == "user.panic" {
		panic("stress: getxattr user.panic")
	}
	return n.LoopbackNode.Getxattr(ctx, attr, dest)
}

// stressServer mounts back at dir over the rings, prints "ready CONN",
// then does what the first line of stdin says and exits.
func stressServer(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "server: want DIR BACK ASYNC")
		return 2
	}
	dir, back := args[0], args[1]
	lr := &fs.LoopbackRoot{Path: back}
	lr.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder { //nolint:staticcheck // NewNode still works; moving to NodeWrapChilder is more than a lint fix
		return &panicNode{fs.LoopbackNode{RootData: r}}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(back, &st); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	lr.Dev = uint64(st.Dev)
	root := &fs.LoopbackNode{RootData: lr}
	lr.RootNode = root
	zero := time.Duration(0)
	opts := &fs.Options{EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-stress", Name: "fuseuringstress", DirectMount: true,
		ExtraCapabilities: fuse.CAP_OVER_IO_URING, DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		PanicHandler: func(any) fuse.Status { return fuse.EIO }}
	if strings.HasPrefix(args[2], "dev") {
		opts.MountOptions.ExtraCapabilities = 0 // served from /dev/fuse
	}
	raw := fs.NewNodeFS(root, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server: mount:", err)
		return 1
	}
	tr, err := startStressTransport(srv, raw, dir, args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "server: start serving:", err)
		go srv.Serve()
		srv.Unmount()
		return 1
	}
	if err := srv.WaitMount(); err != nil {
		fmt.Fprintln(os.Stderr, "server: WaitMount:", err)
		return 1
	}
	conn, err := tr.conn()
	if err != nil {
		fmt.Fprintln(os.Stderr, "server: connection:", err)
		return 1
	}
	fmt.Printf("ready %d\n", conn)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	action := strings.TrimSpace(line)
	fmt.Printf("served %d\n", tr.requests())
	ended := func() error {
		// Serve and the queues (or DevLoop) end with the connection.
		done := make(chan struct{})
		go func() { srv.Wait(); <-tr.done; close(done) }()
		select {
		case <-done:
			return nil
		case <-time.After(stressBound - 3*time.Second):
			return errors.New("serving did not end")
		}
	}
	fail := 0
	switch action {
	case "unmount":
		if err := unix.Unmount(dir, 0); err != nil {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				fmt.Fprintln(os.Stderr, "server: lazy unmount:", err)
				fail = 1
			}
		}
		if tr.ring != nil {
			if err := tr.ring.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "server: Close:", err)
				fail = 1
			}
		}
	case "lazy":
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			fmt.Fprintln(os.Stderr, "server: lazy unmount:", err)
			fail = 1
		}
	case "exit":
		os.Exit(0)
	case "close":
		if err := tr.ring.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "server: Close:", err)
			fail = 1
		}
		unix.Unmount(dir, unix.MNT_DETACH)
	case "killq":
		q := tr.ring.queues[rand.IntN(len(tr.ring.queues))]
		q.die.Store(true)
		tr.ring.wake(q)
		<-q.done
		unix.Unmount(dir, unix.MNT_DETACH)
	default:
		fmt.Fprintln(os.Stderr, "server: unknown action", action)
		return 2
	}
	if err := ended(); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	return fail
}

// stressReader reads "big" at DIR for up to DUR, checking the data, with
// lookups of missing names and a getxattr that panics in the server; it
// stops at the first error (the serving ended) and exits 3 on wrong data.
func stressReader(args []string) int {
	if len(args) != 2 {
		return 2
	}
	dir := args[0]
	dur, _ := time.ParseDuration(args[1])
	want := stressPattern(stressBigSize)
	buf := make([]byte, 16<<10)
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline); i++ {
		f, err := os.Open(filepath.Join(dir, "big"))
		if err != nil {
			return 0
		}
		for j := 0; j < 32 && time.Now().Before(deadline); j++ {
			off := rand.IntN(stressBigSize - len(buf))
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			n, err := f.ReadAt(buf, int64(off))
			if err != nil && err != io.EOF {
				f.Close()
				return 0
			}
			if !bytes.Equal(buf[:n], want[off:off+n]) {
				fmt.Fprintf(os.Stderr, "reader: wrong data at %d\n", off)
				return 3
			}
			if _, err := os.Lstat(filepath.Join(dir, "missing-"+strconv.Itoa(j))); !errors.Is(err, os.ErrNotExist) {
				f.Close()
				return 0
			}
			if j%8 == 0 {
				unix.Getxattr(filepath.Join(dir, "big"), "user.panic", buf[:64])
			}
		}
		f.Close()
	}
	return 0
}

// stressWriter creates, writes, syncs, renames, reads back and removes
// files under DIR for up to DUR; it stops at the first error and exits 3
// if a file reads back wrong.
func stressWriter(args []string) int {
	if len(args) != 2 {
		return 2
	}
	dir := args[0]
	dur, _ := time.ParseDuration(args[1])
	data := stressPattern(96 << 10)
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline); i++ {
		name := filepath.Join(dir, fmt.Sprintf("w%d-%d", os.Getpid(), i))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			return 0
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return 0
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return 0
		}
		if err := f.Close(); err != nil {
			return 0
		}
		if err := os.Rename(name, name+".r"); err != nil {
			return 0
		}
		b, err := os.ReadFile(name + ".r")
		if err != nil {
			return 0
		}
		if !bytes.Equal(b, data) {
			fmt.Fprintf(os.Stderr, "writer: %s read back %d bytes, wrong\n", name, len(b))
			return 3
		}
		if err := os.Remove(name + ".r"); err != nil {
			return 0
		}
	}
	return 0
}

// stressRounds is FUSEURING_STRESS_ROUNDS, or def.
func stressRounds(tb testing.TB, def int) int {
	if v := os.Getenv("FUSEURING_STRESS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("FUSEURING_STRESS_ROUNDS=%q", v)
		}
		return n
	}
	return def
}

// TestStressNoStrandedRequest runs the stress rounds over the rings; see
// the file doc.
func TestStressNoStrandedRequest(t *testing.T) {
	needURing(t)
	runStress(t, stressActions, stressRingModes, "the rings")
}

// TestStressDevLoopNoStrandedRequest runs the stress rounds over DevLoop.
func TestStressDevLoopNoStrandedRequest(t *testing.T) {
	needFUSE(t)
	runStress(t, stressDevActions, stressDevModes, "DevLoop")
}

// runStress runs the rounds, each ending the serving in one of actions,
// served in one of modes (over what: for the log).
func runStress(t *testing.T, actions, modes []string, what string) {
	if err := MountFusectl(); err != nil {
		t.Skipf("skipped: needs fusectl to watch the connection: %v", err)
	}
	rounds := stressRounds(t, 60)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("FUSEURING_STRESS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("%d rounds, seed %d (FUSEURING_STRESS_SEED)", rounds, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	back := t.TempDir()
	if err := os.WriteFile(filepath.Join(back, "big"), stressPattern(stressBigSize), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	start := time.Now()
	count := map[string]int{}
	var requests uint64
	for round := range rounds {
		action := actions[rng.IntN(len(actions))]
		async := modes[rng.IntN(len(modes))]
		delay := time.Duration(rng.IntN(120)) * time.Millisecond
		n, err := stressRound(t, exe, mnt, back, action, async, delay)
		if err != nil {
			t.Fatalf("round %d (%s, %s, after %v): %v", round, action, async, delay, err)
		}
		requests += n
		count[action]++
		if (round+1)%500 == 0 {
			t.Logf("%d rounds in %v", round+1, time.Since(start).Round(time.Second))
		}
	}
	t.Logf("%d rounds in %v, no stranded request; per action %v; %d requests served over %s before the serving was ended (SIGKILL rounds not counted)", rounds, time.Since(start).Round(time.Millisecond), count, requests, what)
	if requests == 0 {
		t.Errorf("%s served no request: the rounds did not load the mount", what)
	}
}

type stressChild struct {
	name   string
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan error
	reaped bool
}

// stderr is the child's error output, shortened.
func (c *stressChild) stderr() string {
	s := c.out.String()
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

func startStressChild(exe, name, role string, args ...string) (*stressChild, error) {
	c := &stressChild{name: name, done: make(chan error, 1)}
	c.cmd = exec.Command(exe, append([]string{"-test.run=^$"}, args...)...)
	c.cmd.Env = append(os.Environ(), stressRoleEnv+"="+role)
	c.cmd.Stderr = &c.out
	return c, nil
}

func (c *stressChild) start() error {
	if err := c.cmd.Start(); err != nil {
		return err
	}
	go func() { c.done <- c.cmd.Wait() }()
	return nil
}

// procState is the state letter of process pid ("D" = uninterruptible),
// read from /proc/PID/stat (which does not block on a stuck process).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return "?"
	}
	return s[i+2 : i+3]
}

// stressRound runs one round and returns what went wrong.
func stressRound(t *testing.T, exe, mnt, back, action, async string, delay time.Duration) (requests uint64, err error) {
	srv, _ := startStressChild(exe, "server", "server", mnt, back, async)
	stdin, _ := srv.cmd.StdinPipe()
	stdout, _ := srv.cmd.StdoutPipe()
	if err := srv.start(); err != nil {
		return 0, err
	}
	conn := -1
	children := []*stressChild{srv}
	defer func() {
		if err == nil {
			return
		}
		// Safety net: report the children's states, then end the
		// connection so nothing stays in state D, and reap them.
		var states []string
		for _, c := range children {
			if c.cmd.Process != nil {
				states = append(states, fmt.Sprintf("%s pid %d state %s stderr %q", c.name, c.cmd.Process.Pid, procState(c.cmd.Process.Pid), c.stderr()))
			}
		}
		if conn >= 0 {
			w, _ := ConnWaiting(conn)
			states = append(states, fmt.Sprintf("connection %d waiting %d", conn, w))
			AbortConn(conn)
		}
		for _, c := range children {
			if c.reaped {
				continue
			}
			c.cmd.Process.Kill()
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				states = append(states, c.name+" not reaped after abort and kill")
			}
		}
		unix.Unmount(mnt, unix.MNT_DETACH)
		err = fmt.Errorf("%w\n%s", err, strings.Join(states, "\n"))
	}()
	ready, served := make(chan string, 1), make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		ready <- line
		line, _ = br.ReadString('\n')
		served <- line
	}()
	select {
	case line := <-ready:
		if _, err := fmt.Sscanf(line, "ready %d", &conn); err != nil {
			<-srv.done
			srv.reaped = true
			return requests, fmt.Errorf("server did not start: %q %s", line, srv.stderr())
		}
	case <-time.After(stressBound):
		return requests, errors.New("server not ready")
	}
	dur := (delay + 150*time.Millisecond).String()
	for i, role := range []string{"reader", "reader", "writer"} {
		c, _ := startStressChild(exe, fmt.Sprintf("%s%d", role, i), role, mnt, dur)
		if err := c.start(); err != nil {
			return requests, err
		}
		children = append(children, c)
	}
	time.Sleep(delay)
	if action == "sigkill" {
		srv.cmd.Process.Signal(syscall.SIGKILL)
	} else {
		fmt.Fprintln(stdin, action)
	}
	deadline := time.After(stressBound)
	for _, c := range children {
		select {
		case werr := <-c.done:
			c.reaped = true
			if c == srv {
				if action == "sigkill" || action == "exit" {
					continue
				}
				if werr != nil {
					return requests, fmt.Errorf("server after %s: %w: %s", action, werr, c.stderr())
				}
				continue
			}
			var ee *exec.ExitError
			if errors.As(werr, &ee) && ee.ExitCode() == 3 {
				return requests, fmt.Errorf("%s saw wrong data: %s", c.name, c.stderr())
			}
			if werr != nil {
				return requests, fmt.Errorf("%s: %w: %s", c.name, werr, c.stderr())
			}
		case <-deadline:
			return requests, fmt.Errorf("%s (pid %d, state %s) did not return within %v", c.name, c.cmd.Process.Pid, procState(c.cmd.Process.Pid), stressBound)
		}
	}
	if action == "sigkill" || action == "exit" {
		// The mount outlives its daemon (the kernel aborted the
		// connection when its last descriptor closed); unmount it as
		// the snapshotter would.
		if err := unix.Unmount(mnt, 0); err != nil {
			return requests, fmt.Errorf("unmount after the daemon died: %w", err)
		}
	}
	if action != "sigkill" {
		select {
		case line := <-served:
			fmt.Sscanf(line, "served %d", &requests)
		default:
		}
	}
	// Every process of the connection is gone: so must be the
	// connection, with nothing waiting on it. The id may be reused by
	// another mount (of anyone on the machine) as soon as ours ends:
	// a live id that a mount other than ours carries is not ours.
	start := time.Now()
	for {
		alive, err := ConnAlive(conn)
		if err != nil {
			return requests, err
		}
		if !alive || someoneElsesConn(conn, mnt) {
			break
		}
		w, err := ConnWaiting(conn)
		if err == nil && w == 0 && time.Since(start) > 5*time.Second {
			break // ends with nothing waiting (slow teardown)
		}
		if time.Since(start) > stressBound {
			return requests, fmt.Errorf("connection %d: %d requests waiting %v after every process ended\n%s", conn, w, stressBound, dStateTasks())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("connection %d took %v to end after every process ended", conn, d.Round(time.Millisecond))
	}
	if _, err := ConnOf(mnt); err == nil {
		return requests, fmt.Errorf("%s still mounted", mnt)
	}
	return requests, nil
}

// someoneElsesConn reports whether FUSE connection id conn now names a
// mount other than the one at mnt (ids are reused once freed).
func someoneElsesConn(conn int, mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	dev := fmt.Sprintf("%d:%d", conn>>20, conn&(1<<20-1))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[2] == dev && unescapeMountinfo(f[4]) != mnt {
			return true
		}
	}
	return false
}

// dStateTasks lists the tasks of the machine in state D with their
// kernel stacks (for a stranded request's report).
func dStateTasks() string {
	var b strings.Builder
	procs, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	for _, p := range procs {
		st, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) || s[i+2] != 'D' {
			continue
		}
		stack, _ := os.ReadFile(p + "/stack")
		fmt.Fprintf(&b, "D: %s %s\n%s", p, s[strings.IndexByte(s, '(')+1:i], stack)
	}
	if b.Len() == 0 {
		return "no task in state D"
	}
	return b.String()
}
