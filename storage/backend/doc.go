// Package backend reads data blobs from where they are stored: a local
// directory (localfs), an OCI registry (registry) or an HTTP server or
// unix-socket proxy (http-proxy). Settings use upstream nydusd's JSON
// names, so a configuration's backend section decodes straight into them.
//
// Every network read is bounded: connecting by connect_timeout, waiting
// for headers and for each piece of the body by timeout (a stalled body
// fails, it never hangs), and failed attempts are retried retry_limit
// times with backoff (honouring Retry-After on 429). Range responses are
// checked against the request; a short body is an error, never short
// data. Credentials never appear in logs or errors. The bytes returned
// are not verified here: the storage chain checks every chunk's digest.
package backend
