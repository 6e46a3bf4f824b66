// Package backend reads data blobs from where they are stored: a local
// directory (localfs), an OCI registry (registry) or an HTTP server or
// unix-socket proxy (http-proxy). Settings use upstream nydusd's JSON
// names, so a configuration's backend section decodes straight into them;
// New builds a Backend from a type and such a section.
//
// Every network read is bounded: connecting by connect_timeout, and the
// whole exchange (headers and body) by timeout, as upstream's total
// request timeout (a stalled or drip-fed body fails, it never hangs), and failed attempts (5xx, 429, resets, short
// bodies, stalls) are retried retry_limit times with exponential backoff
// and jitter, or after the server's Retry-After (at most 30 s). Range
// responses are checked against the request (a wrong Content-Range is an
// error; a 200 ignoring Range is used only for reads from offset 0); a
// short body is an error, never short data.
//
// Registry auth answers Basic and Bearer challenges (parsed by containerd's
// remotes/docker/auth); bearer tokens come from the realm through
// containerd's token requests, an OAuth2 POST (password grant, or
// refresh-token grant for an identity token) or GET, are cached here and
// refreshed before they expire, and a token the registry refuses is
// replaced once for all the readers it failed. Credentials come from auth,
// overridden by IMAGE_PULL_AUTH, else from docker's config.json read by
// docker's loader (credsStore, credHelpers, identitytoken) as a
// go-containerregistry keychain, or from the keychain WithKeychain gives;
// they never appear in logs or errors. Redirects to blob storage are followed without the
// registry's credentials and cached per blob until they are refused.
// Mirrors and a proxy are used while healthy, with health checks and
// fallback to the registry.
//
// The bytes returned are not verified here: the storage chain checks
// every chunk's digest.
package backend
