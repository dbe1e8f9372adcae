package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/pki"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
	"github.com/provgate/provgate/internal/testutil"
)

func TestPKIInitAndSignEnrollAGateway(t *testing.T) {
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"pki", "init", "--dir", dir, "--site", "shop-42", "--host", "cloud.lan"}, &out, &errs); err != nil {
		t.Fatalf("init: %v\n%s", err, errs.String())
	}
	// A gateway's enrollment: its own key, a CSR; the operator signs it.
	key, _ := pki.NewKey()
	csr, _ := pki.CreateCSR(key, "whatever-the-gateway-asks")
	csrPath := filepath.Join(dir, "gw.csr")
	os.WriteFile(csrPath, csr, 0o644)
	out.Reset()
	if err := run(context.Background(), []string{"pki", "sign", "--dir", dir, "--site", "shop-42", "--csr", csrPath}, &out, &errs); err != nil {
		t.Fatalf("sign: %v\n%s", err, errs.String())
	}
	block, _ := pem.Decode(out.Bytes())
	if block == nil {
		t.Fatalf("sign printed %q", out.String())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != "shop-42" {
		t.Fatalf("signed certificate: %v %v", cert, err)
	}
	if err := run(context.Background(), []string{"pki", "sign", "--dir", dir, "--site", "shop-42"}, &out, &errs); err == nil || !strings.Contains(err.Error(), "--csr is required") {
		t.Fatalf("missing --csr: %v", err)
	}
}

func TestServeReloadsOnSIGHUP(t *testing.T) {
	data := refcloudtest.CopySample(t)
	tlsDir := t.TempDir()
	if err := pki.Init(tlsDir, refcloudtest.Site, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &testutil.SyncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--data", data, "--tls-dir", tlsDir, "--listen", addr, "--watch=false"}, &bytes.Buffer{}, logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	pair, _ := tls.LoadX509KeyPair(filepath.Join(tlsDir, pki.SiteCert(refcloudtest.Site)), filepath.Join(tlsDir, pki.SiteKey(refcloudtest.Site)))
	caPEM, _ := os.ReadFile(filepath.Join(tlsDir, pki.CACert))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	status := func() int {
		resp, err := c.Get("https://" + addr + originapi.PathFiles + "000000000000.cfg?mac=00156500beef")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, func() bool { return status() == http.StatusForbidden })

	inv := filepath.Join(data, "inventory.yaml")
	b, _ := os.ReadFile(inv)
	b = bytes.Replace(b, []byte("0004f2abcdef"), []byte("00156500beef"), 1)
	os.WriteFile(inv, b, 0o644)
	// --watch=false: nothing changes until SIGHUP.
	if got := status(); got != http.StatusForbidden {
		t.Fatalf("reloaded without SIGHUP: %d", got)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testutil.Eventually(t, func() bool { return status() == http.StatusOK })
}
