package loadgen_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/loadgen"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

// TestSmokeAgainstProvgate runs a tiny workload against a real gateway, so
// the benchmark code keeps compiling and working in every make test.
func TestSmokeAgainstProvgate(t *testing.T) {
	small := []byte(strings.Repeat("x", 2048))
	data := refcloudtest.SampleWith(t, map[string][]byte{"bench.cfg": small})
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}})
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: e.TFTP, Files: map[string][]byte{"bench.cfg": small}, Requests: 40, Concurrency: 8, BlockSize: 1468,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Transfers != 40 || res.Failures != 0 || res.Bytes != 40*2048 || res.P99 == 0 {
		t.Fatalf("%+v", res)
	}
	// Validation is byte-exact: a wrong expectation fails every transfer.
	res, err = loadgen.Run(context.Background(), loadgen.Config{
		Target: e.TFTP, Files: map[string][]byte{"bench.cfg": []byte("something else")}, Requests: 5, Concurrency: 5,
	})
	if err != nil || res.Transfers != 0 || res.Failures != 5 || !strings.Contains(res.FirstError, "differs") {
		t.Fatalf("wrong content accepted: %+v %v", res, err)
	}
}

// TestHTTPSmokeAgainstProvgate runs a tiny HTTPS workload with keep-alive.
func TestHTTPSmokeAgainstProvgate(t *testing.T) {
	small := []byte(strings.Repeat("y", 2048))
	data := refcloudtest.SampleWith(t, map[string][]byte{"bench.cfg": small})
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}})
	res, err := loadgen.RunHTTP(context.Background(), loadgen.HTTPConfig{
		URL: "https://" + e.HTTPS.String() + "/bench.cfg", Want: small, Requests: 30, Concurrency: 3,
	})
	if err != nil || res.Transfers != 30 || res.Failures != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	res, _ = loadgen.RunHTTP(context.Background(), loadgen.HTTPConfig{
		URL: "https://" + e.HTTPS.String() + "/bench.cfg", Want: []byte("other"), Requests: 3, Concurrency: 1,
	})
	if res.Failures != 3 {
		t.Fatalf("wrong content accepted: %+v", res)
	}
}

func TestRefusesNonLoopbackTargets(t *testing.T) {
	_, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: netip.MustParseAddrPort("192.0.2.1:69"), Files: map[string][]byte{"a": nil}, Requests: 1,
	})
	if err == nil {
		t.Fatal("non-loopback target accepted")
	}
	if _, err := loadgen.RunHTTP(context.Background(), loadgen.HTTPConfig{URL: "https://192.0.2.1/x", Requests: 1}); err == nil {
		t.Fatal("non-loopback URL accepted")
	}
}
