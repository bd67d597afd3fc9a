package marketplacetest

// This file holds the RSA keys that sign tokens and the endpoints that
// serve them, in Google's two formats (x509 certificate map, JWK Set).

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// signingKey is one RSA key with its key id and self-signed certificate.
type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	certPEM []byte // as the x509 metadata endpoint serves it
	pubPEM  []byte // PKIX public key
}

func newSigningKey(now time.Time, commonName string) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	// Google's kids are 40 hex digits; a SHA-1 of the key has that shape.
	sum := sha1.Sum(pubDER)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		// Far in the future: tests advance the emulator clock freely and a
		// verifier that checks certificate validity must not start failing.
		NotAfter:    now.AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("self-sign certificate: %w", err)
	}
	return &signingKey{
		kid:     hex.EncodeToString(sum[:]),
		priv:    priv,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		pubPEM:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
	}, nil
}

// keyRing holds an issuer's keys. Keys are generated on first use, because
// 2048-bit RSA generation is slow under -race and many tests never sign.
type keyRing struct {
	now        func() time.Time
	commonName string

	mu      sync.Mutex
	keys    []*signingKey // keys[0] signs; keys[1], if any, is the previous key, still served
	foreign *signingKey   // signs ForeignKey tokens; never in keys
}

func (r *keyRing) current() (*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.keys) == 0 {
		k, err := newSigningKey(r.now(), r.commonName)
		if err != nil {
			return nil, err
		}
		r.keys = []*signingKey{k}
	}
	return r.keys[0], nil
}

func (r *keyRing) foreignKey() (*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.foreign == nil {
		k, err := newSigningKey(r.now(), "attacker@example.com")
		if err != nil {
			return nil, err
		}
		r.foreign = k
	}
	return r.foreign, nil
}

// rotate makes a new signing key; the previous one stays published (as
// Google publishes two keys around a rotation) and older ones are dropped.
func (r *keyRing) rotate() (*signingKey, error) {
	k, err := newSigningKey(r.now(), r.commonName)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append([]*signingKey{k}, r.keys...)
	if len(r.keys) > 2 {
		r.keys = r.keys[:2]
	}
	return k, nil
}

// published returns the keys the endpoints serve, generating the first one
// if needed.
func (r *keyRing) published() ([]*signingKey, error) {
	if _, err := r.current(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*signingKey(nil), r.keys...), nil
}

// signJWT signs claims with key the way alg says. kid goes in the header

func serveCertMap(w http.ResponseWriter, keys []*signingKey, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k.kid] = string(k.certPEM)
	}
	writeKeyJSON(w, m)
}

type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func serveJWKS(w http.ResponseWriter, keys []*signingKey, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		pub := k.priv.PublicKey
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA", Alg: "RS256", Use: "sig", Kid: k.kid,
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	writeKeyJSON(w, set)
}

func writeKeyJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	// Google's key endpoints are cacheable; verifiers are expected to honour it.
	w.Header().Set("Cache-Control", "public, max-age=3600, must-revalidate, no-transform")
	_ = json.NewEncoder(w).Encode(v)
}
