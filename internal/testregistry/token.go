package testregistry

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

// serveToken is a token endpoint in the style of the distribution token
// spec: GET with optional Basic auth and service/scope query parameters,
// or an OAuth2 POST form (grant_type=password with username and
// password, or grant_type=refresh_token with the WithRefreshToken token;
// service, scope, client_id).
func (r *InProcess) serveToken(w http.ResponseWriter, req *http.Request) {
	var user, pass string
	field, kind := "token", "GET anonymous"
	defer func() {
		r.mu.Lock()
		r.grants[kind]++
		r.mu.Unlock()
	}()
	switch req.Method {
	case http.MethodGet:
		r.tokenGets.Add(1)
		var ok bool
		if user, pass, ok = req.BasicAuth(); ok {
			kind = "GET basic"
		}
	case http.MethodPost:
		r.tokenPosts.Add(1)
		if r.o.tokenGETOnly {
			kind = "denied"
			http.Error(w, "POST not supported", http.StatusMethodNotAllowed)
			return
		}
		if err := req.ParseForm(); err != nil || req.PostForm.Get("client_id") == "" {
			kind = "denied"
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		switch req.PostForm.Get("grant_type") {
		case "password":
			kind = "POST password"
			user, pass = req.PostForm.Get("username"), req.PostForm.Get("password")
		case "refresh_token":
			if r.o.refreshToken == "" || req.PostForm.Get("refresh_token") != r.o.refreshToken {
				kind = "denied"
				http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
				return
			}
			kind = "POST refresh_token"
			r.refreshGrants.Add(1)
			user, pass = r.o.user, r.o.pass // the refresh token stands for them
		default:
			kind = "denied"
			http.Error(w, "unsupported grant_type", http.StatusBadRequest)
			return
		}
		field = "access_token"
	default:
		kind = "denied"
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.o.user != "" && (user != r.o.user || pass != r.o.pass) {
		kind = "denied"
		http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusUnauthorized)
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "tok-" + hex.EncodeToString(b[:])
	r.mu.Lock()
	r.tokens[tok] = time.Now().Add(r.o.tokenTTL)
	r.mu.Unlock()
	body := map[string]any{field: tok}
	if r.o.expiresIn > 0 {
		body["expires_in"] = r.o.expiresIn
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}
