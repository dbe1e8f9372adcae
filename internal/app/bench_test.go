package app_test

import (
	"context"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/loadgen"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

// BenchmarkTFTPSmallFileWarm measures a 2 KB file from a warm cache through
// the whole TFTP path (policy, audit, cache, pin/tftp), client in-process.
func BenchmarkTFTPSmallFileWarm(b *testing.B) {
	small := []byte(strings.Repeat("x", 2048))
	data := refcloudtest.SampleWith(b, map[string][]byte{"bench.cfg": small})
	e := apptest.Start(b, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}, ExtraYAML: "log:\n  level: warn\n"})
	cfg := loadgen.Config{Target: e.TFTP, Files: map[string][]byte{"bench.cfg": small}, Requests: 1, Concurrency: 1, BlockSize: 1468}
	if res, _ := loadgen.Run(context.Background(), cfg); res.Transfers != 1 {
		b.Fatalf("warm-up: %+v", res)
	}
	cfg.Requests, cfg.Concurrency = b.N, 16
	b.ResetTimer()
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil || res.Failures != 0 {
		b.Fatalf("%+v %v", res, err)
	}
	b.ReportMetric(res.PerSecond(), "transfers/s")
}

// BenchmarkHTTPSSmallFileWarm measures a 2 KB file over HTTPS with
// keep-alive through the whole path, client in-process.
func BenchmarkHTTPSSmallFileWarm(b *testing.B) {
	small := []byte(strings.Repeat("x", 2048))
	data := refcloudtest.SampleWith(b, map[string][]byte{"bench.cfg": small})
	e := apptest.Start(b, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}, ExtraYAML: "log:\n  level: warn\n"})
	cfg := loadgen.HTTPConfig{URL: "https://" + e.HTTPS.String() + "/bench.cfg", Want: small, Requests: 1, Concurrency: 1}
	if res, _ := loadgen.RunHTTP(context.Background(), cfg); res.Transfers != 1 {
		b.Fatalf("warm-up: %+v", res)
	}
	cfg.Requests, cfg.Concurrency = b.N, 16
	b.ResetTimer()
	res, err := loadgen.RunHTTP(context.Background(), cfg)
	if err != nil || res.Failures != 0 {
		b.Fatalf("%+v %v", res, err)
	}
	b.ReportMetric(res.PerSecond(), "requests/s")
}

// BenchmarkTFTPFirmwareConcurrent measures many phones fetching one image
// from a warm cache at once (MB/s over the whole run).
func BenchmarkTFTPFirmwareConcurrent(b *testing.B) {
	data, image := withFirmware(b, 8<<20)
	e := apptest.Start(b, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}, ExtraYAML: "log:\n  level: warn\n"})
	cfg := loadgen.Config{Target: e.TFTP, Files: map[string][]byte{"sip.ld": image}, Requests: 1, Concurrency: 1, BlockSize: 1468}
	if res, _ := loadgen.Run(context.Background(), cfg); res.Transfers != 1 {
		b.Fatalf("warm-up: %+v", res)
	}
	cfg.Requests, cfg.Concurrency = 16*b.N, 16
	b.ResetTimer()
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil || res.Failures != 0 {
		b.Fatalf("%+v %v", res, err)
	}
	b.ReportMetric(res.MBPerSecond(), "MB/s")
}
