package cache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/keyring"
)

func newStore(t *testing.T, maxBytes int64) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	key, err := keyring.WriteKeyFile(filepath.Join(dir, "cache.key"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cache.db")
	s, err := Open(path, key, Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// content is deterministic per key, so a reader can check what it got.
func content(key string, size int) []byte {
	b := make([]byte, 0, size+32)
	for i := 0; len(b) < size; i++ {
		b = fmt.Appendf(b, "%s/%d;", key, i)
	}
	return b[:size]
}

func put(t testing.TB, s *Store, key string, body []byte) Meta {
	t.Helper()
	sum := sha256.Sum256(body)
	m, err := s.Put(context.Background(), key, Meta{Status: 200, Size: int64(len(body)), Digest: sum[:], ETag: `"e"`, Validated: time.Now(), MaxAge: time.Hour}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func read(s *Store, key string) ([]byte, error) {
	ctx := context.Background()
	m, err := s.Lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	r, err := s.NewReader(ctx, key, m)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestRoundTripSizes(t *testing.T) {
	s, _ := newStore(t, 0)
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 17} {
		key := "file-" + strconv.Itoa(size)
		body := content(key, size)
		m := put(t, s, key, body)
		if m.Chunks != max(1, (size+ChunkSize-1)/ChunkSize) {
			t.Errorf("size %d: %d chunks", size, m.Chunks)
		}
		got, err := read(s, key)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("size %d: %v, %d bytes", size, err, len(got))
		}
	}
}

func TestPutRefusesWrongDigestOrLength(t *testing.T) {
	s, _ := newStore(t, 0)
	body := content("k", 1000)
	sum := sha256.Sum256(body)
	ctx := context.Background()
	wrong := sha256.Sum256([]byte("other"))
	cases := map[string]struct {
		m    Meta
		body io.Reader
		want error
	}{
		"digest":    {Meta{Status: 200, Size: 1000, Digest: wrong[:]}, bytes.NewReader(body), ErrDigestMismatch},
		"too short": {Meta{Status: 200, Size: 2000, Digest: sum[:]}, bytes.NewReader(body), ErrSize},
		"too long":  {Meta{Status: 200, Size: 999, Digest: sum[:]}, bytes.NewReader(body), ErrSize},
	}
	for name, tc := range cases {
		if _, err := s.Put(ctx, "k", tc.m, tc.body); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := s.Lookup(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused put left an entry: %v", err)
	}
	var rows int
	s.rdb.QueryRow(`SELECT COUNT(*) FROM entries`).Scan(&rows)
	if rows != 0 {
		t.Fatalf("%d rows left behind", rows)
	}
}

func TestNewVersionReplacesOld(t *testing.T) {
	s, _ := newStore(t, 0)
	v1 := put(t, s, "k", content("one", 5000))
	v2 := put(t, s, "k", content("two", 7000))
	if v2.Version <= v1.Version {
		t.Fatalf("versions %d then %d", v1.Version, v2.Version)
	}
	got, err := read(s, "k")
	if err != nil || !bytes.Equal(got, content("two", 7000)) {
		t.Fatalf("read %v", err)
	}
	var n int
	s.rdb.QueryRow(`SELECT COUNT(*) FROM chunks WHERE entry_id = ?`, v1.Version).Scan(&n)
	if n != 0 {
		t.Fatalf("old version's %d chunks remain", n)
	}
}

func TestTamperingFailsToOpen(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB, s *Store, a, b Meta)
	}{
		{"flipped byte", func(t *testing.T, db *sql.DB, s *Store, a, b Meta) {
			mustExec(t, db, `UPDATE chunks SET data = substr(data, 1, 30) || char((unicode(substr(data, 31, 1)) + 1) % 256) || substr(data, 32) WHERE entry_id = ? AND idx = 1`, a.Version)
		}},
		{"chunks swapped", func(t *testing.T, db *sql.DB, s *Store, a, b Meta) {
			mustExec(t, db, `UPDATE chunks SET idx = -1 WHERE entry_id = ? AND idx = 0`, a.Version)
			mustExec(t, db, `UPDATE chunks SET idx = 0 WHERE entry_id = ? AND idx = 1`, a.Version)
			mustExec(t, db, `UPDATE chunks SET idx = 1 WHERE entry_id = ? AND idx = -1`, a.Version)
		}},
		{"chunk copied from another entry", func(t *testing.T, db *sql.DB, s *Store, a, b Meta) {
			mustExec(t, db, `UPDATE chunks SET data = (SELECT data FROM chunks WHERE entry_id = ? AND idx = 1) WHERE entry_id = ? AND idx = 1`, b.Version, a.Version)
		}},
		{"last chunk dropped", func(t *testing.T, db *sql.DB, s *Store, a, b Meta) {
			mustExec(t, db, `DELETE FROM chunks WHERE entry_id = ? AND idx = ?`, a.Version, a.Chunks-1)
		}},
		{"entry moved to another key", func(t *testing.T, db *sql.DB, s *Store, a, b Meta) {
			mustExec(t, db, `DELETE FROM entries WHERE id = ?`, b.Version)
			mustExec(t, db, `UPDATE entries SET lookup = ? WHERE id = ?`, s.key.Lookup("b"), a.Version)
		}},
		{"metadata flipped", func(t *testing.T, db *sql.DB, s *Store, a, b Meta) {
			mustExec(t, db, `UPDATE entries SET meta = substr(meta, 1, 20) || char((unicode(substr(meta, 21, 1)) + 1) % 256) || substr(meta, 22) WHERE id = ?`, a.Version)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := newStore(t, 0)
			a := put(t, s, "a", content("a", 3*ChunkSize+5))
			b := put(t, s, "b", content("b", 3*ChunkSize+5))
			db := rawDB(t, path)
			db.Exec(`PRAGMA foreign_keys = ON`)
			tt.tamper(t, db, s, a, b)
			key := "a"
			if tt.name == "entry moved to another key" {
				key = "b"
			}
			got, err := read(s, key)
			if err == nil {
				t.Fatalf("tampered entry opened: %d bytes", len(got))
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v", err)
			}
			if s.corrupt.Load() != 1 {
				t.Fatalf("alarms = %d", s.corrupt.Load())
			}
			if _, err := s.Lookup(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("tampered entry still there: %v", err)
			}
		})
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDatabaseHoldsNoPlaintext(t *testing.T) {
	s, path := newStore(t, 0)
	secret := []byte("account.1.password = Sip-Secret-NEVER-ON-DISK")
	body := bytes.Repeat(secret, 3000)
	put(t, s, "001565123456.cfg\x00001565123456", body)
	s.Close()
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		raw, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{"Sip-Secret", "password", "001565123456"} {
			if bytes.Contains(raw, []byte(needle)) {
				t.Fatalf("%s contains %q", filepath.Base(f), needle)
			}
		}
	}
}

func TestNegativeEntries(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	put(t, s, "k", content("k", 100))
	if _, err := s.Put(ctx, "k", Meta{Status: 403, Reason: "unknown_mac", Validated: time.Now(), MaxAge: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lookup(ctx, "k")
	if err != nil || m.Status != 403 || m.Reason != "unknown_mac" || m.Chunks != 0 {
		t.Fatalf("negative entry: %+v %v", m, err)
	}
	if _, err := s.NewReader(ctx, "k", m); err == nil {
		t.Fatal("a refusal opened as content")
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	s, _ := newStore(t, 3*ChunkSize)
	ctx := context.Background()
	for i, key := range []string{"old", "mid", "new"} {
		put(t, s, key, content(key, ChunkSize))
		s.wdb.Exec(`UPDATE entries SET last_used = ? WHERE id = (SELECT MAX(id) FROM entries)`, int64(1000+i))
	}
	put(t, s, "newest", content("newest", ChunkSize)) // over the cap by one entry
	if _, err := s.Lookup(ctx, "old"); !errors.Is(err, ErrNotFound) {
		t.Fatal("least recently used entry kept")
	}
	for _, key := range []string{"mid", "new", "newest"} {
		if _, err := read(s, key); err != nil {
			t.Fatalf("%s evicted: %v", key, err)
		}
	}
	if st, _ := s.Stats(ctx); st.Evicted != 1 || st.Entries != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCrashMidWriteLeavesNoPartialEntry kills a writer process with SIGKILL
// in the middle of many puts, then checks the database and every entry.
func TestCrashMidWriteLeavesNoPartialEntry(t *testing.T) {
	if os.Getenv("PROVGATE_CACHE_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	if testing.Short() {
		t.Skip("-short: skips the crash test")
	}
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "cache.key")
	key, err := keyring.WriteKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "cache.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidWriteLeavesNoPartialEntry$")
	cmd.Env = append(os.Environ(), "PROVGATE_CACHE_CRASH_CHILD=1", "PROVGATE_CACHE_DB="+dbPath, "PROVGATE_CACHE_KEY="+keyPath)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it commit some entries and be mid-way through more, then kill it.
	lines := bufio.NewScanner(stdout)
	for n := 0; n < 25 && lines.Scan(); n++ {
	}
	cmd.Process.Kill()
	cmd.Wait()

	s, err := Open(dbPath, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var check string
	if err := s.rdb.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q %v", check, err)
	}
	served := 0
	for i := range 1000 {
		key := "crash-" + strconv.Itoa(i)
		got, err := read(s, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(got, content(key, sizeFor(i))) {
			t.Fatalf("%s: partial or wrong content (%d bytes)", key, len(got))
		}
		served++
	}
	if served < 20 {
		t.Fatalf("only %d entries survived; the child reported more", served)
	}
	if s.corrupt.Load() != 0 {
		t.Fatalf("%d entries failed to open", s.corrupt.Load())
	}
}

func sizeFor(i int) int { return (i%7)*ChunkSize + 1000*i }

func crashChild() {
	key, err := keyring.LoadKeyFile(os.Getenv("PROVGATE_CACHE_KEY"))
	if err != nil {
		panic(err)
	}
	s, err := Open(os.Getenv("PROVGATE_CACHE_DB"), key, Options{})
	if err != nil {
		panic(err)
	}
	for i := range 1000 {
		k := "crash-" + strconv.Itoa(i)
		body := content(k, sizeFor(i))
		sum := sha256.Sum256(body)
		if _, err := s.Put(context.Background(), k, Meta{Status: 200, Size: int64(len(body)), Digest: sum[:], Validated: time.Now(), MaxAge: time.Hour}, bytes.NewReader(body)); err != nil {
			panic(err)
		}
		fmt.Println("put", k)
	}
}

// TestReadersHoldOneChunkEach: many readers half-way through a large entry
// keep about a chunk each alive (plus the bounded shared chunk cache), not
// the file.
func TestReadersHoldOneChunkEach(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the 16 MB entry")
	}
	s, _ := newStore(t, 0)
	const size = 16 << 20
	put(t, s, "big", content("big", size))
	ctx := context.Background()
	m, err := s.Lookup(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const readers = 20
	var open []*Reader
	for range readers {
		r, err := s.NewReader(ctx, "big", m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, r, size/2); err != nil {
			t.Fatal(err)
		}
		open = append(open, r)
	}
	runtime.GC()
	runtime.ReadMemStats(&during)
	for _, r := range open {
		r.Close()
	}
	// Holding the file would keep 16 MB per reader alive; a chunk each is
	// 64 KiB, and the shared chunk cache has a fixed bound. Allow four
	// chunks per reader for buffers and driver state.
	if live := int64(during.HeapAlloc) - int64(before.HeapAlloc); live > s.chunks.max+readers*4*ChunkSize {
		t.Fatalf("%d readers keep %d bytes alive", readers, live)
	}
}

// TestMemoryCopyFollowsChanges: small entries are answered from memory
// after the first read, and every change on disk is seen at once.
func TestMemoryCopyFollowsChanges(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	put(t, s, "k", content("one", 100))
	if got, err := read(s, "k"); err != nil || !bytes.Equal(got, content("one", 100)) {
		t.Fatalf("first read: %v", err)
	}
	if _, ok := s.hot.get("k"); !ok {
		t.Fatal("a small entry read once is not kept in memory")
	}
	put(t, s, "k", content("two", 200))
	if got, _ := read(s, "k"); !bytes.Equal(got, content("two", 200)) {
		t.Fatal("a new version was hidden by the memory copy")
	}
	m, _ := s.Lookup(ctx, "k")
	m.ETag = `"touched"`
	if err := s.Touch(ctx, "k", m); err != nil {
		t.Fatal(err)
	}
	if m2, _ := s.Lookup(ctx, "k"); m2.ETag != `"touched"` {
		t.Fatalf("touch not seen: %q", m2.ETag)
	}
	s.Delete(ctx, "k")
	if _, err := s.Lookup(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted entry still answered: %v", err)
	}
}

func TestMemoryCopyIsBounded(t *testing.T) {
	h := newHot(10_000)
	for i := range 100 {
		h.put(strconv.Itoa(i), Meta{Version: int64(i)}, make([]byte, 1000))
	}
	if h.bytes > 10_000 || len(h.entries) > 10 {
		t.Fatalf("%d bytes in %d entries", h.bytes, len(h.entries))
	}
	if _, ok := h.get("99"); !ok {
		t.Fatal("the most recent entry was evicted")
	}
	if _, ok := h.get("0"); ok {
		t.Fatal("the oldest entry was kept")
	}
}

func TestChunkCacheIsBoundedAndShared(t *testing.T) {
	c := newChunkCache(4 * ChunkSize)
	for i := range 10 {
		c.put(chunkKey{1, i}, make([]byte, ChunkSize))
	}
	if c.bytes > 4*ChunkSize || len(c.entries) != 4 {
		t.Fatalf("%d bytes in %d chunks", c.bytes, len(c.entries))
	}
	if _, ok := c.get(chunkKey{1, 9}); !ok {
		t.Fatal("the newest chunk is gone")
	}
	if _, ok := c.get(chunkKey{2, 9}); ok {
		t.Fatal("another version's chunk was found")
	}
	// Two readers of a large entry: the second opens no chunk from disk.
	s, _ := newStore(t, 0)
	put(t, s, "big", content("big", 3*ChunkSize))
	if got, err := read(s, "big"); err != nil || !bytes.Equal(got, content("big", 3*ChunkSize)) {
		t.Fatal(err)
	}
	if len(s.chunks.entries) != 3 {
		t.Fatalf("%d chunks kept after one read", len(s.chunks.entries))
	}
}

func TestWriteToMatchesRead(t *testing.T) {
	s, _ := newStore(t, 0)
	ctx := context.Background()
	for _, size := range []int{0, 100, 3*ChunkSize + 5} {
		key := "w" + strconv.Itoa(size)
		put(t, s, key, content(key, size))
		m, _ := s.Lookup(ctx, key)
		r, err := s.NewReader(ctx, key, m)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := r.WriteTo(&buf)
		r.Close()
		if err != nil || n != int64(size) || !bytes.Equal(buf.Bytes(), content(key, size)) {
			t.Fatalf("size %d: %d bytes, %v", size, n, err)
		}
	}
}
