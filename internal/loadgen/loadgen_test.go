package loadgen_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/loadgen"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

// TestSmokeAgainstProvgate runs a tiny workload against a real gateway, so
// the benchmark code keeps compiling and working in every make test.
func TestSmokeAgainstProvgate(t *testing.T) {
	data := refcloudtest.CopySample(t)
	small := []byte(strings.Repeat("x", 2048))
	os.WriteFile(filepath.Join(data, "files", "common", "bench.cfg"), small, 0o644)
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

func TestRefusesNonLoopbackTargets(t *testing.T) {
	_, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: netip.MustParseAddrPort("192.0.2.1:69"), Files: map[string][]byte{"a": nil}, Requests: 1,
	})
	if err == nil {
		t.Fatal("non-loopback target accepted")
	}
}
