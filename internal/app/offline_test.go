package app_test

import (
	"bytes"
	"database/sql"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/provgate/provgate/internal/app/apptest"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

// expireAtOnce makes the cloud send max-age=0, so every entry is stale
// the moment it is stored and each request revalidates.
var expireAtOnce = refcloudtest.Options{MaxAge: time.Nanosecond}

func TestCloudDownServesCachedFiles(t *testing.T) {
	e := apptest.Start(t, apptest.Options{Cloud: expireAtOnce, ExtraYAML: "  max_stale: 1h\n"})
	want := e.FromCloud(t, "001565123456.cfg?mac=001565123456")
	if _, err := e.Fetch("001565123456.cfg", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Fetch("001565123456.cfg", 0); err != nil { // 304 from the cloud
		t.Fatal(err)
	}
	e.WaitLog(t, "outcome=revalidated")
	e.Cloud.Stop()
	got, err := e.Fetch("001565123456.cfg", 0)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("cloud down: %v", err)
	}
	e.WaitLog(t, "outcome=stale")
	_, err = e.Fetch("0004f2abcdef.cfg", 0) // never cached
	if err == nil || !strings.Contains(err.Error(), "service unavailable") {
		t.Fatalf("never-cached file with the cloud down: %v", err)
	}
	e.Cloud.Restart(t)
	if _, err := e.Fetch("0004f2abcdef.cfg", 0); err != nil {
		t.Fatalf("cloud back: %v", err)
	}
}

func TestPastMaxStaleIsAClearError(t *testing.T) {
	e := apptest.Start(t, apptest.Options{Cloud: expireAtOnce, ExtraYAML: "  max_stale: 1ns\n"})
	if _, err := e.Fetch("001565123456.cfg", 0); err != nil {
		t.Fatal(err)
	}
	e.Cloud.Stop()
	_, err := e.Fetch("001565123456.cfg", 0)
	if err == nil || !strings.Contains(err.Error(), "service unavailable") {
		t.Fatalf("past max_stale: %v", err)
	}
}

func TestTamperedChunkIsRefetchedNotServed(t *testing.T) {
	data, image := withFirmware(t, 1<<20)
	e := apptest.Start(t, apptest.Options{Cloud: refcloudtest.Options{DataDir: data}})
	if _, err := e.Fetch("sip.ld", 1468); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", e.Config.Cache.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Flip one byte in the first chunk of every entry.
	if _, err := db.Exec(`UPDATE chunks SET data = substr(data, 1, 20) || char((unicode(substr(data, 21, 1)) + 1) % 256) || substr(data, 22) WHERE idx = 0`); err != nil {
		t.Fatal(err)
	}
	var flipped int
	db.QueryRow(`SELECT COUNT(*) FROM chunks WHERE idx = 0`).Scan(&flipped)
	if flipped == 0 {
		t.Fatal("nothing to tamper with")
	}
	// Tampering at rest is found when the entry is opened from disk: after
	// a restart (a running gateway answers from the copy it opened before).
	e.Restart(t)
	before := e.Cloud.Server.Stats().Files
	got, err := e.Fetch("sip.ld", 1468)
	if err != nil || !bytes.Equal(got, image) {
		t.Fatalf("after tampering: %v (%d bytes)", err, len(got))
	}
	if e.Cloud.Server.Stats().Files != before+1 {
		t.Fatal("tampered entry was not refetched")
	}
	e.WaitLog(t, "cache entry failed to open")
}

func TestShutdownLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	e := apptest.Start(t, apptest.Options{UseCloud: cloud})
	if _, err := e.Fetch("001565123456.cfg", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	cloud.Stop()
	goleak.VerifyNone(t, ignore)
}
