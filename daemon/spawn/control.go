package spawn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Status is what a keeper reports on its control socket.
type Status struct {
	Mountpoint string `json:"mountpoint"`
	Nydusd     string `json:"nydusd"` // the binary now serving
	PID        int    `json:"pid"`    // its pid
	Failovers  int    `json:"failovers"`
	Upgrades   int    `json:"upgrades"`
	StateBytes int    `json:"state_bytes"` // the stored blob, 0 if none
}

// ctlRequest is one control call, handled by the keeper's loop (which
// owns the nydusd process).
type ctlRequest struct {
	op, nydusd string
	reply      chan ctlReply
}

type ctlReply struct {
	status Status
	err    error
}

func (k *Keeper) status(p *proc) Status {
	data, _ := k.sup.State()
	return Status{Mountpoint: k.mountpoint, Nydusd: k.Binary, PID: p.pid(), Failovers: k.failovers, Upgrades: k.upgrades, StateBytes: len(data)}
}

// handle runs one control request in the keeper's loop and returns the
// nydusd serving afterwards.
func (k *Keeper) handle(r ctlRequest, p *proc) *proc {
	var err error
	switch r.op {
	case "upgrade":
		p, err = k.upgrade(p, r.nydusd)
	case "sendfd":
		err = k.handOver(context.Background(), newDaemonAPI(k.apisock))
	}
	r.reply <- ctlReply{k.status(p), err}
	return p
}

// serveControl listens on the control socket (owner only). Calls:
// GET /status, PUT /sendfd (take the daemon's state again, after an API
// mount or umount), PUT /upgrade?nydusd=PATH.
func (k *Keeper) serveControl() (io.Closer, <-chan ctlRequest, error) {
	os.Remove(k.Control)
	l, err := net.Listen("unix", k.Control)
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(k.Control, 0o600)
	reqs := make(chan ctlRequest)
	call := func(w http.ResponseWriter, r *http.Request, op, nydusd string) {
		req := ctlRequest{op: op, nydusd: nydusd, reply: make(chan ctlReply, 1)}
		select {
		case reqs <- req:
		case <-r.Context().Done():
			return
		}
		rep := <-req.reply
		w.Header().Set("Content-Type", "application/json")
		if rep.err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]any{"error": rep.err.Error(), "status": rep.status})
			return
		}
		json.NewEncoder(w).Encode(rep.status)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { call(w, r, "status", "") })
	mux.HandleFunc("PUT /sendfd", func(w http.ResponseWriter, r *http.Request) { call(w, r, "sendfd", "") })
	mux.HandleFunc("PUT /upgrade", func(w http.ResponseWriter, r *http.Request) {
		bin := r.URL.Query().Get("nydusd")
		if !filepath.IsAbs(bin) {
			http.Error(w, `{"error":"nydusd= must be an absolute path"}`, http.StatusBadRequest)
			return
		}
		call(w, r, "upgrade", bin)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	return srv, reqs, nil
}

// Control calls a keeper on its control socket: op is "status",
// "sendfd" or "upgrade" (then nydusd names the new binary, an absolute
// path). It returns the keeper's status after the call.
func Control(ctx context.Context, socket, op, nydusd string) (Status, error) {
	var st Status
	method, path := http.MethodPut, "/"+op
	switch op {
	case "status":
		method = http.MethodGet
	case "sendfd":
	case "upgrade":
		path += "?nydusd=" + nydusd
	default:
		return st, fmt.Errorf("spawn: unknown keeper call %q", op)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequestWithContext(ctx, method, "http://keeper"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return st, fmt.Errorf("spawn: keeper %s: %w", socket, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Status Status `json:"status"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return e.Status, fmt.Errorf("spawn: keeper %s: %s", socket, e.Error)
		}
		return st, fmt.Errorf("spawn: keeper %s: %s: %s", socket, resp.Status, strings.TrimSpace(string(b)))
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// ControlSuffix ends the name of every keeper's control socket.
const ControlSuffix = ".ctl"

// UpgradeAll upgrades, one after the other, the nydusd of every keeper
// whose control socket is in dir, to the binary nydusd. It calls report
// after each and returns the errors joined.
func UpgradeAll(ctx context.Context, dir, nydusd string, report func(socket string, st Status, err error)) error {
	socks, err := filepath.Glob(filepath.Join(dir, "*"+ControlSuffix))
	if err != nil {
		return err
	}
	if len(socks) == 0 {
		return fmt.Errorf("spawn: no supervised nydusd in %s", dir)
	}
	var errs []error
	live := 0
	for _, s := range socks {
		if c, err := net.Dial("unix", s); errors.Is(err, syscall.ECONNREFUSED) {
			os.Remove(s) // a keeper that was killed: nothing serves there
			continue
		} else if err == nil {
			c.Close()
		}
		live++
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		st, err := Control(cctx, s, "upgrade", nydusd)
		cancel()
		if report != nil {
			report(s, st, err)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if live == 0 {
		return fmt.Errorf("spawn: no supervised nydusd in %s (only stale sockets)", dir)
	}
	return errors.Join(errs...)
}
