package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion is the first byte of a sealed secret, so that a later
// format (another cipher, key rotation with a key id) can be told apart.
const sealVersion = 1

// errSealed is matched by the errors of open: the sealed secret is
// corrupt, or was sealed under another key or for another order.
var errSealed = errors.New("agent: sealed client secret does not open")

// seal encrypts a client secret with AES-256-GCM. The order id is the
// additional data: a sealed secret copied onto another order's row does
// not open.
func (r *Registry) seal(orderID, secret string) []byte {
	out := make([]byte, 1+r.aead.NonceSize(), 1+r.aead.NonceSize()+len(secret)+r.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // never returns an error (crypto/rand, Go 1.24+)
	return r.aead.Seal(out, out[1:], []byte(secret), []byte(orderID))
}

// open decrypts what seal produced for orderID.
func (r *Registry) open(orderID string, sealed []byte) (string, error) {
	n := r.aead.NonceSize()
	if len(sealed) < 1+n+r.aead.Overhead() || sealed[0] != sealVersion {
		return "", fmt.Errorf("order %q: %w: bad length or version", orderID, errSealed)
	}
	plain, err := r.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(orderID))
	if err != nil {
		return "", fmt.Errorf("order %q: %w", orderID, errSealed)
	}
	return string(plain), nil
}
