package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/provgate/provgate/internal/buildinfo"
	"github.com/provgate/provgate/internal/cli"
	"github.com/provgate/provgate/internal/pki"
	"github.com/provgate/provgate/internal/refcloud"
)

const usage = `usage:
  provgate-origin serve --data DIR --tls-dir DIR [--listen ADDR] [--latency DUR] [--max-age DUR] [--watch=false] [--log-json]
  provgate-origin pki init --dir DIR --site SITE [--host NAME]...
  provgate-origin pki sign --dir DIR --site SITE --csr FILE [--out FILE]
  provgate-origin version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "pki":
		if len(args) < 2 {
			fmt.Fprint(stderr, usage)
			return flag.ErrHelp
		}
		switch args[1] {
		case "init":
			return pkiInit(args[2:], stdout, stderr)
		case "sign":
			return pkiSign(args[2:], stdout, stderr)
		}
	case "version":
		fmt.Fprintln(stdout, "provgate-origin", buildinfo.String())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlags("serve", stderr)
	data := fs.String("data", "", "data folder (inventory.yaml, files/)")
	tlsDir := fs.String("tls-dir", "", "PKI folder (ca.crt, server.crt, server.key)")
	listen := fs.String("listen", "127.0.0.1:9443", "address to listen on")
	latency := fs.Duration("latency", 0, "delay added to every response")
	maxAge := fs.Duration("max-age", 5*time.Minute, "Cache-Control max-age of files and inventory")
	watch := fs.Bool("watch", true, "reload the data folder when inventory.yaml changes (SIGHUP always reloads)")
	logJSON := fs.Bool("log-json", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cli.Required(fs, "data", "tls-dir"); err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logJSON {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	srv, err := refcloud.New(refcloud.Config{DataDir: *data, Latency: *latency, MaxAge: *maxAge, Logger: log})
	if err != nil {
		return err
	}
	tlsConf, err := refcloud.ServerTLS(*tlsDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "data", *data, "latency", *latency)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, ln, tlsConf) })
	if *watch {
		g.Go(func() error { return srv.Watch(ctx) })
	}
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				log.Info("SIGHUP: reloading")
				_ = srv.Reload()
			}
		}
	})
	err = g.Wait()
	log.Info("stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func pkiInit(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("pki init", stderr)
	dir := fs.String("dir", "", "PKI folder to create or extend")
	site := fs.String("site", "", "site ID for the client certificate")
	var hosts cli.StringList
	fs.Var(&hosts, "host", "extra DNS name or IP for the server certificate (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cli.Required(fs, "dir", "site"); err != nil {
		return err
	}
	if err := pki.Init(*dir, *site, hosts, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA:          %s\nserver:      %s\nsite %s: %s, %s\n",
		filepath.Join(*dir, pki.CACert), filepath.Join(*dir, pki.ServerCert), *site,
		filepath.Join(*dir, pki.SiteCert(*site)), filepath.Join(*dir, pki.SiteKey(*site)))
	return nil
}

func pkiSign(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("pki sign", stderr)
	dir := fs.String("dir", "", "PKI folder holding the CA")
	site := fs.String("site", "", "site the certificate binds the gateway to")
	csrPath := fs.String("csr", "", "PEM certificate request from 'provgate enroll'")
	out := fs.String("out", "", "write the certificate here instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cli.Required(fs, "dir", "site", "csr"); err != nil {
		return err
	}
	ca, err := pki.LoadCA(*dir)
	if err != nil {
		return err
	}
	csr, err := os.ReadFile(*csrPath)
	if err != nil {
		return err
	}
	der, err := ca.SignCSR(*site, csr, time.Now())
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(pki.CertPEM(der))
		return err
	}
	return pki.WriteCert(*out, der)
}
