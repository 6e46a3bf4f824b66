// Package faultproxy is an HTTP proxy for tests that sits in front of a
// registry (or any HTTP server) and injects faults by rule: first-byte
// latency, a bandwidth cap, error statuses (401 after a token's age or
// use count, 403, 429 with Retry-After, 500/503 bursts), a connection
// reset, stall or clean close part-way through a body, one flipped byte at
// a given blob offset, a wrong Content-Range, or a dropped Range header.
// It counts requests and body bytes per path.
//
// A registry whose first blob read answers 503, whose second is reset
// after 4 KiB, which refuses tokens older than a second and sends at most
// 1 MB/s; the backend under test is pointed at p.Host():
//
//	reg := testregistry.Start(t)
//	p := faultproxy.New(t, reg.URL)
//	p.Add(faultproxy.Rule{Method: "GET", Path: faultproxy.BlobPath, Count: 1,
//		Fault: faultproxy.Fault{Status: 503}})
//	p.Add(faultproxy.Rule{Method: "GET", Path: faultproxy.BlobPath, Count: 1,
//		Fault: faultproxy.Fault{Body: faultproxy.BodyReset, At: 4096}})
//	p.Add(faultproxy.Rule{Path: faultproxy.BlobPath, AuthAge: time.Second,
//		Fault: faultproxy.Fault{Status: 401}})
//	p.SetBandwidth(1 << 20)
//
// The proxy listens on 127.0.0.1 only and shuts down when the test ends;
// a stalled body is released then at the latest.
package faultproxy
