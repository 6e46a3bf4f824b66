package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/buildkit/cmd/buildkitd/config"

	"github.com/gonydus/nydus/internal/testutil"
)

const activationChildEnv = "GONYDUS_TEST_ACTIVATION_CHILD"

// TestActivationChild is TestSocketActivatedListener's child: listen on
// fd:// and answer one connection.
func TestActivationChild(t *testing.T) {
	if os.Getenv(activationChildEnv) == "" {
		t.Skip("helper process for TestSocketActivatedListener")
	}
	ls, err := listen(config.GRPCConfig{Address: []string{"fd://"}}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ls[0].Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("served from the passed socket"))
	c.Close()
}

// TestSocketActivatedListener: an address of fd:// serves on the socket
// systemd passed (LISTEN_FDS/LISTEN_PID), as buildkitd's does; without
// one it is an error.
func TestSocketActivatedListener(t *testing.T) {
	if _, err := listen(config.GRPCConfig{Address: []string{"fd://"}}, nil, false); err == nil {
		t.Fatal("fd:// without a passed socket was accepted")
	}
	sock := filepath.Join(t.TempDir(), "bk.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0],
		"-test.run=^TestActivationChild$", "-test.count=1", "-test.timeout=50s")
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", activationChildEnv+"=1")
	cmd.ExtraFiles = []*os.File{f}
	var output testutil.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close() // the child holds it now
	out := make(chan []byte, 1)
	go func() { cmd.Wait(); out <- output.Bytes() }()
	var c net.Conn
	for range 100 {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	c.Close()
	if string(b) != "served from the passed socket" {
		t.Fatalf("got %q, %v; child:\n%s", b, err, <-out)
	}
	<-out
}
