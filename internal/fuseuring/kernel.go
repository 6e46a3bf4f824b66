package fuseuring

// Whether the kernel can serve FUSE over io_uring, and its switch.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrUnavailable is wrapped by the errors of Available and Start when the
// kernel cannot serve FUSE over io_uring.
var ErrUnavailable = errors.New("FUSE over io_uring unavailable")

const enableURingParam = "/sys/module/fuse/parameters/enable_uring"

// Enable turns the fuse module's enable_uring parameter on (root only), so
// that mounts made from now on may negotiate io_uring. It changes the
// setting for every FUSE server on the machine; servers that do not ask for
// io_uring at INIT are unaffected. restore puts the old value back (it does
// nothing when the parameter was already on).
func Enable() (restore func() error, err error) {
	old, err := os.ReadFile(enableURingParam)
	if err != nil {
		return nil, fmt.Errorf("%w: kernel without CONFIG_FUSE_IO_URING? %w", ErrUnavailable, err)
	}
	if strings.TrimSpace(string(old)) == "Y" {
		return func() error { return nil }, nil
	}
	if err := os.WriteFile(enableURingParam, []byte("Y"), 0o644); err != nil {
		return nil, fmt.Errorf("%w: turn on %s: %w", ErrUnavailable, enableURingParam, err)
	}
	return func() error { return os.WriteFile(enableURingParam, old, 0o644) }, nil
}

// Available reports whether this kernel can serve FUSE over io_uring now:
// the fuse module has enable_uring=Y and io_uring_setup accepts an
// SQE128 ring. Mounts made while it was N can't use io_uring.
func Available() error {
	b, err := os.ReadFile(enableURingParam)
	if err != nil {
		return fmt.Errorf("%w: kernel without CONFIG_FUSE_IO_URING? %w", ErrUnavailable, err)
	}
	if v := strings.TrimSpace(string(b)); v != "Y" {
		return fmt.Errorf("%w: %s is %q (echo Y > %s)", ErrUnavailable, enableURingParam, v, enableURingParam)
	}
	r, err := newRing(4)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.close()
	return nil
}

// possibleCPUs is the kernel's number of ring queues (num_possible_cpus,
// CPU ids being contiguous from 0).
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("fuseuring: %w", err)
	}
	maxID := -1
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		_, hi, _ := strings.Cut(part, "-")
		if hi == "" {
			hi = part
		}
		v, err := strconv.Atoi(hi)
		if err != nil {
			return 0, fmt.Errorf("fuseuring: parse /sys/devices/system/cpu/possible %q: %w", b, err)
		}
		maxID = max(maxID, v)
	}
	if maxID < 0 {
		return 0, fmt.Errorf("fuseuring: no CPUs in /sys/devices/system/cpu/possible")
	}
	return maxID + 1, nil
}
