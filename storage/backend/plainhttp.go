package backend

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"syscall"
)

// IsLoopbackHost reports whether a registry host[:port] is this machine:
// localhost or an address in 127.0.0.0/8 or ::1. Plain HTTP to such a host
// never leaves the machine.
func IsLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainAllowed reports whether credentials may travel, and bearer realms
// be followed, over plain HTTP to host: only when the configuration asked
// for plain HTTP (scheme "http") or the host is this machine.
func (r *Registry) plainAllowed(host string) bool {
	return r.cfg.Scheme == "http" || IsLoopbackHost(host)
}

// mayFallBackToHTTP reports whether an https attempt that failed with err
// may be tried again over plain HTTP (scheme auto-detection): when the
// server answered TLS with plain HTTP, or a loopback registry refused the
// https connection. Never on a certificate or other TLS failure, and
// never on a timeout: an attacker in the path must not be able to turn
// https into http.
func (r *Registry) mayFallBackToHTTP(err error) bool {
	if err == nil || isTimeout(err) {
		return false
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return true
	}
	return IsLoopbackHost(r.cfg.Host) && errors.Is(err, syscall.ECONNREFUSED)
}
