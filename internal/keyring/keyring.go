// Package keyring holds the key that protects provgate's data at rest: a
// file of 32 random bytes kept outside the databases, from which an AEAD
// (AES-256-GCM) for sealing and an HMAC key for opaque lookups are derived.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// KeySize is the size of a key file: 32 random bytes (AES-256).
const KeySize = 32

// Key is the data key: the AEAD that seals and the MAC key that turns names
// into opaque lookup values. Both are derived from the key file's 32 bytes
// with HKDF-SHA256, so neither is the raw key.
type Key struct {
	ID     string // 16 hex digits naming the key; stored with each entry
	aead   cipher.AEAD
	lookup []byte
}

// NewKey derives a Key from 32 bytes of key material.
func NewKey(material []byte) (*Key, error) {
	if len(material) != KeySize {
		return nil, fmt.Errorf("keyring: key must be %d bytes, got %d", KeySize, len(material))
	}
	sealKey, err := hkdf.Key(sha256.New, material, nil, "provgate cache seal v1", 32)
	if err != nil {
		return nil, err
	}
	lookupKey, err := hkdf.Key(sha256.New, material, nil, "provgate cache lookup v1", 32)
	if err != nil {
		return nil, err
	}
	idKey, err := hkdf.Key(sha256.New, material, nil, "provgate cache key id v1", 8)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{ID: hex.EncodeToString(idKey), aead: aead, lookup: lookupKey}, nil
}

// Lookup returns an opaque, keyed digest of s (HMAC-SHA256): what the
// databases store in place of names, MACs and addresses they search by.
func (k *Key) Lookup(s string) []byte {
	m := hmac.New(sha256.New, k.lookup)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// ErrOpen means sealed data failed to authenticate.
var ErrOpen = errors.New("keyring: sealed data failed to open")

// Seal encrypts plain with a fresh random nonce, binding ad; the result
// is nonce || ciphertext || tag.
func (k *Key) Seal(plain, ad []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("keyring: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return k.aead.Seal(nonce, nonce, plain, ad)
}

// Open authenticates and decrypts what Seal made with the same ad,
// appending the plaintext to dst.
func (k *Key) Open(dst, sealed, ad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := k.aead.Open(dst, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// howToCreate ends every key-file error: the fix, not just the fault.
const howToCreate = "create one with 'provgate keygen --out FILE' (32 random bytes, mode 0600, owned by the service user)"

// LoadKeyFile reads a key file. It refuses a missing file, one of the wrong
// size, and one that group or others may read or write.
func LoadKeyFile(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keyring: key file %s does not exist: %s", path, howToCreate)
		}
		return nil, fmt.Errorf("keyring: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: key file %s is not a regular file: %s", path, howToCreate)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyring: key file %s has mode %04o, readable or writable by others: run 'chmod 600 %s', or %s", path, perm, path, howToCreate)
	}
	buf := make([]byte, KeySize+1)
	n, _ := f.Read(buf)
	if n != KeySize {
		return nil, fmt.Errorf("keyring: key file %s holds %s bytes, want exactly %d: %s", path, sizeWord(n, KeySize), KeySize, howToCreate)
	}
	return NewKey(buf[:KeySize])
}

func sizeWord(n, want int) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprint(n)
}

// WriteKeyFile creates path with 32 fresh random bytes, mode 0600. It never
// overwrites: losing a key loses the cache.
func WriteKeyFile(path string) (*Key, error) {
	material := make([]byte, KeySize)
	if _, err := rand.Read(material); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keyring: create key file: %w", err)
	}
	if _, err := f.Write(material); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return NewKey(material)
}
