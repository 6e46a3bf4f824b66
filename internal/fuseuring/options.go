package fuseuring

// The options of Start.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gonydus/nydus/internal/fuseabi"
)

type config struct {
	entries      int
	payloadSize  int
	devFD        int
	logger       *slog.Logger
	startTimeout time.Duration
	pin          bool
	async        [fuseabi.NumOpcodes]bool // opcodes handed to goroutines
	asyncIf      func(opcode uint32) bool
	conn         int // FUSE connection id, -1 to find it
	failQID      int // tests: this queue's registration fails (-1: none)
}

// Option configures Start.
type Option func(*config) error

// WithEntries sets the ring entries per queue (1..64, default 2). Each
// entry can hold one request; each queue serves its entries one after the
// other on one thread.
func WithEntries(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 64 {
			return fmt.Errorf("fuseuring: entries per queue %d not in 1..64", n)
		}
		c.entries = n
		return nil
	}
}

// WithMaxWrite sets the payload buffer size of every entry. It must be at
// least the mount's MountOptions.MaxWrite rounded up to pages (the kernel
// rejects smaller buffers). The default, 1 MiB, fits any go-fuse mount.
func WithMaxWrite(n int) Option {
	return func(c *config) error {
		if n < fuseMinReadBuffer || n > 16<<20 {
			return fmt.Errorf("fuseuring: max write %d not in %d..%d", n, fuseMinReadBuffer, 16<<20)
		}
		c.payloadSize = (n + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
		return nil
	}
}

// WithDeviceFD names the mount's /dev/fuse file descriptor. Without it,
// Start finds go-fuse's descriptor inside the fuse.Server, or else the only
// /dev/fuse descriptor of this process.
func WithDeviceFD(fd int) Option {
	return func(c *config) error {
		if fd < 0 {
			return fmt.Errorf("fuseuring: bad device fd %d", fd)
		}
		c.devFD = fd
		return nil
	}
}

// WithConnID names the mount's FUSE connection (its directory name in
// /sys/fs/fuse/connections: the mount's device number, major<<20|minor),
// which Close and a dying queue abort. Without it, Start finds it in
// /proc/self/mountinfo from go-fuse's mount point.
func WithConnID(id int) Option {
	return func(c *config) error {
		if id < 0 {
			return fmt.Errorf("fuseuring: bad connection id %d", id)
		}
		c.conn = id
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("fuseuring: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithStartTimeout bounds how long Start waits for the queues to register
// (default 10s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("fuseuring: start timeout %v", d)
		}
		c.startTimeout = d
		return nil
	}
}

// WithPinning sets whether each queue thread is pinned to its CPU
// (default true).
func WithPinning(pin bool) Option {
	return func(c *config) error {
		c.pin = pin
		return nil
	}
}

// WithAsync makes each queue hand every request to a goroutine of its
// own instead of serving it on the queue thread (default false); see
// WithAsyncOps, which does it for some operations only.
func WithAsync(async bool) Option {
	return func(c *config) error {
		for op := range c.async {
			c.async[op] = async
		}
		return nil
	}
}

// WithAsyncOps hands requests of the named operations ("READ", "SETLKW",
// names as in QueueStats.Ops) to goroutines; the rest are served inline.
// Inline, a request that blocks for long (a read that fetches from the
// network, a lock wait) stalls every other request of that CPU; a
// goroutine avoids that at a price: about 35 µs more per request on a
// 2-vCPU VM, as the goroutine and the reply's return to the queue thread
// take Go scheduler hand-offs. Pair it with more entries (WithEntries),
// which bound the requests in flight per CPU.
func WithAsyncOps(names ...string) Option {
	return func(c *config) error {
		for _, name := range names {
			op, ok := fuseabi.OpByName(name)
			if !ok {
				return fmt.Errorf("fuseuring: unknown operation %q", name)
			}
			c.async[op] = true
		}
		return nil
	}
}

// WithAsyncIf hands a request to a goroutine when pred(opcode) is true,
// opcode being the FUSE wire opcode (fuseabi.OpLookup, fuseabi.OpRead,
// ...), in addition to WithAsync/WithAsyncOps. pred runs on the
// queue thread for every request, so it must be quick and never block;
// it may change its answer over time (e.g. inline once data is local).
func WithAsyncIf(pred func(opcode uint32) bool) Option {
	return func(c *config) error {
		if pred == nil {
			return errors.New("fuseuring: nil WithAsyncIf predicate")
		}
		c.asyncIf = pred
		return nil
	}
}
