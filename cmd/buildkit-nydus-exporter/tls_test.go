package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pair tls.Certificate
}

// issue makes a certificate for cn signed by parent (self-signed when nil).
func issue(t *testing.T, cn string, parent *testCert, isCA bool) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCert{cert: c, key: key, pair: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func (c *testCert) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	kb, _ := x509.MarshalECPrivateKey(c.key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// healthCheck asks the gRPC health service at addr with creds.
func healthCheck(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthv1.NewHealthClient(conn).Check(ctx, &healthv1.HealthCheckRequest{})
	return err
}

// TestTCPListenerTLS: [grpc.tls] (or --tlscert/--tlskey/--tlscacert) puts
// tcp:// behind mutual TLS; clients without a certificate the CA signed
// are turned away, and plain tcp:// is refused unless allowed.
func TestTCPListenerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := issue(t, "test CA", nil, true)
	caFile, _ := ca.write(t, dir, "ca")
	serverCert, serverKey := issue(t, "buildkitd", ca, false).write(t, dir, "server")
	client := issue(t, "client", ca, false)
	stranger := issue(t, "stranger", nil, false)

	tlsConfig, err := serverTLS(config.TLSConfig{Cert: serverCert, Key: serverKey, CA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := listen(config.GRPCConfig{Address: []string{"tcp://127.0.0.1:0"}}, tlsConfig, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthv1.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ls[0])
	defer srv.Stop()
	addr := ls[0].Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	if err := healthCheck(addr, credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client.pair}})); err != nil {
		t.Fatalf("client with a certificate the CA signed: %v", err)
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"no client certificate":  credentials.NewTLS(&tls.Config{RootCAs: roots}),
		"a stranger certificate": credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{stranger.pair}}),
		"plain text":             insecure.NewCredentials(),
	} {
		if err := healthCheck(addr, creds); err == nil {
			t.Errorf("%s was served", name)
		}
	}

	if _, err := listen(config.GRPCConfig{Address: []string{"tcp://127.0.0.1:0"}}, nil, false); err == nil || !strings.Contains(err.Error(), "without TLS") {
		t.Fatalf("plain tcp:// without --allow-insecure-tcp: %v", err)
	}
	plain, err := listen(config.GRPCConfig{Address: []string{"tcp://127.0.0.1:0"}}, nil, true)
	if err != nil {
		t.Fatalf("plain tcp:// with --allow-insecure-tcp: %v", err)
	}
	closeAll(plain)
	for _, bad := range []config.TLSConfig{{Cert: serverCert}, {CA: caFile}, {Cert: serverCert, Key: serverKey, CA: serverKey}} {
		if _, err := serverTLS(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
