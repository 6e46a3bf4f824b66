// Package faultproxy is an HTTP proxy for tests that sits in front of a
// registry (or any HTTP server) and injects faults by rule: first-byte
// latency, a bandwidth cap, error statuses (401 after a token's age or
// use count, 403, 429 with Retry-After, 500/503 bursts), a connection
// reset, stall or clean close part-way through a body, one flipped byte at
// a given blob offset, and a wrong Content-Range. It counts requests and
// body bytes per path.
//
// The proxy listens on 127.0.0.1 only and shuts down when the test ends;
// a stalled body is released then at the latest.
package faultproxy
