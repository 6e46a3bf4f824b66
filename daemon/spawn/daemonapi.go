package spawn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// daemonAPI calls the HTTP API of one nydusd on its unix socket; every
// call opens its own connection, so none outlives a dying daemon.
type daemonAPI struct {
	sock string
	http *http.Client
}

func newDaemonAPI(sock string) *daemonAPI {
	return &daemonAPI{sock: sock, http: &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
}

// daemonInfo is the part of GET /api/v1/daemon the keeper uses.
type daemonInfo struct {
	State   string `json:"state"`
	Version struct {
		GitCommit string `json:"git_commit"`
	} `json:"version"`
}

func (a *daemonAPI) info(ctx context.Context) (daemonInfo, error) {
	var info daemonInfo
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://nydusd/api/v1/daemon", nil)
	resp, err := a.http.Do(req)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("GET /api/v1/daemon: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	return info, err
}

// put calls PUT /api/v1/daemon/<what>; 200 and 204 are success, as for
// nydus-snapshotter.
func (a *daemonAPI) put(ctx context.Context, what string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://nydusd/api/v1/daemon/"+what, nil)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("PUT %s: %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
}

// waitState polls until the daemon reports state want, gone (a closed
// channel) or ctx ends.
func (a *daemonAPI) waitState(ctx context.Context, want string, gone <-chan struct{}) error {
	var last string
	for {
		info, err := a.info(ctx)
		switch {
		case err == nil && info.State == want:
			return nil
		case err == nil:
			last = "state " + info.State
		default:
			last = err.Error()
		}
		select {
		case <-gone:
			return fmt.Errorf("nydusd exited before reaching %s (last: %s)", want, last)
		case <-ctx.Done():
			return fmt.Errorf("nydusd did not reach %s: %w (last: %s)", want, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
