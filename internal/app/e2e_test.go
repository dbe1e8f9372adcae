package app_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/pin/tftp/v3"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
	"github.com/provgate/provgate/internal/testutil"
)

// withFirmware copies the sample data and adds a random firmware image.
func withFirmware(t testing.TB, size int) (dir string, image []byte) {
	t.Helper()
	image = make([]byte, size)
	rand.Read(image)
	return refcloudtest.SampleWith(t, map[string][]byte{"sip.ld": image}), image
}

func TestServesDeviceAndCommonFilesByteExact(t *testing.T) {
	data, image := withFirmware(t, 3<<20+12345) // several cache chunks, a ragged last one
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}})
	cases := []struct {
		name, cloudPath string
		want            []byte
	}{
		{"001565123456.cfg", "001565123456.cfg?mac=001565123456", nil},
		{"SEP001B54AABB01.cnf.xml", "SEP001B54AABB01.cnf.xml?mac=001b54aabb01", nil},
		{"cfg000b82a1b2c3.xml", "cfg000b82a1b2c3.xml?mac=000b82a1b2c3", nil},
		{"000000000000.cfg", "000000000000.cfg", nil},
		{"sip.ld", "", image},
	}
	for _, tc := range cases {
		want := tc.want
		if want == nil {
			want = e.FromCloud(t, tc.cloudPath)
		}
		for _, blksize := range []int{0, 1468} {
			got, err := e.Fetch(tc.name, blksize)
			if err != nil {
				t.Fatalf("%s (blksize %d): %v", tc.name, blksize, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s (blksize %d): %d bytes differ from the cloud's %d", tc.name, blksize, len(got), len(want))
			}
		}
	}
	e.WaitLog(t, "outcome=hit")
	e.WaitLog(t, "outcome=miss")
}

func TestCurlTFTPClient(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (.ci/run installs it)")
	}
	e := apptest.Start(t, apptest.Options{})
	want := e.FromCloud(t, "001565123456.cfg?mac=001565123456")
	out, err := exec.Command("curl", "-sS", "--tftp-blksize", "1024", "tftp://"+e.TFTP.String()+"/001565123456.cfg").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("curl got %q", out)
	}
	// curl reports the server's TFTP error as a failure: pin/tftp always
	// sends error code 1, which curl reports as exit status 68.
	err = exec.Command("curl", "-sS", "tftp://"+e.TFTP.String()+"/0015650000ff.cfg").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 68 {
		t.Fatalf("curl on an unknown MAC: %v", err)
	}
}

func TestRefusalsAreRemembered(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	for range 3 {
		if _, err := e.Fetch("nothing-here.cfg", 0); err == nil || !strings.Contains(err.Error(), "file not found") {
			t.Fatalf("missing file: %v", err)
		}
	}
	if got := e.Cloud.Server.Stats().Files; got != 1 {
		t.Fatalf("cloud asked %d times; the 404 should be cached", got)
	}
}

func TestWriteRequestsRefused(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	c, _ := tftp.NewClient(e.TFTP.String())
	rf, err := c.Send("001565123456-app.log", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("log line"))
	}
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("write: %v", err)
	}
	e.WaitLog(t, "write request refused")
}

func TestIllegalNamesRefusedWithoutAskingTheCloud(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	for _, name := range []string{"../inventory.yaml", "a/../../etc/passwd", "files/../../x", ".hidden", "x\x01y", "a\\b", strings.Repeat("a", 300)} {
		_, err := e.Fetch(name, 0)
		if err == nil || !strings.Contains(err.Error(), "illegal file name") {
			t.Errorf("%q: %v", name, err)
		}
	}
	if got := e.Cloud.Server.Stats().Files; got != 0 {
		t.Fatalf("cloud asked %d times", got)
	}
	if got := e.App.TFTPStats().BadName; got != 7 {
		t.Fatalf("bad names counted %d", got)
	}
}

func TestGarbagePacketsDoNotDisturbTransfers(t *testing.T) {
	data, image := withFirmware(t, 2<<20)
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}})
	if _, err := e.Fetch("sip.ld", 1468); err != nil { // warm the cache
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var got []byte
	var ferr error
	wg.Go(func() { got, ferr = e.Fetch("sip.ld", 512) })
	// The junk comes from another address than the phone, as it would on a
	// real LAN: the phone's transfer must not notice it.
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.UDPAddrFromAddrPort(e.TFTP))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	junk := [][]byte{
		{}, {0}, {0, 1}, {0, 1, 'x'}, // truncated RRQ
		{0, 9, 1, 2, 3},                  // unknown opcode
		{0, 3, 0, 1, 'd', 'a', 't', 'a'}, // DATA out of the blue
		{0, 4, 0, 7},                     // stray ACK
		append([]byte{0, 1}, bytes.Repeat([]byte{'A'}, 60000)...), // huge, unterminated RRQ
		[]byte("\x00\x01file\x00octet\x00blksize\x00-5\x00"),      // bad option
	}
	for i := range 200 {
		junkBytes := junk[i%len(junk)]
		if i%len(junk) == 0 {
			junkBytes = make([]byte, 1+i)
			rand.Read(junkBytes)
		}
		conn.Write(junkBytes)
	}
	wg.Wait()
	if ferr != nil || !bytes.Equal(got, image) {
		t.Fatalf("transfer during garbage: %v, %d bytes", ferr, len(got))
	}
	if _, err := e.Fetch("000000000000.cfg", 0); err != nil {
		t.Fatalf("after garbage: %v", err)
	}
}

func TestColdStormMakesOneCloudFetch(t *testing.T) {
	// The cloud's latency makes the 100 requests overlap the one fetch.
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{Latency: 300e6}})
	want := e.FromCloud(t, "000000000000.cfg")
	before := e.Cloud.Server.Stats().Files
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			<-start
			got, err := e.Fetch("000000000000.cfg", 0)
			if err == nil && !bytes.Equal(got, want) {
				err = os.ErrInvalid
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Cloud.Server.Stats().Files - before; got != 1 {
		t.Fatalf("cloud fetched %d times for one cold file", got)
	}
}

func TestLogsNamePerTransferFields(t *testing.T) {
	e := apptest.Start(t, apptest.Options{})
	if _, err := e.Fetch("001565123456.cfg", 0); err != nil {
		t.Fatal(err)
	}
	e.WaitLog(t, "msg=transfer ")
	line := ""
	for l := range strings.SplitSeq(e.Logs.String(), "\n") {
		if strings.Contains(l, "msg=transfer ") {
			line = l
		}
	}
	for _, field := range []string{"mac=001565123456", "file=001565123456.cfg", "client=127.0.0.1", "bytes=", "duration=", "outcome=miss"} {
		if !strings.Contains(line, field) {
			t.Errorf("transfer line lacks %s: %s", field, line)
		}
	}
	if strings.Contains(e.Logs.String(), "Sip-Secret") {
		t.Fatal("a SIP password reached the log")
	}
}

func cloudWith(data string) refcloudtest.Options { return refcloudtest.Options{DataDir: data} }

func TestTransferCapGivesAClearError(t *testing.T) {
	// The cloud's latency keeps the first transfer in its slot while the
	// second arrives.
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{Latency: 500e6}, TFTPYAML: "  max_transfers: 1\n"})
	first := make(chan error, 1)
	go func() { _, err := e.Fetch("000000000000.cfg", 0); first <- err }()
	testutil.Eventually(t, func() bool { return e.Cloud.Server.Stats().Files == 1 })
	_, err := e.Fetch("y000000000000.cfg", 0)
	if err == nil || !strings.Contains(err.Error(), "server busy") {
		t.Fatalf("second transfer: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first transfer: %v", err)
	}
	if e.App.TFTPStats().Busy != 1 {
		t.Fatalf("busy refusals counted: %d", e.App.TFTPStats().Busy)
	}
}
