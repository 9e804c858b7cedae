package tier2

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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// writeClientCert writes a self-signed client certificate and its key as
// PEM files and returns their paths and the certificate.
func writeClientCert(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "aof-gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, cert
}

// TestClientCertificateIsPresented: tier2.tls.cert and tier2.tls.key
// (CertFile, KeyFile) are presented to an object store that requires a
// client certificate.
func TestClientCertificateIsPresented(t *testing.T) {
	certFile, keyFile, cert := writeClientCert(t)
	var presented atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented.Store(len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Equal(cert))
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	opts := Options{Endpoint: srv.URL, Bucket: "aof", AccessKey: "a", SecretKey: "s", CAFile: caFile,
		CertFile: certFile, KeyFile: keyFile, Retry: RetryPolicy{MaxAttempts: 1}}
	c, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.CheckBucket(context.Background()) // the server answers 503; only the handshake matters
	if !presented.Load() {
		t.Fatal("the client certificate was not presented")
	}

	opts.KeyFile = filepath.Join(t.TempDir(), "missing.key")
	if _, err := Open(opts); err == nil {
		t.Fatal("Open accepted a client key file that does not exist")
	}
}
