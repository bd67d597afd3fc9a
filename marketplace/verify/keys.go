package verify

// This file holds what the verifiers share: the typed
// token errors and the cache of Google's public signing keys (the RS256
// core is in jwt.go).

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TokenReason is why a token was refused. The ErrToken* constants and
// ErrKeysUnavailable are the only values; each is an error, so
// errors.Is(err, ErrTokenExpired) works on any error the verifiers return,
// and a *TokenError's Reason can be compared or switched on directly.
type TokenReason string

// Error returns the reason's text.
func (r TokenReason) Error() string { return string(r) }

// Reasons a sign-up token, push token or software statement is refused.
// Every error returned by SignupVerifier.Verify, PushVerifier.Verify,
// PushVerifier.VerifyRequest and StatementVerifier.Verify (and the sign-up
// handlers of package signup) is a *TokenError whose Reason is one of
// these.
const (
	// ErrTokenMissing: no token was presented.
	ErrTokenMissing TokenReason = "token missing"
	// ErrTokenTooLarge: the token is longer than MaxTokenSize; it was not parsed.
	ErrTokenTooLarge TokenReason = "token too large"
	// ErrTokenMalformed: not a well-formed JWS compact token (segments,
	// base64 that is not strict base64url, JSON, claim types such as a date
	// that is not a JSON number, a required claim missing, a crit header, a
	// signature of the wrong length for the key, such as one truncated in
	// transit).
	ErrTokenMalformed TokenReason = "token malformed"
	// ErrTokenAlgorithm: the alg header is not RS256 (for example "none",
	// or HS256 keyed with Google's public key).
	ErrTokenAlgorithm TokenReason = "token algorithm not allowed"
	// ErrTokenIssuer: iss is not Google's. Checked before any key is
	// fetched, so a token naming another key URL never causes a request.
	ErrTokenIssuer TokenReason = "token issuer not allowed"
	// ErrTokenUnknownKey: the kid header names no key Google currently
	// serves, even after a refresh of the key set.
	ErrTokenUnknownKey TokenReason = "token signing key unknown"
	// ErrTokenSignature: the signature does not verify with the key named
	// by kid (forged, signed by another key, or edited after signing).
	ErrTokenSignature TokenReason = "token signature invalid"
	// ErrTokenAudience: aud is none of the configured audiences.
	ErrTokenAudience TokenReason = "token audience not accepted"
	// ErrTokenExpired: exp is past (beyond the allowed clock skew).
	ErrTokenExpired TokenReason = "token expired"
	// ErrTokenIssuedInFuture: iat (or nbf) is later than now plus the
	// allowed clock skew.
	ErrTokenIssuedInFuture TokenReason = "token issued in the future"
	// ErrTokenSubject: sub is empty or not shaped like a Procurement id
	// (procurement.ValidID: at most 256 letters, digits, '-', '_', '.', ':').
	ErrTokenSubject TokenReason = "token subject invalid"
	// ErrTokenLifetime: exp − iat is not positive or exceeds MaxTokenLifetime.
	ErrTokenLifetime TokenReason = "token lifetime not allowed"
	// ErrTokenEmail: a push token's email is not the required service
	// account (Config.PushServiceAccount).
	ErrTokenEmail TokenReason = "token email not the required service account"
	// ErrTokenEmailUnverified: a push token's email_verified is not true.
	ErrTokenEmailUnverified TokenReason = "token email not verified"
	// ErrTokenOrder: a software statement's google.order is missing, not a
	// string, empty or not shaped like a Procurement id. (A google claim
	// that is not an object: ErrTokenMalformed.)
	ErrTokenOrder TokenReason = "token order missing or invalid"
	// ErrTokenRedirectURI: a software statement's auth_app_redirect_uris
	// has more than MaxRedirectURIs entries, or one that is not an absolute
	// https URL with a host and without fragment or userinfo. (Not a list
	// of strings at all: ErrTokenMalformed.)
	ErrTokenRedirectURI TokenReason = "token redirect URI invalid"
	// ErrKeysUnavailable: Google's signing keys could not be fetched, so the
	// token could not be checked. Unlike the other reasons it says nothing
	// about the token: retry later (TokenError.Retryable reports true).
	ErrKeysUnavailable TokenReason = "signing keys unavailable"
)

// TokenError is the error returned for a refused token.
// Match the reason with errors.Is(err, ErrTokenExpired) and friends, or
// get the struct with errors.As. The message never contains the token.
type TokenError struct {
	// Reason is why the token was refused.
	Reason TokenReason
	// Err is the underlying detail or cause, possibly nil.
	Err error

	// Kind names the token in the message: "sign-up", "push" or
	// "software-statement" ("JWT" when empty).
	Kind string
}

// Error describes the refusal: which token, the reason and the detail.
func (e *TokenError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "JWT"
	}
	msg := "verify: " + kind + " token refused: " + string(e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the reason and the cause, so errors.Is matches both.
func (e *TokenError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// Retryable reports whether presenting the same token again later may
// succeed: true only for ErrKeysUnavailable.
func (e *TokenError) Retryable() bool { return e.Reason == ErrKeysUnavailable }

// MaxTokenSize is the longest token the verifiers parse, in bytes. Google's
// sign-up and push tokens are about 1 KiB; anything much larger is refused
// with ErrTokenTooLarge before it is decoded.
const MaxTokenSize = 8 << 10

// defaultTokenLeeway is the clock skew allowed on exp, iat and nbf unless
// Config.Leeway sets another.
const defaultTokenLeeway = 30 * time.Second

// MaxLeeway bounds Config.Leeway, the clock skew allowed on exp and iat: a
// sign-up token lives five minutes, so a larger leeway would make exp
// meaningless.
const MaxLeeway = 5 * time.Minute

func checkLeeway(d time.Duration) error {
	if d < 0 || d > MaxLeeway {
		return fmt.Errorf("verify: token leeway %v out of range [0, %v]", d, MaxLeeway)
	}
	return nil
}

// Key cache tuning. Google serves its keys with Cache-Control max-age of a
// few hours and publishes the next key well before it signs with it.
const (
	// keyRefreshInterval is the minimum time between two fetches of a key
	// set, successful or not: a flood of tokens with made-up kids causes at
	// most one request per interval.
	keyRefreshInterval = 30 * time.Second
	// keyDefaultTTL applies when the response has no usable max-age.
	keyDefaultTTL = 5 * time.Minute
	keyMinTTL     = time.Minute
	keyMaxTTL     = 24 * time.Hour
	// keyFetchTimeout bounds one fetch, whatever the caller's context says.
	keyFetchTimeout = 10 * time.Second
	// maxKeySetBytes bounds the key set response body (Google's are ~4 KiB).
	maxKeySetBytes = 1 << 20
	// minRSAKeyBits refuses keys too weak to trust; Google's are 2048 bits.
	minRSAKeyBits = 2048
)

// keySetFormat is how a key endpoint encodes its keys.
type keySetFormat int

const (
	// formatX509 is Google's robot metadata map {"kid": "-----BEGIN CERTIFICATE-----..."}.
	formatX509 keySetFormat = iota + 1
	// formatJWKS is a JWK Set {"keys": [{"kty": "RSA", "kid", "n", "e", ...}]}.
	formatJWKS
)

// checkKeyURL accepts https URLs, and http only to a loopback host (the
// emulator, a test server): keys fetched in clear text over a network could
// be replaced by anyone on the path.
func checkKeyURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("verify: key URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("verify: key URL %q has no host", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("verify: key URL %q: http is allowed only to a loopback host; use https", raw)
	default:
		return fmt.Errorf("verify: key URL %q: scheme must be https", raw)
	}
}

// newKeyHTTPClient is the client used when no option supplies one: unlike
// http.DefaultClient it has a timeout. keyHTTPClient adds the redirect
// policy to it as to any other.
func newKeyHTTPClient() *http.Client { return &http.Client{Timeout: keyFetchTimeout} }

// keyCache holds one endpoint's RSA public keys by kid. It refetches the set
// when it expires (per Cache-Control max-age) or when a token names a kid it
// does not hold, at most once per keyRefreshInterval, and lets concurrent
// callers share one fetch. A successful fetch replaces the whole set, so a
// key Google stops serving stops verifying. It is safe for concurrent use.
type keyCache struct {
	url    string
	format keySetFormat
	client *http.Client
	now    func() time.Time
	logger *slog.Logger
	kind   string // "sign-up", "push" or "software-statement", for errors

	mu          sync.Mutex
	keys        map[string]*rsa.PublicKey // nil until the first successful fetch
	expires     time.Time
	lastAttempt time.Time     // start of the last fetch that counts against the rate limit
	lastErr     error         // outcome of that fetch
	inflight    chan struct{} // closed when the running fetch ends; nil if none
}

// newKeyCache fetches with a copy of client that refuses redirects (nil:
// the default client).
func newKeyCache(kind, rawURL string, format keySetFormat, client *http.Client, now func() time.Time, logger *slog.Logger) *keyCache {
	return &keyCache{url: rawURL, format: format, client: keyHTTPClient(client), now: now, logger: logger, kind: kind}
}

func (c *keyCache) tokenErr(reason TokenReason, err error) *TokenError {
	return &TokenError{Reason: reason, Err: err, Kind: c.kind}
}

// key returns the public key for kid, fetching the key set if it is not
// loaded, has expired, or lacks kid (subject to the rate limit). Errors are
// *TokenError with ErrTokenUnknownKey or ErrKeysUnavailable.
func (c *keyCache) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	for {
		c.mu.Lock()
		now := c.now()
		fresh := c.keys != nil && now.Before(c.expires)
		if k, ok := c.keys[kid]; ok && fresh {
			c.mu.Unlock()
			return k, nil
		}
		if wait := c.inflight; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, c.tokenErr(ErrKeysUnavailable, fmt.Errorf("waiting for keys from %s: %w", c.url, ctx.Err()))
			}
		}
		if since := now.Sub(c.lastAttempt); !c.lastAttempt.IsZero() && since >= 0 && since < keyRefreshInterval {
			lastErr := c.lastErr
			c.mu.Unlock()
			switch {
			case lastErr != nil:
				return nil, c.tokenErr(ErrKeysUnavailable, lastErr)
			case fresh:
				return nil, c.tokenErr(ErrTokenUnknownKey, fmt.Errorf("kid %q is not among the %d keys served by %s", truncate(kid, 64), len(c.keys), c.url))
			default:
				return nil, c.tokenErr(ErrKeysUnavailable, fmt.Errorf("keys from %s expired and the next refresh is rate limited", c.url))
			}
		}

		// A caller that has already given up starts no fetch: it could not
		// use the result, and whether it saw one would depend on timing.
		if err := ctx.Err(); err != nil {
			c.mu.Unlock()
			return nil, c.tokenErr(ErrKeysUnavailable, fmt.Errorf("keys from %s needed: %w", c.url, err))
		}

		// This caller starts a fetch, which every caller (this one too)
		// then waits for. The fetch does not end with the caller's context
		// (keyFetchTimeout bounds it) and always counts against the rate
		// limit: otherwise a client that sends a made-up kid and hangs up
		// would abort it and reset the limit, and could make the verifier
		// fetch once per connection.
		c.lastAttempt = now
		done := make(chan struct{})
		c.inflight = done
		c.mu.Unlock()
		go c.refresh(context.WithoutCancel(ctx), done)
	}
}

// refresh fetches the key set, records the outcome and closes done. It runs
// in a goroutine of its own: a panic in the fetch (a custom HTTP client's
// transport) becomes its error, so that the waiting callers are released.
func (c *keyCache) refresh(ctx context.Context, done chan struct{}) {
	var (
		keys map[string]*rsa.PublicKey
		ttl  time.Duration
		err  error
	)
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("fetch keys: panic: %v", v)
			}
		}()
		keys, ttl, err = c.fetch(ctx)
	}()
	c.mu.Lock()
	if err == nil {
		c.keys, c.expires, c.lastErr = keys, c.now().Add(ttl), nil
	} else {
		c.lastErr = err
	}
	c.inflight = nil
	close(done)
	c.mu.Unlock()
	if err != nil {
		c.logger.LogAttrs(ctx, slog.LevelWarn, "verify: fetching signing keys failed",
			slog.String("url", c.url), slog.String("error", err.Error()))
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "verify: fetched signing keys",
		slog.String("url", c.url), slog.Int("keys", len(keys)), slog.Duration("ttl", ttl))
}

// fetch downloads and parses the key set, returning how long to cache it.
func (c *keyCache) fetch(ctx context.Context) (map[string]*rsa.PublicKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch keys: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch keys: %w", err)
	}
	defer resp.Body.Close()
	// CheckRedirect protects our copy of the client, not a Transport that
	// follows redirects itself (some proxy and instrumentation wrappers
	// do): a response for another URL than the pinned one is refused.
	if resp.Request != nil && resp.Request.URL.String() != req.URL.String() {
		return nil, 0, fmt.Errorf("fetch keys: the response is for %s, not %s: refused", truncate(resp.Request.URL.Redacted(), 256), c.url)
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, 0, fmt.Errorf("fetch keys: GET %s: status %s", c.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("fetch keys: read %s: %w", c.url, err)
	}
	if len(body) > maxKeySetBytes {
		return nil, 0, fmt.Errorf("fetch keys: %s: body larger than %d bytes", c.url, maxKeySetBytes)
	}
	keys, skipped, err := parseKeySet(c.format, body)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch keys: %s: %w", c.url, err)
	}
	for _, s := range skipped {
		c.logger.LogAttrs(ctx, slog.LevelWarn, "verify: ignored a signing key",
			slog.String("url", c.url), slog.String("reason", s))
	}
	return keys, cacheTTL(resp.Header), nil
}

// parseKeySet decodes a key set. Entries that are not usable RSA signing
// keys are skipped (and described in skipped); a set with no usable key is
// an error.
func parseKeySet(format keySetFormat, body []byte) (keys map[string]*rsa.PublicKey, skipped []string, err error) {
	keys = map[string]*rsa.PublicKey{}
	switch format {
	case formatX509:
		var certs map[string]string
		if err := json.Unmarshal(body, &certs); err != nil {
			return nil, nil, fmt.Errorf("decode certificate map: %w", err)
		}
		for kid, certPEM := range certs {
			k, err := rsaKeyFromCertPEM(certPEM)
			if err != nil || kid == "" {
				skipped = append(skipped, fmt.Sprintf("kid %q: %v", truncate(kid, 64), errOr(err, "empty kid")))
				continue
			}
			keys[kid] = k
		}
	case formatJWKS:
		var set struct {
			Keys []jsonWebKey `json:"keys"`
		}
		if err := json.Unmarshal(body, &set); err != nil {
			return nil, nil, fmt.Errorf("decode JWK set: %w", err)
		}
		for _, jwk := range set.Keys {
			k, err := jwk.rsaKey()
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("kid %q: %v", truncate(jwk.Kid, 64), err))
				continue
			}
			keys[jwk.Kid] = k
		}
	default:
		return nil, nil, fmt.Errorf("unknown key set format %d", format)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("no usable RSA key in the key set (%d skipped)", len(skipped))
	}
	return keys, skipped, nil
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

func rsaKeyFromCertPEM(certPEM string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	// Validity dates are not checked: the pinned HTTPS endpoint is what
	// vouches for the key, and Google removes a key from it on rotation.
	k, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate key is %T, not RSA", cert.PublicKey)
	}
	return k, checkRSAKey(k)
}

func checkRSAKey(k *rsa.PublicKey) error {
	if bits := k.N.BitLen(); bits < minRSAKeyBits {
		return fmt.Errorf("RSA key of %d bits is below the %d-bit minimum", bits, minRSAKeyBits)
	}
	return nil
}

// jsonWebKey is the subset of RFC 7517 the verifiers need.
type jsonWebKey struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func (j jsonWebKey) rsaKey() (*rsa.PublicKey, error) {
	switch {
	case j.Kid == "":
		return nil, errors.New("empty kid")
	case j.Kty != "RSA":
		return nil, fmt.Errorf("kty %q is not RSA", truncate(j.Kty, 16))
	case j.Alg != "" && j.Alg != "RS256":
		return nil, fmt.Errorf("alg %q is not RS256", truncate(j.Alg, 16))
	case j.Use != "" && j.Use != "sig":
		return nil, fmt.Errorf("use %q is not sig", truncate(j.Use, 16))
	}
	n, err := decodeB64URL(j.N)
	if err != nil {
		return nil, fmt.Errorf("modulus: %w", err)
	}
	e, err := decodeB64URL(j.E)
	if err != nil {
		return nil, fmt.Errorf("exponent: %w", err)
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("exponent of %d bytes", len(e))
	}
	exp := new(big.Int).SetBytes(e).Int64()
	if exp < 3 || exp%2 == 0 {
		return nil, fmt.Errorf("exponent %d is not an odd number >= 3", exp)
	}
	k := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	return k, checkRSAKey(k)
}

// decodeB64URL decodes base64url with or without padding.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// cacheTTL is how long to keep a key set, from the response's Cache-Control
// max-age less its Age, clamped to [keyMinTTL, keyMaxTTL]. no-store and
// no-cache get the minimum; a missing max-age the default.
func cacheTTL(h http.Header) time.Duration {
	ttl := time.Duration(-1)
	for _, directive := range strings.Split(strings.Join(h.Values("Cache-Control"), ","), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return keyMinTTL
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err == nil && secs >= 0 && secs < int64(keyMaxTTL/time.Second) {
				ttl = time.Duration(secs) * time.Second
			} else if err == nil && secs >= 0 {
				ttl = keyMaxTTL
			}
		}
	}
	if ttl < 0 {
		return keyDefaultTTL
	}
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 && age < int64(keyMaxTTL/time.Second) {
		ttl -= time.Duration(age) * time.Second
	}
	return min(max(ttl, keyMinTTL), keyMaxTTL)
}

// truncate shortens attacker-controlled strings before they go into an
// error message or a log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
