// Package audit keeps a record of every authorization decision: one
// structured row per request in a SQLite table, sealed with the data key,
// bounded by age and count, and searchable by MAC, source and time. Writes
// are batched off the request path; a full queue drops rows (counted and
// logged) rather than slow a phone down.
package audit

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/provgate/provgate/internal/keyring"
)

// Record is one decision.
type Record struct {
	Time      time.Time `json:"time"`
	Transport string    `json:"transport"`
	Source    string    `json:"source"`
	MAC       string    `json:"mac,omitempty"`
	Brand     string    `json:"brand,omitempty"`
	Model     string    `json:"model,omitempty"`
	File      string    `json:"file,omitempty"`
	Tenant    string    `json:"tenant,omitempty"`
	Decision  string    `json:"decision"` // allow or deny
	Reason    string    `json:"reason"`
}

// Options bound the log.
type Options struct {
	Retention time.Duration // rows older than this are deleted
	MaxRows   int64         // and the oldest beyond this count
	Logger    *slog.Logger
}

// Log is the audit log. Record is safe for concurrent use; Run writes.
type Log struct {
	db      *sql.DB
	key     *keyring.Key
	opts    Options
	log     *slog.Logger
	queue   chan Record
	flushes chan chan struct{}
	dropped atomic.Int64
}

const queueSize = 8192

const schema = `
CREATE TABLE IF NOT EXISTS audit (
	id     INTEGER PRIMARY KEY,
	ts     INTEGER NOT NULL, -- unix nanoseconds
	mac    BLOB,             -- HMAC of the MAC
	source BLOB NOT NULL,    -- HMAC of the source address
	record BLOB NOT NULL     -- sealed Record
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
CREATE INDEX IF NOT EXISTS audit_mac ON audit(mac, ts);
CREATE INDEX IF NOT EXISTS audit_source ON audit(source, ts);
`

// Open opens or creates the audit database at path.
func Open(path string, key *keyring.Key, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 1_000_000
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "secure_delete(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	db.SetMaxOpenConns(2)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return &Log{db: db, key: key, opts: opts, log: opts.Logger, queue: make(chan Record, queueSize), flushes: make(chan chan struct{})}, nil
}

// Close closes the database; Run must have returned.
func (l *Log) Close() error { return l.db.Close() }

// Record queues r for writing; it never blocks.
func (l *Log) Record(r Record) {
	select {
	case l.queue <- r:
	default:
		if l.dropped.Add(1)%1000 == 1 {
			l.log.Warn("audit queue full, rows dropped", "dropped", l.dropped.Load())
		}
	}
}

// Dropped counts rows lost to a full queue.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Flush waits until every row queued before the call is written.
func (l *Log) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case l.flushes <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes queued rows in batches and prunes old ones until ctx ends,
// then writes what is left.
func (l *Log) Run(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	l.prune(ctx)
	var batch []Record
	write := func() {
		if len(batch) > 0 {
			if err := l.write(context.WithoutCancel(ctx), batch); err != nil {
				l.log.Error("audit write failed", "rows", len(batch), "err", err)
			}
			batch = batch[:0]
		}
	}
	drain := func() {
		for {
			select {
			case r := <-l.queue:
				batch = append(batch, r)
			default:
				return
			}
		}
	}
	for {
		select {
		case r := <-l.queue:
			batch = append(batch, r)
			if len(batch) >= 512 {
				write()
			}
		case <-tick.C:
			write()
		case done := <-l.flushes:
			drain()
			write()
			close(done)
		case <-prune.C:
			l.prune(ctx)
		case <-ctx.Done():
			drain()
			write()
			return nil
		}
	}
}

func ad(ts int64, mac, source []byte) []byte {
	b := binary.BigEndian.AppendUint64([]byte("provgate-audit-v1"), uint64(ts))
	b = append(b, mac...)
	return append(b, source...)
}

func (l *Log) lookup(s string) []byte {
	if s == "" {
		return nil
	}
	return l.key.Lookup(s)
}

// rowsPerInsert bounds one multi-row INSERT (4 parameters a row).
const rowsPerInsert = 256

func (l *Log) write(ctx context.Context, rows []Record) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	args := make([]any, 0, 4*min(len(rows), rowsPerInsert))
	for len(rows) > 0 {
		n := min(len(rows), rowsPerInsert)
		args = args[:0]
		for _, r := range rows[:n] {
			plain, err := json.Marshal(r)
			if err != nil {
				return err
			}
			ts, mac, src := r.Time.UnixNano(), l.lookup(r.MAC), l.lookup(r.Source)
			args = append(args, ts, mac, src, l.key.Seal(plain, ad(ts, mac, src)))
		}
		q := `INSERT INTO audit (ts, mac, source, record) VALUES (?, ?, ?, ?)` + strings.Repeat(`, (?, ?, ?, ?)`, n-1)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return tx.Commit()
}

func (l *Log) prune(ctx context.Context) {
	cutoff := time.Now().Add(-l.opts.Retention).UnixNano()
	if _, err := l.db.ExecContext(ctx, `DELETE FROM audit WHERE ts < ?`, cutoff); err != nil {
		l.log.Warn("audit prune", "err", err)
	}
	if _, err := l.db.ExecContext(ctx, `DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)`, l.opts.MaxRows); err != nil {
		l.log.Warn("audit prune", "err", err)
	}
}

// Prune applies the retention bounds now.
func (l *Log) Prune(ctx context.Context) { l.prune(ctx) }

// Filter selects rows; zero fields match everything.
type Filter struct {
	MAC    string // normalised MAC
	Source string // IP address as printed
	Since  time.Time
	Limit  int // default 1000
}

// Query returns matching rows, oldest first. Rows that fail to open are
// skipped and counted in skipped.
func (l *Log) Query(ctx context.Context, f Filter) (rows []Record, skipped int, err error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q := `SELECT ts, mac, source, record FROM audit WHERE ts >= ?`
	args := []any{f.Since.UnixNano()}
	if f.MAC != "" {
		q += ` AND mac = ?`
		args = append(args, l.lookup(f.MAC))
	}
	if f.Source != "" {
		q += ` AND source = ?`
		args = append(args, l.lookup(f.Source))
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	res, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: query: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var (
			ts            int64
			mac, src, sea []byte
		)
		if err := res.Scan(&ts, &mac, &src, &sea); err != nil {
			return nil, skipped, err
		}
		plain, err := l.key.Open(nil, sea, ad(ts, mac, src))
		var r Record
		if err == nil {
			err = json.Unmarshal(plain, &r)
		}
		if err != nil {
			skipped++
			continue
		}
		rows = append(rows, r)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows, skipped, res.Err()
}
