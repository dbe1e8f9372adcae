package cache

import (
	"container/list"
	"sync"
)

// hot keeps the metadata, and for small entries the opened content, of
// recently used entries in memory, so a boot storm for the same few files
// does not become a database query and a decryption per phone. It is
// bounded in bytes and least recently used goes first. What is on disk is
// the truth: every change to an entry drops or updates it here first.
type hot struct {
	mu       sync.Mutex
	max      int64
	bytes    int64
	entries  map[string]*list.Element
	lru      list.List // front: most recent
	maxEntry int64
}

type hotEntry struct {
	key  string
	meta Meta
	data []byte // opened content; nil for refusals and large entries
}

func newHot(maxBytes int64) *hot {
	return &hot{max: maxBytes, maxEntry: ChunkSize, entries: map[string]*list.Element{}}
}

func (h *hot) get(key string) (hotEntry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	el, ok := h.entries[key]
	if !ok {
		return hotEntry{}, false
	}
	h.lru.MoveToFront(el)
	return *el.Value.(*hotEntry), true
}

func cost(e *hotEntry) int64 { return int64(len(e.key)+len(e.data)) + 256 }

// put records an entry; data is kept only if small (and is not copied:
// the caller hands it over).
func (h *hot) put(key string, m Meta, data []byte) {
	if h.max <= 0 {
		return
	}
	if int64(len(data)) > h.maxEntry {
		data = nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(key)
	e := &hotEntry{key: key, meta: m, data: data}
	h.entries[key] = h.lru.PushFront(e)
	h.bytes += cost(e)
	for h.bytes > h.max {
		h.remove(h.lru.Back().Value.(*hotEntry).key)
	}
}

// touch updates the metadata of an entry of the same version.
func (h *hot) touch(key string, m Meta) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if el, ok := h.entries[key]; ok {
		e := el.Value.(*hotEntry)
		if e.meta.Version == m.Version {
			e.meta = m
		} else {
			h.remove(key)
		}
	}
}

func (h *hot) drop(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(key)
}

// dropVersion forgets whichever key holds version (evicted or corrupt).
func (h *hot) dropVersion(version int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, el := range h.entries {
		if el.Value.(*hotEntry).meta.Version == version {
			h.remove(key)
		}
	}
}

func (h *hot) remove(key string) {
	if el, ok := h.entries[key]; ok {
		h.bytes -= cost(el.Value.(*hotEntry))
		h.lru.Remove(el)
		delete(h.entries, key)
	}
}

// chunkCache keeps recently opened chunks of large entries, shared by every
// reader: a hundred phones fetching one firmware image at once open each
// chunk about once instead of a hundred times. Chunks are keyed by entry
// version, which is never reused, so a new version never meets old chunks.
type chunkCache struct {
	mu      sync.Mutex
	max     int64
	bytes   int64
	entries map[chunkKey]*list.Element
	lru     list.List
}

type chunkKey struct {
	version int64
	idx     int
}

type chunkEntry struct {
	key  chunkKey
	data []byte
}

func newChunkCache(maxBytes int64) *chunkCache {
	return &chunkCache{max: maxBytes, entries: map[chunkKey]*list.Element{}}
}

func (c *chunkCache) get(k chunkKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*chunkEntry).data, true
}

// put keeps data (handed over, never modified afterwards).
func (c *chunkCache) put(k chunkKey, data []byte) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	c.entries[k] = c.lru.PushFront(&chunkEntry{key: k, data: data})
	c.bytes += int64(len(data))
	for c.bytes > c.max {
		e := c.lru.Remove(c.lru.Back()).(*chunkEntry)
		delete(c.entries, e.key)
		c.bytes -= int64(len(e.data))
	}
}
