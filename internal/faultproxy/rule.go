package faultproxy

import (
	"net/http"
	"strings"
	"time"
)

// BodyFault is what happens to a forwarded response body.
type BodyFault int

const (
	// BodyIntact forwards the body unchanged.
	BodyIntact BodyFault = iota
	// BodyReset sends At bytes of the body, then resets the connection.
	BodyReset
	// BodyStall sends At bytes of the body, then sends nothing more until
	// the client gives up or the proxy closes.
	BodyStall
	// BodyTruncate sends At bytes of the body, then closes the connection
	// cleanly although the headers promised more.
	BodyTruncate
	// BodyFlip inverts the byte at blob offset At, if the response covers
	// it (the offset is relative to the start of the blob, taken from the
	// upstream Content-Range).
	BodyFlip
	// BodyFlipMiddle inverts the middle byte of every forwarded body (a
	// link that corrupts whatever crosses it; At is unused).
	BodyFlipMiddle
)

// Fault is what a matching rule does to a request.
type Fault struct {
	// Delay holds the response back before its headers (first-byte
	// latency).
	Delay time.Duration
	// Status, when set, answers with this status instead of forwarding.
	// A 401 without a WWW-Authenticate in Header carries the challenge the
	// upstream gave last.
	Status int
	// Header is added to a Status answer (e.g. Retry-After).
	Header http.Header
	// Body is applied to a forwarded response body, at At.
	Body BodyFault
	At   int64
	// ContentRange, when set, replaces the forwarded Content-Range.
	ContentRange string
	// DropRange forwards the request without its Range header, as a
	// server that ignores ranges (200 with the whole body).
	DropRange bool
}

// Rule selects requests and the fault injected into them. Rules are
// checked in the order they were added; the first one that matches and
// still has injections left applies.
type Rule struct {
	// Method and Path (a substring of the URL path) select requests; empty
	// selects all.
	Method string
	Path   string
	// Skip lets the first Skip selected requests through untouched.
	Skip int
	// Count is how many requests get the fault after the skipped ones
	// (0 = every one).
	Count int
	// AuthAge selects only requests whose Authorization value was first
	// seen at least this long ago (an expired token). AuthUses selects
	// only requests whose Authorization value was used more than AuthUses
	// times before. Requests without Authorization never match either.
	AuthAge  time.Duration
	AuthUses int
	Fault    Fault
}

// selects reports whether r is selected by the rule's method and path.
func (ru *Rule) selects(r *http.Request) bool {
	if ru.Method != "" && r.Method != ru.Method {
		return false
	}
	return ru.Path == "" || strings.Contains(r.URL.Path, ru.Path)
}

// BlobPath selects blob reads and size probes of the OCI distribution API.
const BlobPath = "/blobs/sha256:"
