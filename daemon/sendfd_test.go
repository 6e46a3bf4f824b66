package daemon

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSendFDDialsOnceOnFailure: nydus-snapshotter's FetchDaemonStates
// waits, without a timeout, for the connection a sendfd makes, so a
// sendfd that fails still dials the supervisor, once, and sends nothing.
func TestSendFDDialsOnceOnFailure(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sup.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conns := make(chan []byte, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				b = []byte("read error: " + err.Error())
			}
			conns <- b
		}
	}()
	d := New(Options{Supervisor: sock})
	err = d.SendFD() // in INIT: no session to send
	if !errors.Is(err, ErrWrongState) {
		t.Fatalf("sendfd in INIT: %v", err)
	}
	select {
	case b := <-conns:
		if len(b) != 0 {
			t.Fatalf("a failed sendfd sent %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a failed sendfd did not dial the supervisor")
	}
	select {
	case <-conns:
		t.Fatal("sendfd dialed twice")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestTakeoverRefusals: a takeover needs a supervisor, INIT, and the
// /dev/fuse transport; each refusal says why, and the daemon stays in
// INIT.
func TestTakeoverRefusals(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{}, "no --supervisor"},
		{Options{Supervisor: "/nonexistent/sup.sock", URing: URingOn}, "--fuse-io-uring=on"},
		{Options{Supervisor: filepath.Join(t.TempDir(), "none.sock")}, "supervisor"},
	} {
		d := New(c.opts)
		err := d.Takeover()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("takeover with %+v: %v (want an error naming %q)", c.opts, err, c.want)
		}
		if d.State() != StateInit {
			t.Errorf("state %s after a refused takeover", d.State())
		}
	}
}
