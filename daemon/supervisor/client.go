package supervisor

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// The daemon's side of the socket: what nydusd does on sendfd (HandOver)
// and on takeover (Fetch).

// Dial connects to the supervisor socket at path, bounded by ctx (the
// deadline also bounds the exchange on the connection). nydusd dials
// before it knows whether it has anything to send: nydus-snapshotter waits
// for the connection even when sendfd fails.
func Dial(ctx context.Context, path string) (*net.UnixConn, error) {
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
	c, err := Dial(ctx, path)
	if err != nil {
		return err
	}
	defer c.Close()
	return Send(c, data, fd)
}

// Send writes one hand-over on a dialled connection: data (not empty),
// with fd on the first message. The caller closes c.
func Send(c *net.UnixConn, data []byte, fd int) error {
	if len(data) == 0 {
		return fmt.Errorf("supervisor: an empty state cannot be handed over")
	}
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
	c, err := Dial(ctx, path)
	if err != nil {
		return nil, -1, err
	}
	defer c.Close()
	return ReadState(c)
}
