package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/keyring"
)

func openLog(t *testing.T, opts Options) (*Log, string, func()) {
	t.Helper()
	dir := t.TempDir()
	key, err := keyring.WriteKeyFile(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.db")
	l, err := Open(path, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stop := func() { cancel(); <-done; l.Close() }
	return l, path, stop
}

func TestRecordQueryAndSealing(t *testing.T) {
	l, path, stop := openLog(t, Options{})
	now := time.Now()
	l.Record(Record{Time: now.Add(-2 * time.Hour), Transport: "tftp", Source: "10.20.0.5", MAC: "001565123456", File: "001565123456.cfg", Tenant: "acme", Decision: "allow", Reason: "allowlist"})
	l.Record(Record{Time: now, Transport: "tftp", Source: "10.20.0.66", MAC: "0015650000ff", File: "0015650000ff.cfg", Decision: "deny", Reason: "unknown_mac"})
	l.Record(Record{Time: now, Transport: "https", Source: "10.20.0.5", File: "000000000000.cfg", Tenant: "acme", Decision: "allow", Reason: "credentials"})
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	count := func(f Filter) int {
		rows, skipped, err := l.Query(ctx, f)
		if err != nil || skipped != 0 {
			t.Fatalf("query: %v, %d skipped", err, skipped)
		}
		return len(rows)
	}
	if n := count(Filter{}); n != 3 {
		t.Fatalf("all: %d", n)
	}
	if n := count(Filter{MAC: "0015650000ff"}); n != 1 {
		t.Fatalf("by MAC: %d", n)
	}
	if n := count(Filter{Source: "10.20.0.5"}); n != 2 {
		t.Fatalf("by source: %d", n)
	}
	if n := count(Filter{Since: now.Add(-time.Hour)}); n != 2 {
		t.Fatalf("since: %d", n)
	}
	rows, _, _ := l.Query(ctx, Filter{MAC: "0015650000ff"})
	if rows[0].Reason != "unknown_mac" || rows[0].File != "0015650000ff.cfg" {
		t.Fatalf("row %+v", rows[0])
	}
	stop()
	raw, _ := os.ReadFile(path)
	wal, _ := os.ReadFile(path + "-wal")
	for _, needle := range []string{"001565123456", "10.20.0.5", "unknown_mac", "acme"} {
		if bytes.Contains(raw, []byte(needle)) || bytes.Contains(wal, []byte(needle)) {
			t.Fatalf("audit database holds %q in plaintext", needle)
		}
	}
}

func TestTamperedRowsAreSkipped(t *testing.T) {
	l, _, stop := openLog(t, Options{})
	defer stop()
	l.Record(Record{Time: time.Now(), Source: "10.0.0.1", MAC: "001565123456", Decision: "deny", Reason: "unknown_mac"})
	l.Record(Record{Time: time.Now(), Source: "10.0.0.2", MAC: "0004f2abcdef", Decision: "allow", Reason: "allowlist"})
	l.Flush(context.Background())
	// Relabel the first row as the second MAC's: its seal binds the label.
	if _, err := l.db.Exec(`UPDATE audit SET mac = (SELECT mac FROM audit WHERE id = 2) WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	rows, skipped, err := l.Query(context.Background(), Filter{MAC: "0004f2abcdef"})
	if err != nil || len(rows) != 1 || skipped != 1 || rows[0].Reason != "allowlist" {
		t.Fatalf("%+v skipped=%d err=%v", rows, skipped, err)
	}
}

func TestRetentionBounds(t *testing.T) {
	l, _, stop := openLog(t, Options{Retention: time.Hour, MaxRows: 3})
	defer stop()
	now := time.Now()
	l.Record(Record{Time: now.Add(-2 * time.Hour), Source: "10.0.0.1", Decision: "deny", Reason: "old"})
	for i := range 5 {
		l.Record(Record{Time: now.Add(time.Duration(i) * time.Second), Source: "10.0.0.1", Decision: "allow", Reason: string(rune('a' + i))})
	}
	l.Flush(context.Background())
	l.Prune(context.Background())
	rows, _, _ := l.Query(context.Background(), Filter{})
	if len(rows) != 3 || rows[0].Reason != "c" || rows[2].Reason != "e" {
		t.Fatalf("kept %+v", rows)
	}
}

func TestRecordNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	key, _ := keyring.WriteKeyFile(filepath.Join(dir, "k"))
	l, err := Open(filepath.Join(dir, "a.db"), key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// No Run: the queue fills, then rows are dropped and counted.
	for range queueSize + 10 {
		l.Record(Record{Time: time.Now(), Source: "10.0.0.1"})
	}
	if l.Dropped() != 10 {
		t.Fatalf("dropped %d", l.Dropped())
	}
}
