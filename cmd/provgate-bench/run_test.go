package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/loadgen"
	"github.com/provgate/provgate/internal/testutil"
)

// TestLoadgenCommandAgainstBaseline runs the bench's two child commands
// together: the bare pin/tftp server and the load generator, which prints
// its result as JSON, so make test keeps the harness working.
func TestLoadgenCommandAgainstBaseline(t *testing.T) {
	dir := t.TempDir()
	body := smallConfig()
	os.WriteFile(filepath.Join(dir, "bench-2k.cfg"), body, 0o644)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveBaseline(ctx, []string{"--dir", dir, "--listen", addr}) }()
	defer func() { cancel(); <-done }()

	var res loadgen.Result
	testutil.Eventually(t, func() bool {
		var out bytes.Buffer
		err := run(context.Background(), []string{"loadgen", "--target", addr, "--file", "bench-2k.cfg=" + filepath.Join(dir, "bench-2k.cfg"),
			"--requests", "30", "--concurrency", "5", "--max-duration", (10 * time.Second).String()}, &out, &bytes.Buffer{})
		return err == nil && json.Unmarshal(out.Bytes(), &res) == nil && res.Transfers == 30
	})
	if res.Failures != 0 || res.Bytes != 30*2048 {
		t.Fatalf("%+v", res)
	}
}
