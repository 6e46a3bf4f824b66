package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// The supervisor protocol, as nydus-snapshotter's pkg/supervisor speaks
// it: the supervisor listens on a unix stream socket and accepts one
// connection; the daemon dials it. The payload has no framing: bytes up to
// EOF, with the FUSE descriptor in an SCM_RIGHTS message on the first
// write.

// supervisorTimeout bounds each exchange with the supervisor.
const supervisorTimeout = 10 * time.Second

func dialSupervisor(path string) (*net.UnixConn, error) {
	c, err := net.DialTimeout("unix", path, supervisorTimeout)
	if err != nil {
		return nil, fmt.Errorf("supervisor %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(supervisorTimeout))
	return uc, nil
}

// sendState sends data and fd over c and closes it.
func sendState(c *net.UnixConn, data []byte, fd int) error {
	defer c.Close()
	if len(data) == 0 {
		return errors.New("supervisor: empty state")
	}
	n, oobn, err := c.WriteMsgUnix(data, unix.UnixRights(fd), nil)
	if err != nil {
		return fmt.Errorf("supervisor: send: %w", err)
	}
	if oobn == 0 {
		return errors.New("supervisor: the descriptor was not sent")
	}
	if n < len(data) {
		if _, err := c.Write(data[n:]); err != nil {
			return fmt.Errorf("supervisor: send: %w", err)
		}
	}
	return nil
}

// recvState reads the state and the first descriptor from c until EOF,
// and closes c. Descriptors beyond the first are closed.
func recvState(c *net.UnixConn) (data []byte, fd int, err error) {
	defer c.Close()
	fd = -1
	buf := make([]byte, 256<<10)
	oob := make([]byte, unix.CmsgSpace(4)*64)
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		data = append(data, buf[:n]...)
		if oobn > 0 {
			fds, perr := parseRights(oob[:oobn])
			for _, f := range fds {
				if fd < 0 {
					fd = f
				} else {
					unix.Close(f)
				}
			}
			if perr != nil && fd < 0 {
				err = errors.Join(err, perr)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0 && oobn == 0) {
			break
		}
		if err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			return nil, -1, fmt.Errorf("supervisor: receive: %w", err)
		}
	}
	if fd < 0 {
		return nil, -1, fmt.Errorf("supervisor: received %d bytes and no FUSE descriptor (has the supervisor been sent one?)", len(data))
	}
	return data, fd, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, f...)
	}
	return fds, nil
}
