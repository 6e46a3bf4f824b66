package supervisor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialWhenListening retries until the supervisor's listener is up, as the
// trigger races Receive's listen only in tests (nydusd dials after the
// API call arrives).
func dialWhenListening(path string, data []byte, fd int) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = HandOver(context.Background(), path, data, fd); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// sameFile reports whether two descriptors are the same open file: a
// write through one moves the offset both see.
func sameFile(t *testing.T, a, b int) bool {
	t.Helper()
	before, _ := unix.Seek(b, 0, io.SeekCurrent)
	if _, err := unix.Write(a, []byte("x")); err != nil {
		t.Fatal(err)
	}
	after, _ := unix.Seek(b, 0, io.SeekCurrent)
	return after == before+1
}

func newSup(t *testing.T) *Supervisor {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "sup.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A 2 MiB blob and a descriptor go to the supervisor and back, twice
// over (a failover can repeat), and each time the descriptor is the same
// open file.
func TestRoundTripRepeated(t *testing.T) {
	s := newSup(t)
	f := tempFile(t)
	blob := make([]byte, 2<<20)
	for i := range blob {
		blob[i] = byte(rand.Uint32())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Receive(ctx, func(context.Context) error {
		go dialWhenListening(s.Path(), blob, int(f.Fd()))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !s.Stored() {
		t.Fatal("nothing stored")
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Fatalf("socket file left after the exchange: %v", err)
	}
	for round := 0; round < 3; round++ {
		done, err := s.Offer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, fd, err := Fetch(ctx, s.Path())
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !bytes.Equal(data, blob) {
			t.Fatalf("round %d: got %d bytes back, want the %d sent", round, len(data), len(blob))
		}
		if !sameFile(t, fd, int(f.Fd())) {
			t.Fatalf("round %d: the descriptor is not the one handed over", round)
		}
		unix.Close(fd)
	}
}

// A newer hand-over replaces the stored state, and the supervisor's copy
// of the first descriptor is closed.
func TestReceiveReplaces(t *testing.T) {
	s := newSup(t)
	f1, f2 := tempFile(t), tempFile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, f := range []*os.File{f1, f2} {
		name := []byte(f.Name())
		fd := int(f.Fd())
		if err := s.Receive(ctx, func(context.Context) error {
			go dialWhenListening(s.Path(), name, fd)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	data, fd := s.State()
	if string(data) != f2.Name() || !sameFile(t, fd, int(f2.Fd())) {
		t.Fatalf("stored %q, not the second hand-over", data)
	}
}

// No daemon dials: Receive ends with the context, and an Offer nobody
// takes ends with its own.
func TestTimeouts(t *testing.T) {
	s := newSup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Receive(ctx, func(context.Context) error { return nil })
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	// A failing trigger ends the wait after the grace, not at the deadline.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	start = time.Now()
	err = s.Receive(ctx2, func(context.Context) error { return errors.New("501 not implemented") })
	if err == nil || !strings.Contains(err.Error(), "501") || time.Since(start) > triggerGrace+3*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}

	f := tempFile(t)
	if err := s.Receive(context.Background(), func(context.Context) error {
		go dialWhenListening(s.Path(), []byte("state"), int(f.Fd()))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel3()
	done, err := s.Offer(ctx3)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("offer nobody took: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("offer outlived its context")
	}
	// The state is still there for the next one.
	done, err = s.Offer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, fd, err := Fetch(context.Background(), s.Path())
	if err != nil || string(data) != "state" {
		t.Fatalf("after a timed-out offer: %q %v", data, err)
	}
	unix.Close(fd)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// What the supervisor refuses: a hand-over without a descriptor, or
// without a byte of state, and an offer of nothing.
func TestRefusals(t *testing.T) {
	s := newSup(t)
	if _, err := s.Offer(context.Background()); err == nil {
		t.Fatal("offered an empty state")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Receive(ctx, func(context.Context) error {
		go func() {
			for i := 0; i < 100; i++ {
				c, err := net.Dial("unix", s.Path())
				if err == nil {
					c.Write([]byte("no fd"))
					c.Close()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "no control file descriptor") {
		t.Fatalf("err = %v", err)
	}
	// A daemon that dials and hangs up at once.
	err = s.Receive(ctx, func(context.Context) error {
		go func() {
			for i := 0; i < 100; i++ {
				if c, err := net.Dial("unix", s.Path()); err == nil {
					c.Close()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		return nil
	})
	if err == nil {
		t.Fatal("accepted an empty hand-over")
	}
	if s.Stored() {
		t.Fatal("a refused hand-over was stored")
	}
	if _, err := New(strings.Repeat("x", 200)); err == nil {
		t.Fatal("accepted a socket path longer than 107 bytes")
	}
}
