package spawn

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/supervisor"
)

// Keeper is the process that supervises one nydusd: it starts nydusd with
// --supervisor and --id, takes its FUSE descriptor and state (sendfd)
// once it runs, and when nydusd dies while its mount is still there,
// starts it again with the same command line and hands the state over
// (takeover, start), as nydus-snapshotter's failover does. Asked on its
// control socket, it upgrades nydusd to another binary without
// unmounting. It runs in the session spawn.Start gives it, so it outlives
// whoever started it, and ends when its mount goes or on SIGTERM (which
// it passes on to nydusd, as a stop).
type Keeper struct {
	ID      string        // daemon id (--id)
	Socket  string        // supervisor socket (--supervisor)
	Control string        // control socket: upgrade, sendfd, status
	Binary  string        // nydusd; an upgrade replaces it
	Args    []string      // nydusd's arguments, with --mountpoint and --apisock
	Timeout time.Duration // for nydusd to mount and run

	mountpoint, apisock string
	log                 *slog.Logger
	sup                 *supervisor.Supervisor
	dev                 string // major:minor of the FUSE mount kept alive
	failovers, upgrades int
}

// Step budgets, as nydus-snapshotter gives them (failover-facts §1).
const (
	handOverTimeout = 10 * time.Second
	stepTimeout     = 10 * time.Second
	stopTimeout     = 10 * time.Second
	failoverTries   = 3
)

// keeperArgs is the keeper's command line after its subcommand.
func (k *Keeper) keeperArgs() []string {
	args := []string{"--id", k.ID, "--socket", k.Socket, "--control", k.Control}
	if k.Timeout > 0 {
		args = append(args, "--timeout", k.Timeout.String())
	}
	return append(append(args, "--", k.Binary), k.Args...)
}

// ParseKeeper reads a keeper's command line (what keeperArgs wrote).
func ParseKeeper(args []string) (*Keeper, error) {
	k := &Keeper{}
	fs := flag.NewFlagSet("supervise-nydusd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&k.ID, "id", "", "daemon id")
	fs.StringVar(&k.Socket, "socket", "", "supervisor socket")
	fs.StringVar(&k.Control, "control", "", "control socket")
	fs.DurationVar(&k.Timeout, "timeout", 30*time.Second, "how long nydusd may take to run")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("spawn: keeper: %w", err)
	}
	rest := fs.Args()
	if len(rest) < 1 || k.ID == "" || k.Socket == "" || k.Control == "" {
		return nil, errors.New("spawn: keeper: usage: --id ID --socket SUP --control CTL -- NYDUSD ARGS")
	}
	k.Binary, k.Args = rest[0], rest[1:]
	k.mountpoint, k.apisock = argValue(k.Args, "--mountpoint"), argValue(k.Args, "--apisock")
	if k.mountpoint == "" || k.apisock == "" {
		return nil, errors.New("spawn: keeper: nydusd's arguments need --mountpoint and --apisock")
	}
	for _, p := range []string{k.Socket, k.Control, k.apisock + upgradeSuffix} {
		if len(p) > 107 {
			return nil, fmt.Errorf("spawn: keeper: socket path %q is too long (107 bytes at most)", p)
		}
	}
	return k, nil
}

// argValue finds the value of flag name (given as "name value" or
// "name=value") in args.
func argValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if len(a) > len(name) && a[:len(name)+1] == name+"=" {
			return a[len(name)+1:]
		}
	}
	return ""
}

// withAPISock returns args with --apisock's value replaced.
func withAPISock(args []string, sock string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		if a == "--apisock" && i+1 < len(out) {
			out[i+1] = sock
		} else if len(a) > 9 && a[:10] == "--apisock=" {
			out[i] = "--apisock=" + sock
		}
	}
	return out
}

// KeeperMain runs a keeper from its command line (after the subcommand
// its host binary gives it) and returns the exit status. spawn.Start
// passes it a pipe as descriptor 3 and reads "ready" from it.
func KeeperMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("keeper", os.Getpid())
	k, err := ParseKeeper(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	k.log = log
	var ready *os.File
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
		unix.CloseOnExec(3) // not nydusd's to hold open
		ready = os.NewFile(3, "ready")
	}
	if err := k.Run(ready); err != nil {
		log.Error("keeper ends", "err", err)
		return 1
	}
	return 0
}

// proc is one nydusd process.
type proc struct {
	cmd  *exec.Cmd
	gone chan struct{} // closed once reaped
	err  error         // its exit status, once gone
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill ends p at once and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.gone
}

// stop asks p to stop (SIGTERM, which unmounts) and kills it if it does
// not within stopTimeout.
func (p *proc) stop() {
	p.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-p.gone:
	case <-time.After(stopTimeout):
		p.kill()
	}
}

// start runs binary with args plus the supervisor flags.
func (k *Keeper) start(binary string, args []string) (*proc, error) {
	args = append(append([]string(nil), args...), "--supervisor", k.Socket, "--id", k.ID)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	p := &proc{cmd: cmd, gone: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.gone) }()
	k.log.Info("nydusd started", "pid", cmd.Process.Pid, "binary", binary, "args", args)
	return p, nil
}

// handOver asks the running nydusd for its state (sendfd) and keeps it.
func (k *Keeper) handOver(ctx context.Context, api *daemonAPI) error {
	ctx, cancel := context.WithTimeout(ctx, handOverTimeout)
	defer cancel()
	return k.sup.Receive(ctx, func(ctx context.Context) error { return api.put(ctx, "fuse/sendfd") })
}

// Run starts nydusd, waits until it runs and has handed over its state,
// writes "ready PID" to ready (then closes it) and supervises it until
// its mount goes or the keeper is told to stop.
func (k *Keeper) Run(ready *os.File) error {
	if k.log == nil {
		k.log = slog.Default()
	}
	report := func(format string, a ...any) {
		if ready != nil {
			fmt.Fprintf(ready, format+"\n", a...)
			ready.Close()
			ready = nil
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	sup, err := supervisor.New(k.Socket)
	if err != nil {
		report("error %v", err)
		return err
	}
	k.sup = sup
	defer sup.Close()
	p, err := k.start(k.Binary, k.Args)
	if err != nil {
		report("error %v", err)
		return err
	}
	if err := k.waitRunning(p); err != nil {
		p.kill()
		unix.Unmount(k.mountpoint, unix.MNT_DETACH)
		report("error %v", err)
		return err
	}
	k.dev = fuseDev(k.mountpoint)
	api := newDaemonAPI(k.apisock)
	if err := k.handOver(context.Background(), api); err != nil {
		k.log.Error("failover unavailable: nydusd did not hand over its FUSE descriptor", "err", err)
	}
	ctl, reqs, err := k.serveControl()
	if err != nil {
		p.stop()
		report("error %v", err)
		return err
	}
	defer ctl.Close()
	report("ready %d", p.pid())
	for {
		select {
		case s := <-sigs:
			k.log.Info("stopping nydusd", "signal", s.String(), "pid", p.pid())
			p.stop()
			return nil
		case r := <-reqs:
			p = k.handle(r, p)
		case <-p.gone:
			if !k.mountAlive() {
				k.log.Info("nydusd exited and its mount is gone", "pid", p.pid(), "status", p.err)
				return nil
			}
			k.log.Warn("nydusd died with its mount in place: failover", "pid", p.pid(), "status", p.err)
			np, err := k.failover()
			if err != nil {
				return fmt.Errorf("failover of %s: %w", k.mountpoint, err)
			}
			p = np
		}
	}
}

// waitRunning waits until nydusd has mounted and reports RUNNING.
func (k *Keeper) waitRunning(p *proc) error {
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !FUSEMountedAt(k.mountpoint) {
		select {
		case <-p.gone:
			return fmt.Errorf("nydusd exited before mounting (%w)", p.err)
		case <-ctx.Done():
			return fmt.Errorf("nydusd did not mount %s within %v", k.mountpoint, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return newDaemonAPI(k.apisock).waitState(ctx, "RUNNING", p.gone)
}

// mountAlive reports whether the FUSE mount the keeper holds is still in
// the mount table (the same connection, not a later mount).
func (k *Keeper) mountAlive() bool {
	d := fuseDev(k.mountpoint)
	return d != "" && d == k.dev
}

// failover replaces a dead nydusd: the stored state goes to a new nydusd
// started with the same command line, which takes it over and starts.
func (k *Keeper) failover() (*proc, error) {
	if !k.sup.Stored() {
		return nil, errors.New("no state to take over: nydusd never handed one over (its sendfd failed)")
	}
	var errs []error
	for try := 1; try <= failoverTries; try++ {
		began := time.Now()
		p, err := k.takeOver(k.Binary, k.apisock, false)
		if err == nil {
			k.failovers++
			k.log.Info("failover done", "pid", p.pid(), "took", time.Since(began).Round(time.Millisecond), "failovers", k.failovers)
			return p, nil
		}
		k.log.Error("failover attempt failed", "try", try, "err", err)
		errs = append(errs, err)
		time.Sleep(time.Second)
	}
	return nil, errors.Join(errs...)
}

// takeOver starts binary (on API socket sock; with --upgrade for a live
// upgrade), offers it the stored state and has it take over; it returns
// the new daemon in READY (upgrade) or RUNNING (failover).
func (k *Keeper) takeOver(binary, sock string, upgrade bool) (*proc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
	defer cancel()
	offered, err := k.sup.Offer(ctx)
	if err != nil {
		return nil, err
	}
	args := withAPISock(k.Args, sock)
	if upgrade {
		args = append([]string{"--upgrade"}, args...)
	}
	p, err := k.start(binary, args)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*proc, error) {
		p.kill()
		return nil, err
	}
	api := newDaemonAPI(sock)
	step, stepCancel := context.WithTimeout(context.Background(), stepTimeout)
	defer stepCancel()
	if err := api.waitState(step, "INIT", p.gone); err != nil {
		return fail(err)
	}
	if err := api.put(step, "fuse/takeover"); err != nil {
		return fail(err)
	}
	if err := <-offered; err != nil {
		return fail(fmt.Errorf("takeover answered, but the state was not fetched: %w", err))
	}
	if upgrade {
		if err := api.waitState(step, "READY", p.gone); err != nil {
			return fail(err)
		}
		return p, nil
	}
	if err := api.put(step, "start"); err != nil {
		return fail(err)
	}
	if err := api.waitState(step, "RUNNING", p.gone); err != nil {
		return fail(err)
	}
	// The new daemon's own state, for the next failover; the old one
	// still serves if this fails.
	if err := k.handOver(context.Background(), api); err != nil {
		k.log.Warn("the new nydusd did not hand over its state; keeping its predecessor's", "err", err)
	}
	return p, nil
}

// upgradeSuffix names the API socket of an upgrading nydusd until its
// predecessor has exited; it then takes the usual name.
const upgradeSuffix = ".upgrade"

// upgrade replaces the running nydusd p by binary without unmounting:
// fresh state from p, the new daemon (--upgrade, its own API socket)
// takes it over and reaches READY, p exits (PUT exit: no unmount), the
// new one starts. Until p is told to exit, a failure leaves p serving.
func (k *Keeper) upgrade(p *proc, binary string) (*proc, error) {
	if _, err := os.Stat(binary); err != nil {
		return p, fmt.Errorf("upgrade: %w", err)
	}
	old := newDaemonAPI(k.apisock)
	if err := k.handOver(context.Background(), old); err != nil {
		return p, fmt.Errorf("upgrade refused: the running nydusd did not hand over its state: %w", err)
	}
	sock := k.apisock + upgradeSuffix
	os.Remove(sock)
	np, err := k.takeOver(binary, sock, true)
	if err != nil {
		os.Remove(sock)
		return p, fmt.Errorf("upgrade to %s refused, the running nydusd (pid %d) goes on: %w", binary, p.pid(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	if err := old.put(ctx, "exit"); err != nil {
		k.log.Warn("the old nydusd refused to exit; killing it (the new one holds the mount)", "pid", p.pid(), "err", err)
	}
	select {
	case <-p.gone:
	case <-time.After(stopTimeout):
		k.log.Warn("the old nydusd did not exit; killing it", "pid", p.pid())
		p.kill()
	}
	if err := os.Rename(sock, k.apisock); err != nil {
		k.log.Error("API socket keeps its upgrade name", "err", err)
	}
	api := newDaemonAPI(k.apisock)
	if err := api.put(ctx, "start"); err != nil {
		return np, fmt.Errorf("upgrade: the new nydusd (pid %d) did not start: %w", np.pid(), err)
	}
	if err := api.waitState(ctx, "RUNNING", np.gone); err != nil {
		return np, fmt.Errorf("upgrade: %w", err)
	}
	if err := k.handOver(context.Background(), api); err != nil {
		k.log.Warn("the upgraded nydusd did not hand over its state; keeping its predecessor's", "err", err)
	}
	k.Binary = binary
	k.upgrades++
	k.log.Info("upgrade done", "pid", np.pid(), "binary", binary)
	return np, nil
}

// setsid is the process attribute that gives the keeper its own session.
func setsid() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
