package supervisor

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// The daemon's side of the socket: what nydusd does on sendfd (HandOver)
// and on takeover (Fetch).

// dial connects to the supervisor socket at path, bounded by ctx.
func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	uc := c.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		uc.SetDeadline(dl)
	}
	return uc, nil
}

// HandOver sends data (not empty: a descriptor needs a byte to ride on)
// with the descriptor fd on its first message to the supervisor at path,
// then closes the connection.
func HandOver(ctx context.Context, path string, data []byte, fd int) error {
	if len(data) == 0 {
		return fmt.Errorf("supervisor: an empty state cannot be handed over")
	}
	c, err := dial(ctx, path)
	if err != nil {
		return err
	}
	defer c.Close()
	return send(c, data, fd)
}

// send writes one hand-over: data, with fd on the first message.
func send(c *net.UnixConn, data []byte, fd int) error {
	first := min(len(data), 64<<10)
	n, _, err := c.WriteMsgUnix(data[:first], unix.UnixRights(fd), nil)
	if err == nil && n < first {
		err = fmt.Errorf("short write: %d of %d bytes", n, first)
	}
	if err == nil {
		_, err = c.Write(data[first:])
	}
	if err != nil {
		return fmt.Errorf("supervisor: sending state: %w", err)
	}
	return nil
}

// Fetch takes a stored state from the supervisor at path: the blob up to
// EOF and the descriptor of its first message, which the caller owns.
func Fetch(ctx context.Context, path string) ([]byte, int, error) {
	c, err := dial(ctx, path)
	if err != nil {
		return nil, -1, err
	}
	defer c.Close()
	return readState(c)
}
