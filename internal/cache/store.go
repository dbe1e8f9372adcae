// Package cache stores sealed entries in SQLite: every answer the cloud
// gave (content, or a refusal), encrypted with AES-256-GCM in chunks under
// a key kept outside the database. It knows nothing of TFTP, HTTPS or the
// cloud: it stores, opens and evicts.
//
// Tampering is detected and never served: each chunk's associated data
// binds it to its entry's cache key, version, position, the entry's chunk
// count and the key ID, so a chunk that is flipped, swapped, moved,
// reordered or dropped fails to open. Cache keys are stored only as HMACs.
package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/provgate/provgate/internal/keyring"
)

// ChunkSize is the plaintext size of one sealed chunk.
const ChunkSize = 64 << 10

// Errors of the cache.
var (
	ErrNotFound       = errors.New("cache: entry not found")
	ErrCorrupt        = errors.New("cache: entry failed to open (tampered or damaged)")
	ErrDigestMismatch = errors.New("cache: content does not match its digest")
	ErrSize           = errors.New("cache: content length differs from the announced size")
)

// Meta describes a cached answer. Everything in it is sealed in the database.
type Meta struct {
	Status    int           `json:"status"` // 200, or the refusal (403, 404)
	Reason    string        `json:"reason,omitempty"`
	ETag      string        `json:"etag,omitempty"`
	Digest    []byte        `json:"digest,omitempty"` // SHA-256 of the content
	Size      int64         `json:"size"`
	Validated time.Time     `json:"validated"` // when the cloud last vouched for it
	MaxAge    time.Duration `json:"max_age"`

	Chunks  int    `json:"chunks"` // set by the store
	Version int64  `json:"-"`      // set by the store: the entry's row id
	KeyID   string `json:"-"`      // set by the store

	lastUsed int64
}

// Fresh reports whether the cloud's max-age still covers m at now.
func (m Meta) Fresh(now time.Time) bool { return now.Before(m.Validated.Add(m.MaxAge)) }

// Expired returns how long ago m stopped being fresh (0 while fresh).
func (m Meta) Expired(now time.Time) time.Duration {
	return max(0, now.Sub(m.Validated.Add(m.MaxAge)))
}

// Options tune a Store.
type Options struct {
	MaxBytes int64        // size cap of content; 0 means no cap
	HotBytes int64        // memory for recently used small entries (and half as much for chunks of large ones); default 8 MiB, <0 none
	ReadOnly bool         // inspect a cache a running gateway owns: no schema change, no clean-up, no writes
	Logger   *slog.Logger // alarms and evictions
}

// Stats are the store's counters.
type Stats struct {
	Entries int64
	Bytes   int64
	Corrupt int64 // entries that failed to open since start
	Evicted int64
}

// Store is an encrypted SQLite cache. Safe for concurrent use.
type Store struct {
	rdb, wdb *sql.DB
	key      *keyring.Key
	opts     Options
	log      *slog.Logger
	bufs     sync.Pool
	hot      *hot
	chunks   *chunkCache

	corrupt atomic.Int64
	evicted atomic.Int64
}

const schema = `
CREATE TABLE IF NOT EXISTS entries (
	id        INTEGER PRIMARY KEY AUTOINCREMENT, -- the entry version: never reused
	lookup    BLOB UNIQUE,                       -- HMAC of the cache key; NULL while being written
	key_id    TEXT NOT NULL,
	meta      BLOB NOT NULL,                     -- sealed Meta
	size      INTEGER NOT NULL,
	last_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_used);
CREATE TABLE IF NOT EXISTS chunks (
	entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
	idx      INTEGER NOT NULL,
	data     BLOB NOT NULL,                      -- nonce || ciphertext || tag
	PRIMARY KEY (entry_id, idx)
) WITHOUT ROWID;
`

// Open opens or creates the cache database at path. Entries a crash left
// half-written are removed.
func Open(path string, key *keyring.Key, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)", "secure_delete(ON)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		if opts.ReadOnly {
			q.Set("mode", "ro")
		}
		return "file:" + path + "?" + q.Encode()
	}
	wdb, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	wdb.SetMaxOpenConns(1) // one writer; SQLite serialises writes anyway
	if !opts.ReadOnly {
		if _, err := wdb.Exec(schema); err != nil {
			wdb.Close()
			return nil, fmt.Errorf("cache: open %s: %w", path, err)
		}
		if _, err := wdb.Exec(`DELETE FROM entries WHERE lookup IS NULL`); err != nil {
			wdb.Close()
			return nil, fmt.Errorf("cache: clean up: %w", err)
		}
	}
	rdb, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	rdb.SetMaxOpenConns(16)
	rdb.SetMaxIdleConns(16)
	if opts.HotBytes == 0 {
		opts.HotBytes = 8 << 20
	}
	s := &Store{rdb: rdb, wdb: wdb, key: key, opts: opts, log: opts.Logger, hot: newHot(opts.HotBytes), chunks: newChunkCache(opts.HotBytes / 2)}
	s.bufs.New = func() any { b := make([]byte, ChunkSize); return &b }
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// aad is the associated data of a sealed piece: what it belongs to and where.
func aad(kind byte, cacheKey string, version int64, idx, count int, keyID string) []byte {
	b := make([]byte, 0, 48+len(cacheKey)+len(keyID))
	b = append(b, "provgate-cache-v1"...)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint32(b, uint32(len(cacheKey)))
	b = append(b, cacheKey...)
	b = binary.BigEndian.AppendUint64(b, uint64(version))
	b = binary.BigEndian.AppendUint32(b, uint32(idx))
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	return append(b, keyID...)
}

const (
	kindMeta  = 'm'
	kindChunk = 'c'
)

func (s *Store) open(dst, sealed, ad []byte) ([]byte, error) {
	out, err := s.key.Open(dst, sealed, ad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return out, nil
}

func chunkCount(m Meta) int {
	if m.Status != 200 {
		return 0
	}
	return max(1, int((m.Size+ChunkSize-1)/ChunkSize))
}

// alarm records an entry that failed to open and removes it, so the next
// request refetches it.
func (s *Store) alarm(ctx context.Context, version int64, why string) {
	s.hot.dropVersion(version)
	s.corrupt.Add(1)
	s.log.Error("cache entry failed to open: dropped, will refetch", "version", version, "why", why)
	if _, err := s.wdb.ExecContext(context.WithoutCancel(ctx), `DELETE FROM entries WHERE id = ?`, version); err != nil {
		s.log.Error("cache: drop corrupt entry", "version", version, "err", err)
	}
}

// Lookup returns the metadata stored for cacheKey. A missing entry and one
// that fails to open (which raises an alarm and is dropped) are ErrNotFound.
func (s *Store) Lookup(ctx context.Context, cacheKey string) (Meta, error) {
	if e, ok := s.hot.get(cacheKey); ok {
		return e.meta, nil
	}
	var (
		m      Meta
		sealed []byte
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT id, key_id, meta, last_used FROM entries WHERE lookup = ?`, s.key.Lookup(cacheKey)).
		Scan(&m.Version, &m.KeyID, &sealed, &m.lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Meta{}, ErrNotFound
	}
	if err != nil {
		return Meta{}, fmt.Errorf("cache: lookup: %w", err)
	}
	if m.KeyID != s.key.ID {
		s.alarm(ctx, m.Version, "sealed with unknown key "+m.KeyID)
		return Meta{}, ErrNotFound
	}
	plain, err := s.open(nil, sealed, aad(kindMeta, cacheKey, m.Version, 0, 0, m.KeyID))
	if err == nil {
		err = json.Unmarshal(plain, &m)
	}
	if err != nil || m.Chunks != chunkCount(m) {
		s.alarm(ctx, m.Version, "metadata")
		return Meta{}, ErrNotFound
	}
	if m.Status != 200 {
		s.hot.put(cacheKey, m, nil) // refusals are remembered in memory too
	}
	return m, nil
}

// Put stores an answer for cacheKey: for status 200 it reads exactly m.Size
// bytes from body, which must hash to m.Digest. The new version replaces
// the old one in a single transaction; until then readers see the old one,
// and a crash leaves no trace of the new one.
func (s *Store) Put(ctx context.Context, cacheKey string, m Meta, body io.Reader) (Meta, error) {
	m.KeyID, m.Chunks = s.key.ID, chunkCount(m)
	now := time.Now().Unix()
	res, err := s.wdb.ExecContext(ctx, `INSERT INTO entries (lookup, key_id, meta, size, last_used) VALUES (NULL, ?, x'', ?, ?)`, m.KeyID, m.Size, now)
	if err != nil {
		return Meta{}, fmt.Errorf("cache: put: %w", err)
	}
	if m.Version, err = res.LastInsertId(); err != nil {
		return Meta{}, fmt.Errorf("cache: put: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			s.wdb.ExecContext(context.WithoutCancel(ctx), `DELETE FROM entries WHERE id = ?`, m.Version)
		}
	}()
	if m.Status == 200 {
		if err := s.writeChunks(ctx, cacheKey, m, body); err != nil {
			return Meta{}, err
		}
	}
	metaJSON, err := json.Marshal(m)
	if err != nil {
		return Meta{}, err
	}
	sealedMeta := s.key.Seal(metaJSON, aad(kindMeta, cacheKey, m.Version, 0, 0, m.KeyID))
	lookup := s.key.Lookup(cacheKey)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return Meta{}, fmt.Errorf("cache: put: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE lookup = ?`, lookup); err != nil {
		return Meta{}, fmt.Errorf("cache: put: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE entries SET lookup = ?, meta = ? WHERE id = ?`, lookup, sealedMeta, m.Version); err != nil {
		return Meta{}, fmt.Errorf("cache: put: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Meta{}, fmt.Errorf("cache: put: %w", err)
	}
	committed = true
	s.hot.drop(cacheKey)
	m.lastUsed = now
	if err := s.evict(ctx, m.Version); err != nil {
		s.log.Warn("cache eviction failed", "err", err)
	}
	return m, nil
}

// chunksPerTx batches chunk inserts: fewer commits, short write locks.
const chunksPerTx = 16

func (s *Store) writeChunks(ctx context.Context, cacheKey string, m Meta, body io.Reader) error {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	h := sha256.New()
	var tx *sql.Tx
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	remaining := m.Size
	for idx := range m.Chunks {
		n := int(min(int64(ChunkSize), remaining))
		if _, err := io.ReadFull(body, buf[:n]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return ErrSize
			}
			return fmt.Errorf("cache: read content: %w", err)
		}
		remaining -= int64(n)
		h.Write(buf[:n])
		sealed := s.key.Seal(buf[:n], aad(kindChunk, cacheKey, m.Version, idx, m.Chunks, m.KeyID))
		if tx == nil {
			var err error
			if tx, err = s.wdb.BeginTx(ctx, nil); err != nil {
				return fmt.Errorf("cache: put: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO chunks (entry_id, idx, data) VALUES (?, ?, ?)`, m.Version, idx, sealed); err != nil {
			return fmt.Errorf("cache: put: %w", err)
		}
		if idx%chunksPerTx == chunksPerTx-1 {
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("cache: put: %w", err)
			}
			tx = nil
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("cache: put: %w", err)
		}
		tx = nil
	}
	// The body must end here; reading on also lets a verifying reader
	// report a digest mismatch at its EOF.
	if n, err := body.Read(buf[:1]); n > 0 {
		return ErrSize
	} else if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cache: read content: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), m.Digest) {
		return ErrDigestMismatch
	}
	return nil
}

// Touch records that the cloud vouched again for the stored version
// (a 304): it reseals m's validation time, max-age and ETag.
func (s *Store) Touch(ctx context.Context, cacheKey string, m Meta) error {
	metaJSON, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sealed := s.key.Seal(metaJSON, aad(kindMeta, cacheKey, m.Version, 0, 0, m.KeyID))
	res, err := s.wdb.ExecContext(ctx, `UPDATE entries SET meta = ? WHERE id = ? AND lookup = ?`, sealed, m.Version, s.key.Lookup(cacheKey))
	if err != nil {
		return fmt.Errorf("cache: touch: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		s.hot.drop(cacheKey)
		return ErrNotFound
	}
	s.hot.touch(cacheKey, m)
	return nil
}

// Delete removes cacheKey's entry, if any.
func (s *Store) Delete(ctx context.Context, cacheKey string) error {
	s.hot.drop(cacheKey)
	_, err := s.wdb.ExecContext(ctx, `DELETE FROM entries WHERE lookup = ?`, s.key.Lookup(cacheKey))
	return err
}

// evict removes least recently used entries until content fits MaxBytes,
// sparing keep (the entry just written).
func (s *Store) evict(ctx context.Context, keep int64) error {
	if s.opts.MaxBytes <= 0 {
		return nil
	}
	var total int64
	if err := s.wdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM entries WHERE lookup IS NOT NULL`).Scan(&total); err != nil {
		return err
	}
	for total > s.opts.MaxBytes {
		var id, size int64
		err := s.wdb.QueryRowContext(ctx, `SELECT id, size FROM entries WHERE lookup IS NOT NULL AND id != ? ORDER BY last_used, id LIMIT 1`, keep).Scan(&id, &size)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		s.hot.dropVersion(id)
		if _, err := s.wdb.ExecContext(ctx, `DELETE FROM entries WHERE id = ?`, id); err != nil {
			return err
		}
		total -= size
		s.evicted.Add(1)
		s.log.Info("cache entry evicted", "version", id, "bytes", size)
	}
	return nil
}

// Stats counts entries and content bytes.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Corrupt: s.corrupt.Load(), Evicted: s.evicted.Load()}
	err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE lookup IS NOT NULL`).Scan(&st.Entries, &st.Bytes)
	return st, err
}

// lastUsedEvery limits writes of the LRU clock to one per entry per period.
const lastUsedEvery = time.Minute

// NewReader opens m's content for streaming. The first chunk is opened at
// once, so an entry that fails to open is reported (ErrCorrupt, alarm,
// entry dropped) before a single byte is served.
func (s *Store) NewReader(ctx context.Context, cacheKey string, m Meta) (*Reader, error) {
	if m.Status != 200 {
		return nil, fmt.Errorf("cache: entry %d holds a refusal, not content", m.Version)
	}
	if now := time.Now().Unix(); now-m.lastUsed >= int64(lastUsedEvery/time.Second) {
		s.wdb.ExecContext(ctx, `UPDATE entries SET last_used = ? WHERE id = ?`, now, m.Version)
		m.lastUsed = now
		s.hot.touch(cacheKey, m)
	}
	if e, ok := s.hot.get(cacheKey); ok && e.data != nil && e.meta.Version == m.Version {
		return &Reader{s: s, ctx: ctx, key: cacheKey, m: m, cur: e.data, next: m.Chunks}, nil
	}
	r := &Reader{s: s, ctx: ctx, key: cacheKey, m: m}
	bp := s.bufs.Get().(*[]byte)
	r.buf = bp
	if err := r.load(); err != nil {
		r.Close()
		return nil, err
	}
	if m.Chunks == 1 {
		s.hot.put(cacheKey, m, bytes.Clone(r.cur))
	}
	return r, nil
}

// Reader streams an entry's content, one chunk in memory at a time.
type Reader struct {
	s    *Store
	ctx  context.Context
	key  string
	m    Meta
	buf  *[]byte
	cur  []byte // unread plaintext of the current chunk
	next int    // index of the next chunk to load
	read int64
	err  error
}

// Size is the content length.
func (r *Reader) Size() int64 { return r.m.Size }

func (r *Reader) load() error {
	if r.m.Chunks > 1 {
		if data, ok := r.s.chunks.get(chunkKey{r.m.Version, r.next}); ok {
			r.cur = data
			r.next++
			return nil
		}
	}
	var sealed []byte
	err := r.s.rdb.QueryRowContext(r.ctx, `SELECT data FROM chunks WHERE entry_id = ? AND idx = ?`, r.m.Version, r.next).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		r.s.alarm(r.ctx, r.m.Version, fmt.Sprintf("chunk %d of %d missing", r.next, r.m.Chunks))
		return ErrCorrupt
	}
	if err != nil {
		return fmt.Errorf("cache: read chunk: %w", err)
	}
	plain, err := r.s.open((*r.buf)[:0], sealed, aad(kindChunk, r.key, r.m.Version, r.next, r.m.Chunks, r.m.KeyID))
	if err != nil {
		r.s.alarm(r.ctx, r.m.Version, fmt.Sprintf("chunk %d of %d", r.next, r.m.Chunks))
		return err
	}
	r.cur = plain
	if r.m.Chunks > 1 {
		r.s.chunks.put(chunkKey{r.m.Version, r.next}, bytes.Clone(plain))
	}
	r.next++
	return nil
}

// Read implements io.Reader. It fails with ErrCorrupt on a chunk that does
// not open and when the chunks do not add up to the recorded size.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.cur) == 0 {
		if r.next == r.m.Chunks {
			if r.read != r.m.Size {
				r.s.alarm(r.ctx, r.m.Version, "size")
				r.err = ErrCorrupt
			} else {
				r.err = io.EOF
			}
			return 0, r.err
		}
		if r.err = r.load(); r.err != nil {
			return 0, r.err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.read += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo: it writes each opened chunk straight to
// w, with no copy through an intermediate buffer.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.cur) > 0 {
			n, err := w.Write(r.cur)
			r.cur = r.cur[n:]
			r.read += int64(n)
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return total, nil
			}
			return total, r.err
		}
		if r.next == r.m.Chunks {
			if r.read != r.m.Size {
				r.s.alarm(r.ctx, r.m.Version, "size")
				r.err = ErrCorrupt
				return total, r.err
			}
			r.err = io.EOF
			return total, nil
		}
		if r.err = r.load(); r.err != nil {
			return total, r.err
		}
	}
}

// Close releases the reader's buffer.
func (r *Reader) Close() error {
	if r.buf != nil {
		r.s.bufs.Put(r.buf)
		r.buf, r.cur = nil, nil
		if r.err == nil {
			r.err = io.ErrClosedPipe
		}
	}
	return nil
}
