package graphdriver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/docker/go-plugins-helpers/sdk"
)

// manifest answers /Plugin.Activate.
const manifest = `{"Implements": ["GraphDriver"]}`

// Handler returns the plugin's HTTP handler (serve it on
// /run/docker/plugins/<name>.sock).
func (d *Driver) Handler() sdk.Handler {
	h := sdk.NewHandler(manifest)
	h.HandleFunc("/GraphDriver.Init", func(w http.ResponseWriter, r *http.Request) {
		var req initRequest
		if decode(w, r, &req) {
			reply(w, d.log, "Init", errResponse{}, d.Init(req.Home, req.Opts, req.UIDMaps, req.GIDMaps))
		}
	})
	h.HandleFunc("/GraphDriver.Capabilities", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, capabilitiesResponse{Capabilities: d.Capabilities()}, false)
	})
	h.HandleFunc("/GraphDriver.Create", func(w http.ResponseWriter, r *http.Request) {
		var req createRequest
		if decode(w, r, &req) {
			reply(w, d.log, "Create", errResponse{}, d.Create(req.ID, req.Parent, req.StorageOpt))
		}
	})
	h.HandleFunc("/GraphDriver.CreateReadWrite", func(w http.ResponseWriter, r *http.Request) {
		var req createRequest
		if decode(w, r, &req) {
			reply(w, d.log, "CreateReadWrite", errResponse{}, d.CreateReadWrite(req.ID, req.Parent, req.StorageOpt))
		}
	})
	h.HandleFunc("/GraphDriver.Remove", func(w http.ResponseWriter, r *http.Request) {
		var req idRequest
		if decode(w, r, &req) {
			reply(w, d.log, "Remove", errResponse{}, d.Remove(req.ID))
		}
	})
	h.HandleFunc("/GraphDriver.Get", func(w http.ResponseWriter, r *http.Request) {
		var req idRequest
		if decode(w, r, &req) {
			dir, err := d.Get(req.ID, req.MountLabel)
			reply(w, d.log, "Get", getResponse{Dir: dir}, err)
		}
	})
	h.HandleFunc("/GraphDriver.Put", func(w http.ResponseWriter, r *http.Request) {
		var req idRequest
		if decode(w, r, &req) {
			reply(w, d.log, "Put", errResponse{}, d.Put(req.ID))
		}
	})
	h.HandleFunc("/GraphDriver.Exists", func(w http.ResponseWriter, r *http.Request) {
		var req idRequest
		if decode(w, r, &req) {
			sdk.EncodeResponse(w, existsResponse{Exists: d.Exists(req.ID)}, false)
		}
	})
	h.HandleFunc("/GraphDriver.Status", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, statusResponse{Status: d.Status()}, false)
	})
	h.HandleFunc("/GraphDriver.GetMetadata", func(w http.ResponseWriter, r *http.Request) {
		var req idRequest
		if decode(w, r, &req) {
			m, err := d.Metadata(req.ID)
			reply(w, d.log, "GetMetadata", metadataResponse{Metadata: m}, err)
		}
	})
	h.HandleFunc("/GraphDriver.Cleanup", func(w http.ResponseWriter, r *http.Request) {
		reply(w, d.log, "Cleanup", errResponse{}, d.Cleanup())
	})
	h.HandleFunc("/GraphDriver.Diff", func(w http.ResponseWriter, r *http.Request) {
		var req diffRequest
		if !decode(w, r, &req) {
			return
		}
		rc, err := d.Diff(r.Context(), req.ID, req.Parent)
		if err != nil {
			reply(w, d.log, "Diff", errResponse{}, err)
			return
		}
		sdk.StreamResponse(w, rc)
	})
	h.HandleFunc("/GraphDriver.Changes", func(w http.ResponseWriter, r *http.Request) {
		var req diffRequest
		if decode(w, r, &req) {
			c, err := d.Changes(r.Context(), req.ID, req.Parent)
			reply(w, d.log, "Changes", changesResponse{Changes: c}, err)
		}
	})
	h.HandleFunc("/GraphDriver.ApplyDiff", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, err := d.ApplyDiff(r.Context(), q.Get("id"), q.Get("parent"), r.Body)
		reply(w, d.log, "ApplyDiff", sizeResponse{Size: n}, err)
	})
	h.HandleFunc("/GraphDriver.DiffSize", func(w http.ResponseWriter, r *http.Request) {
		var req diffRequest
		if decode(w, r, &req) {
			n, err := d.DiffSize(r.Context(), req.ID, req.Parent)
			reply(w, d.log, "DiffSize", sizeResponse{Size: n}, err)
		}
	})
	return h
}

// decode reads a JSON request body; an empty body is an empty request.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	if err == nil || err == io.EOF {
		return true
	}
	sdk.EncodeResponse(w, errResponse{Err: "graphdriver: bad request: " + err.Error()}, true)
	return false
}

// reply writes resp, with err (if any) in its Err field and a 500 status,
// as dockerd's plugin client expects.
func reply(w http.ResponseWriter, log *slog.Logger, op string, resp any, err error) {
	if err == nil {
		sdk.EncodeResponse(w, resp, false)
		return
	}
	log.Error("graphdriver call failed", "op", op, "err", err)
	// Every response type has a string Err field; set it generically.
	b, _ := json.Marshal(resp)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["Err"] = err.Error()
	sdk.EncodeResponse(w, m, true)
}
