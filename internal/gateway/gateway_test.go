package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/cache"
	"github.com/provgate/provgate/internal/keyring"
	"github.com/provgate/provgate/internal/origin"
)

// fakeOrigin is a hand-written cloud: it answers from a map, can lie about
// digests, fail, or hang until released.
type fakeOrigin struct {
	mu      sync.Mutex
	files   map[string]string
	lie     bool
	down    bool
	hang    chan struct{}
	maxAge  time.Duration
	fetches atomic.Int32
}

func (f *fakeOrigin) File(ctx context.Context, fr origin.FileRequest, etag string) (*origin.Response, error) {
	f.fetches.Add(1)
	f.mu.Lock()
	body, ok := f.files[fr.Name]
	lie, down, hang, maxAge := f.lie, f.down, f.hang, f.maxAge
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if down {
		return nil, origin.ErrUnavailable
	}
	if !ok {
		return &origin.Response{Status: 404, Reason: "not_found"}, nil
	}
	sum := sha256.Sum256([]byte(body))
	if lie {
		body = "forged " + body
	}
	return &origin.Response{Status: 200, ETag: `"` + body + `"`, Digest: sum[:], Size: int64(len(body)), MaxAge: maxAge, Body: io.NopCloser(bytes.NewReader([]byte(body)))}, nil
}

func (f *fakeOrigin) set(fn func(*fakeOrigin)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func newGateway(t *testing.T, o Origin, cfg Config) *Gateway {
	t.Helper()
	dir := t.TempDir()
	key, err := keyring.WriteKeyFile(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(filepath.Join(dir, "c.db"), key, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return New(store, o, cfg)
}

func readAll(t *testing.T, g *Gateway, name string) (string, Outcome, error) {
	t.Helper()
	f, err := g.Open(context.Background(), Request{Name: name})
	if err != nil {
		return "", OutcomeError, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), f.Outcome, err
}

func TestLyingCloudIsNeverCached(t *testing.T) {
	o := &fakeOrigin{files: map[string]string{"a.cfg": "good"}, maxAge: 0}
	g := newGateway(t, o, Config{MaxStale: time.Hour})
	if got, out, err := readAll(t, g, "a.cfg"); err != nil || got != "good" || out != OutcomeMiss {
		t.Fatalf("honest: %q %s %v", got, out, err)
	}
	o.set(func(o *fakeOrigin) { o.lie = true; o.files["a.cfg"] = "changed" })
	got, out, err := readAll(t, g, "a.cfg")
	if err != nil || got != "good" || out != OutcomeStale {
		t.Fatalf("lying cloud: %q %s %v; want the last good copy", got, out, err)
	}
	o.set(func(o *fakeOrigin) { o.files["b.cfg"] = "new" })
	if _, _, err := readAll(t, g, "b.cfg"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("lying cloud, nothing cached: %v", err)
	}
}

func TestWaitersHonourTheirOwnDeadline(t *testing.T) {
	hang := make(chan struct{})
	o := &fakeOrigin{files: map[string]string{"a.cfg": "slow"}, hang: hang, maxAge: time.Hour}
	g := newGateway(t, o, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Open(ctx, Request{Name: "a.cfg"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v", err)
	}
	// The fetch was not cancelled with that caller: once the cloud answers,
	// the file is cached and the next caller is a hit without a new fetch.
	close(hang)
	var got string
	var out Outcome
	for range 100 {
		var err error
		if got, out, err = readAll(t, g, "a.cfg"); err == nil && out == OutcomeHit {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != "slow" || out != OutcomeHit || o.fetches.Load() != 1 {
		t.Fatalf("%q %s after %d fetches", got, out, o.fetches.Load())
	}
}

func TestNegativeAnswersAreCachedBriefly(t *testing.T) {
	o := &fakeOrigin{files: map[string]string{}}
	g := newGateway(t, o, Config{NegativeTTL: time.Hour})
	for range 5 {
		if _, _, err := readAll(t, g, "missing.cfg"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if o.fetches.Load() != 1 {
		t.Fatalf("%d fetches for a cached 404", o.fetches.Load())
	}
	// Once the TTL is over, the cloud is asked again.
	g.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	o.set(func(o *fakeOrigin) { o.files["missing.cfg"] = "here now" })
	if got, _, err := readAll(t, g, "missing.cfg"); err != nil || got != "here now" {
		t.Fatalf("after the TTL: %q %v", got, err)
	}
}
