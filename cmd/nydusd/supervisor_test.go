package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// testSupervisor plays nydus-snapshotter's pkg/supervisor by its
// protocol: for each exchange it listens on its path, accepts one
// connection and removes the path; it receives the daemon's state and
// FUSE descriptor up to EOF (sendfd), or sends them back and closes
// (takeover). It keeps its descriptor across exchanges, as the
// snapshotter does, so that the kernel connection outlives any daemon.
type testSupervisor struct {
	path string
	data []byte
	fd   int
}

func newTestSupervisor(t *testing.T, path string) *testSupervisor {
	s := &testSupervisor{path: path, fd: -1}
	t.Cleanup(func() {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
	})
	return s
}

// accept listens, runs trigger (the API call that makes the daemon
// dial) and serves the one connection with serve; both must end within
// 20 s. The trigger's error is returned, after the connection was served
// or, when the trigger failed, without waiting for it.
func (s *testSupervisor) accept(trigger func() error, serve func(*net.UnixConn) error) (triggerErr, serveErr error) {
	os.Remove(s.path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.AcceptUnix()
		l.Close()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		done <- serve(c)
	}()
	triggerErr = trigger()
	select {
	case serveErr = <-done:
	case <-time.After(20 * time.Second):
		l.Close()
		serveErr = errors.New("the daemon did not dial the supervisor within 20 s")
	}
	return triggerErr, serveErr
}

// fetch is the snapshotter's FetchDaemonStates: the state and descriptor
// the daemon sends while trigger (PUT sendfd) runs.
func (s *testSupervisor) fetch(trigger func() error) error {
	terr, serr := s.accept(trigger, func(c *net.UnixConn) error {
		var data []byte
		fd := -1
		buf := make([]byte, 256<<10)
		oob := make([]byte, unix.CmsgSpace(4)*64)
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			data = append(data, buf[:n]...)
			if oobn > 0 && fd < 0 {
				msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
				if perr == nil && len(msgs) > 0 {
					if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) > 0 {
						fd = fds[0]
						for _, f := range fds[1:] {
							unix.Close(f)
						}
					}
				}
			}
			if errors.Is(err, io.EOF) || (err == nil && n == 0 && oobn == 0) {
				break
			}
			if err != nil {
				return err
			}
		}
		if fd < 0 {
			return fmt.Errorf("received %d bytes and no control file descriptor", len(data))
		}
		s.data = data
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		s.fd = fd
		return nil
	})
	return errors.Join(terr, serr)
}

// send is the snapshotter's SendStatesTimeout: it hands data (the stored
// state when nil) and the stored descriptor to the daemon while trigger
// (PUT takeover) runs, and returns trigger's error.
func (s *testSupervisor) send(data []byte, trigger func() error) (triggerErr, serveErr error) {
	if data == nil {
		data = s.data
	}
	return s.accept(trigger, func(c *net.UnixConn) error {
		n, _, err := c.WriteMsgUnix(data, unix.UnixRights(s.fd), nil)
		if err != nil {
			return err
		}
		_, err = c.Write(data[n:])
		return err
	})
}

// daemonProc is a nydusd child process.
type daemonProc struct {
	cmd    *exec.Cmd
	sock   string
	stderr *testutil.Buffer
	exited chan struct{}
}

// startDaemon starts nydusd with args; sock is its --apisock. A daemon
// left running is killed at the end of the test.
func startDaemon(t *testing.T, nydusd, sock string, args ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: exec.Command(nydusd, args...), sock: sock, stderr: &testutil.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("nydusd %v stderr:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// kill ends the daemon with SIGKILL and reaps it.
func (p *daemonProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("nydusd not reaped 10 s after SIGKILL")
	}
}

func (p *daemonProc) client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
		}}}
}

// put calls PUT path; it fails unless the answer is 204.
func (p *daemonProc) put(path string) error {
	code, body, err := p.do(http.MethodPut, path, "")
	if err != nil {
		return err
	}
	if code != http.StatusNoContent {
		return fmt.Errorf("PUT %s: %d %s", path, code, body)
	}
	return nil
}

func (p *daemonProc) do(method, path, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://unix"+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := p.client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitState polls GET /api/v1/daemon until the state is want, for at
// most limit; it returns how long that took.
func (p *daemonProc) waitState(t *testing.T, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < limit {
		select {
		case <-p.exited:
			t.Fatalf("nydusd exited waiting for %s: %v\n%s", want, p.cmd.ProcessState, p.stderr.String())
		default:
		}
		body, err := apiState(p.sock)
		if err == nil && strings.Contains(body, `"state":"`+want+`"`) {
			return time.Since(start)
		}
		last = fmt.Sprint(body, err)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nydusd not %s within %v; last answer %s", want, limit, last)
	return 0
}
