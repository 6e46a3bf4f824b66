package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/moby/buildkit/cmd/buildkitd/config"
)

// serverTLS builds the TLS configuration of tcp:// listeners from
// buildkitd's [grpc.tls] (cert, key, and ca: with ca, clients must show a
// certificate it signed), as buildkitd does. No cert and key: nil.
func serverTLS(cfg config.TLSConfig) (*tls.Config, error) {
	if cfg.Cert == "" && cfg.Key == "" {
		if cfg.CA != "" {
			return nil, errors.New("grpc.tls: ca given without cert and key")
		}
		return nil, nil
	}
	if cfg.Cert == "" || cfg.Key == "" {
		return nil, errors.New("grpc.tls: cert and key go together")
	}
	pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("grpc.tls: server key pair: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("grpc.tls: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("grpc.tls: ca %s holds no PEM certificate", cfg.CA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}
