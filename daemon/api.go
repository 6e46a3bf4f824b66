package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/gonydus/nydus/daemon/config"
)

// APIError is upstream's error body.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotReady):
		status = http.StatusServiceUnavailable
	case errors.Is(err, ErrUnsupported):
		status = http.StatusNotImplemented
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrInvalidInput), errors.Is(err, ErrExists), errors.Is(err, ErrWrongState):
		status = http.StatusBadRequest
	}
	writeJSON(w, status, APIError{Code: "UNDEFINED", Message: err.Error()})
}

// API serves nydusd's HTTP API for a daemon.
type API struct {
	d        *Daemon
	level    *slog.LevelVar
	exit     func()
	started  time.Time
	listener net.Listener
	srv      *http.Server
}

// NewAPI returns the API of d; level (may be nil) is changed by PUT
// /api/v1/daemon, exit is called by PUT /api/v1/daemon/exit.
func NewAPI(d *Daemon, level *slog.LevelVar, exit func()) *API {
	return &API{d: d, level: level, exit: exit, started: time.Now()}
}

// Serve listens on the unix socket path (mode 0600) until Close.
func (a *API) Serve(sock string) error {
	l, err := listenPrivate(sock)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", sock, err)
	}
	a.listener = l
	// No ReadTimeout or ReadHeaderTimeout: nydus-snapshotter watches the
	// daemon through a connection that never sends a request, and takes
	// its closing for the daemon's death.
	a.srv = &http.Server{Handler: a.Handler()}
	go func() {
		if err := a.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.d.log.Error("api server stopped", "err", err)
		}
	}()
	return nil
}

// Close stops the server.
func (a *API) Close() error {
	if a.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return a.srv.Shutdown(ctx)
}

// Handler returns the API routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/daemon", a.getDaemon)
	mux.HandleFunc("PUT /api/v1/daemon", a.putDaemon)
	mux.HandleFunc("GET /api/v2/daemon", a.getDaemonV2)
	mux.HandleFunc("PUT /api/v2/daemon", a.putDaemon)
	mux.HandleFunc("GET /api/v1/daemon/events", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.d.Events()) })
	mux.HandleFunc("GET /api/v1/daemon/backend", a.getBackend)
	mux.HandleFunc("PUT /api/v1/daemon/start", a.call(a.d.Resume))
	mux.HandleFunc("PUT /api/v1/daemon/exit", a.exitDaemon)
	mux.HandleFunc("PUT /api/v1/daemon/fuse/sendfd", a.call(a.d.SendFD))
	mux.HandleFunc("PUT /api/v1/daemon/fuse/takeover", a.call(a.d.Takeover))
	mux.HandleFunc("POST /api/v1/mount", a.mount)
	mux.HandleFunc("PUT /api/v1/mount", a.mount)
	mux.HandleFunc("DELETE /api/v1/mount", a.umount)
	mux.HandleFunc("GET /api/v1/metrics", a.metrics)
	mux.HandleFunc("GET /api/v1/metrics/files", a.metricsFiles)
	mux.HandleFunc("GET /api/v1/metrics/pattern", a.metricsPattern)
	mux.HandleFunc("GET /api/v1/metrics/backend", a.metricsBackend)
	mux.HandleFunc("GET /api/v1/metrics/blobcache", a.metricsBlobcache)
	mux.HandleFunc("GET /api/v1/metrics/fuse", a.metricsFUSE)
	mux.HandleFunc("GET /api/v1/metrics/memory", metricsMemory)
	mux.HandleFunc("GET /api/v1/metrics/inflight", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, []any{}) })
	mux.HandleFunc("GET /api/v1/config", a.unsupported("configuration hot reload"))
	mux.HandleFunc("PUT /api/v1/config", a.unsupported("configuration hot reload"))
	mux.Handle("GET /metrics", newMetricsHandler(a.d))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, APIError{Code: "UNDEFINED", Message: "no such endpoint " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func (a *API) unsupported(what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, fmt.Errorf("%w: %s is not implemented", ErrUnsupported, what))
	}
}

type versionInfo struct {
	PackageVer string `json:"package_ver"`
	GitCommit  string `json:"git_commit"`
	BuildTime  string `json:"build_time"`
	Profile    string `json:"profile"`
	Rustc      string `json:"rustc"`
}

type backendInfo struct {
	BackendType string          `json:"backend_type"`
	Mountpoint  string          `json:"mountpoint"`
	MountedTime string          `json:"mounted_time"`
	Config      json.RawMessage `json:"config"`
}

func (a *API) info(withBackends bool) map[string]any {
	out := map[string]any{
		"version":    versionInfo{PackageVer: a.d.opts.Version, GitCommit: a.d.opts.Version, Profile: "release", Rustc: "go (gonydus)"},
		"id":         nullable(a.d.opts.ID),
		"supervisor": nullable(a.d.opts.Supervisor),
		"state":      a.d.State(),
	}
	if withBackends {
		coll := map[string]backendInfo{}
		for mp, m := range a.d.Mounts() {
			coll[mp] = backendOf(m)
		}
		out["backend_collection"] = coll
	}
	return out
}

func backendOf(m *Mount) backendInfo {
	return backendInfo{BackendType: "Rafs", Mountpoint: m.Mountpoint, MountedTime: m.Mounted.UTC().Format(time.RFC3339), Config: m.Config.Redacted()}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (a *API) getDaemon(w http.ResponseWriter, r *http.Request)   { writeJSON(w, 200, a.info(true)) }
func (a *API) getDaemonV2(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.info(false)) }

func (a *API) putDaemon(w http.ResponseWriter, r *http.Request) {
	var body struct {
		LogLevel string `json:"log_level"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeErr(w, fmt.Errorf("%w: %v", ErrInvalidInput, err)) //nolint:errorlint // the cause is detail: writeErr must answer 400 whatever it wraps
		return
	}
	if a.level != nil {
		var l slog.Level
		switch strings.ToLower(body.LogLevel) {
		case "trace", "debug":
			l = slog.LevelDebug
		case "info":
			l = slog.LevelInfo
		case "warn", "warning":
			l = slog.LevelWarn
		case "error":
			l = slog.LevelError
		default:
			writeErr(w, fmt.Errorf("%w: log level %q", ErrInvalidInput, body.LogLevel))
			return
		}
		a.level.Set(l)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) getBackend(w http.ResponseWriter, r *http.Request) {
	m, err := a.d.Mount(r.URL.Query().Get("mountpoint"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, backendOf(m))
}

// call answers 204 when f succeeds, else its error.
func (a *API) call(f func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(); err != nil {
			a.d.log.Warn("api", "method", r.Method, "path", r.URL.Path, "err", err)
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// exitDaemon answers, then has the process exit without unmounting: a
// successor serves the session (live upgrade).
func (a *API) exitDaemon(w http.ResponseWriter, r *http.Request) {
	a.d.Exit()
	w.WriteHeader(http.StatusNoContent)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if a.exit != nil {
		go a.exit()
	}
}

// mountRequest is the body of POST/PUT /api/v1/mount.
type mountRequest struct {
	Source        string   `json:"source"`
	FsType        string   `json:"fs_type"`
	Config        string   `json:"config"`
	PrefetchFiles []string `json:"prefetch_files"`
}

func (a *API) mount(w http.ResponseWriter, r *http.Request) {
	mp := r.URL.Query().Get("mountpoint")
	if mp == "" {
		writeErr(w, fmt.Errorf("%w: mountpoint query parameter is required", ErrInvalidInput))
		return
	}
	var req mountRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, config.MaxSize+4096)).Decode(&req); err != nil {
		writeErr(w, fmt.Errorf("%w: %v", ErrInvalidInput, err)) //nolint:errorlint // the cause is detail: writeErr must answer 400 whatever it wraps
		return
	}
	if req.FsType != "" && req.FsType != "rafs" {
		writeErr(w, fmt.Errorf("%w: fs_type %q (only rafs)", ErrUnsupported, req.FsType))
		return
	}
	cfg, err := config.Parse([]byte(req.Config))
	if err != nil {
		writeErr(w, fmt.Errorf("%w: config: %v", ErrInvalidInput, err)) //nolint:errorlint // the cause is detail: writeErr must answer 400 whatever it wraps
		return
	}
	if r.Method == http.MethodPut {
		err = a.d.RemountMount(mp, req.Source, cfg)
	} else {
		err = a.d.AddMount(mp, req.Source, cfg, req.PrefetchFiles...)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) umount(w http.ResponseWriter, r *http.Request) {
	if err := a.d.RemoveMount(r.URL.Query().Get("mountpoint")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// mountFor resolves the ?id= of metrics requests; without it the only
// (or "/") mount.
func (a *API) mountFor(r *http.Request) (*Mount, error) {
	id := r.URL.Query().Get("id")
	if id != "" {
		return a.d.Mount(id)
	}
	ms := a.d.Mounts()
	if m, ok := ms["/"]; ok {
		return m, nil
	}
	if len(ms) == 1 {
		for _, m := range ms {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: give ?id=<mountpoint> (%d mounts)", ErrNotFound, len(ms))
}

// fopRead is the index of READ in upstream's per-operation counters
// (getattr, readlink, open, release, read, statfs, getxattr, listxattr,
// opendir, lookup, readdir, readdirplus, access, forget, batch_forget).
const (
	fopRead = 4
	fopMax  = 15
)

// fsMetrics is upstream's FsIoStats body of GET /api/v1/metrics;
// nydus-snapshotter indexes the arrays, so they always have upstream's
// lengths. Only READs are counted per operation.
type fsMetrics struct {
	FilesAccountEnabled       bool     `json:"files_account_enabled"`
	AccessPatternEnabled      bool     `json:"access_pattern_enabled"`
	LatestReadFilesEnabled    bool     `json:"record_latest_read_files_enabled"`
	MeasureLatency            bool     `json:"measure_latency"`
	ID                        string   `json:"id"`
	DataRead                  uint64   `json:"data_read"`
	BlockCountRead            []uint64 `json:"block_count_read"`
	FopHits                   []uint64 `json:"fop_hits"`
	FopErrors                 []uint64 `json:"fop_errors"`
	FopCumulativeLatencyTotal []uint64 `json:"fop_cumulative_latency_total"`
	ReadLatencyDist           []uint64 `json:"read_latency_dist"`
	NrOpens                   uint64   `json:"nr_opens"`
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	m, err := a.mountFor(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := fsMetrics{
		FilesAccountEnabled: m.Config.Rafs.IostatsFiles, AccessPatternEnabled: m.Config.Rafs.AccessPattern,
		LatestReadFilesEnabled: m.Config.Rafs.LatestReadFiles, MeasureLatency: true, ID: m.Mountpoint,
		FopHits: make([]uint64, fopMax), FopErrors: make([]uint64, fopMax), FopCumulativeLatencyTotal: make([]uint64, fopMax),
	}
	for _, f := range m.FS.Stats().Files() {
		out.NrOpens++
		out.DataRead += f.ReadBytes
		out.FopHits[fopRead] += f.ReadCount - f.ReadErrors
		out.FopErrors[fopRead] += f.ReadErrors
		out.FopCumulativeLatencyTotal[fopRead] += f.LatencyUs
	}
	size, latency := m.FS.Stats().Histograms()
	out.BlockCountRead, out.ReadLatencyDist = size[:], latency[:]
	writeJSON(w, 200, out)
}

func (a *API) metricsFiles(w http.ResponseWriter, r *http.Request) {
	m, err := a.mountFor(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := map[string]any{}
	for _, f := range m.FS.Stats().Files() {
		out[fmt.Sprint(f.Nid)] = f
	}
	writeJSON(w, 200, out)
}

func (a *API) metricsPattern(w http.ResponseWriter, r *http.Request) {
	m, err := a.mountFor(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	type pattern struct {
		Ino    uint64 `json:"ino"`
		NrRead uint64 `json:"nr_read"`
	}
	var out []pattern
	for _, f := range m.FS.Stats().Files() {
		out = append(out, pattern{Ino: f.Nid, NrRead: f.ReadCount})
	}
	writeJSON(w, 200, out)
}

func (a *API) metricsBackend(w http.ResponseWriter, r *http.Request) {
	m, err := a.mountFor(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, m.Backend.Metrics())
}

func (a *API) metricsBlobcache(w http.ResponseWriter, r *http.Request) {
	m, err := a.mountFor(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, m.Storage.Metrics().Snapshot())
}

// metricsFUSE reports the FUSE requests of the session by opcode.
func (a *API) metricsFUSE(w http.ResponseWriter, r *http.Request) {
	counts, noOpendir, ok := a.d.FUSERequests()
	if !ok {
		writeErr(w, fmt.Errorf("%w: no FUSE session", ErrNotReady))
		return
	}
	writeJSON(w, 200, map[string]any{"requests": counts, "zero_message_opendir": noOpendir})
}

// metricsMemory reports the Go heap of the daemon; with ?gc=1 after a
// garbage collection, so that the heap holds only what is still reachable.
func metricsMemory(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
	}
	if r.URL.Query().Get("profile") == "heap" {
		// A pprof heap profile (go tool pprof), for memory work.
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.Lookup("heap").WriteTo(w, 0); err != nil {
			writeErr(w, err)
		}
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writeJSON(w, 200, map[string]uint64{"heap_alloc": ms.HeapAlloc, "heap_inuse": ms.HeapInuse,
		"heap_idle": ms.HeapIdle, "heap_released": ms.HeapReleased, "stack_inuse": ms.StackInuse,
		"gc_sys": ms.GCSys, "other_sys": ms.OtherSys + ms.MSpanSys + ms.MCacheSys + ms.BuckHashSys,
		"heap_objects": ms.HeapObjects, "sys": ms.Sys, "num_gc": uint64(ms.NumGC),
		"memory_limit": uint64(max(debug.SetMemoryLimit(-1), 0))})
}

// listenPrivate listens on the unix socket path sock with mode 0600 from
// the moment the path exists: the socket is bound inside a fresh 0700
// directory beside sock, made private there, and renamed into place, so
// no other user can connect in between (a chmod after listening leaves a
// window under a permissive umask). A path too long for that falls back
// to bind and chmod.
func listenPrivate(sock string) (net.Listener, error) {
	_ = os.Remove(sock)
	tmp, err := os.MkdirTemp(filepath.Dir(sock), ".api-")
	if err == nil {
		defer os.RemoveAll(tmp)
		staged := filepath.Join(tmp, "s")
		if len(staged) < 108 {
			l, err := net.Listen("unix", staged)
			if err != nil {
				return nil, err
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			if err := os.Chmod(staged, 0o600); err == nil {
				if err = os.Rename(staged, sock); err == nil {
					return &unlinkOnClose{Listener: l, path: sock}, nil
				}
			}
			l.Close()
		}
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// unlinkOnClose removes the socket file at its final path when closed, as
// a listener bound at that path would.
type unlinkOnClose struct {
	net.Listener
	path string
	once sync.Once
}

func (u *unlinkOnClose) Close() error {
	err := u.Listener.Close()
	u.once.Do(func() { os.Remove(u.path) })
	return err
}
